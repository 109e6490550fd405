package feed

import (
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/validation"
)

func TestCursorRoundTripAndRejectsDamage(t *testing.T) {
	for _, seq := range []int64{0, 1, 42, 1 << 40} {
		got, err := DecodeCursor(EncodeCursor(seq))
		if err != nil || got != seq {
			t.Fatalf("round trip of %d: %d %v", seq, got, err)
		}
	}
	good := EncodeCursor(12345)
	flipped := []byte(good)
	flipped[5] ^= 1
	for _, bad := range []string{"", "abc", good[:17], good + "A", string(flipped), "!!!!!!!!!!!!!!!!!!", "12345"} {
		if _, err := DecodeCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

func TestNewQueryNamesTheParameter(t *testing.T) {
	cases := map[string]struct {
		after    string
		types    []string
		pageSize int32
	}{
		"after":     {after: "garbage"},
		"types":     {types: []string{"case.nope"}},
		"page_size": {pageSize: 501},
	}
	for field, c := range cases {
		_, err := NewQuery("acme", c.after, c.types, c.pageSize)
		errs, ok := validation.As(err)
		if !ok || len(errs) != 1 || errs[0].Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
	q, err := NewQuery("acme", EncodeCursor(7), []string{"case.created", "case.created"}, 0)
	if err != nil || q.After != 7 || q.Limit != DefaultPageSize || len(q.Types) != 1 {
		t.Fatalf("valid query: %+v %v", q, err)
	}
	if errs, _ := validation.As(ValidateWait(61 * time.Second)); len(errs) != 1 || errs[0].Field != "wait" {
		t.Fatal("wait not validated")
	}
}

func TestWithCaseValidatesTheID(t *testing.T) {
	q := Query{Tenant: "acme"}
	if _, err := q.WithCase("../x"); err == nil || !strings.Contains(err.Error(), "case_id") {
		t.Fatalf("a malformed case id: %v", err)
	}
	got, err := q.WithCase("01a217d6-a484-7cb9-a5bb-01ebda771e0f")
	if err != nil || got.CaseID == "" {
		t.Fatalf("a case id: %v %v", got, err)
	}
	if got, _ := q.WithCase(""); got.CaseID != "" {
		t.Fatal("empty case id must mean every case")
	}
}
