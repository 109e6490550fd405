package feed

import (
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/validation"
)

func TestCursorRoundTripAndRejectsDamage(t *testing.T) {
	issued := time.Date(2026, 12, 3, 14, 0, 0, 123e6, time.UTC)
	for _, seq := range []int64{0, 1, 42, 1 << 40} {
		c := Cursor{Seq: seq, Issued: issued}
		got, err := ParseCursor(c.String())
		if err != nil || got != c {
			t.Fatalf("round trip of %+v: %+v %v", c, got, err)
		}
	}
	good := Cursor{Seq: 12345, Issued: issued}.String()
	flipped := []byte(good)
	flipped[5] ^= 1
	for _, bad := range []string{"", "abc", good[:27], good + "A", string(flipped), strings.Repeat("!", 28), "12345"} {
		if _, err := ParseCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

// Cursors handed out before they carried a time still resume where they were.
func TestVersion1CursorsStillRead(t *testing.T) {
	got, err := ParseCursor("AQAAAAAAADA5cTG-Fg") // position 12345, as version 1 encoded it
	if err != nil || got.Seq != 12345 || !got.Issued.IsZero() {
		t.Fatalf("version 1 cursor: %+v %v", got, err)
	}
	if got.MayHaveExpired(time.Now(), time.Hour) {
		t.Fatal("a cursor without a time cannot be said to have expired")
	}
}

func TestCursorExpiresWithTheRetentionLessTheSkew(t *testing.T) {
	now := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	retention := 720 * time.Hour
	fresh := Cursor{Seq: 1, Issued: now.Add(-retention + ClockSkew + time.Second)}
	old := Cursor{Seq: 1, Issued: now.Add(-retention + ClockSkew - time.Second)}
	if fresh.MayHaveExpired(now, retention) || !old.MayHaveExpired(now, retention) {
		t.Fatalf("fresh %v, old %v", fresh.MayHaveExpired(now, retention), old.MayHaveExpired(now, retention))
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
	q, err := NewQuery("acme", Cursor{Seq: 7}.String(), []string{"case.created", "case.created"}, 0)
	if err != nil || q.After != 7 || q.Limit != DefaultPageSize || len(q.Types) != 1 {
		t.Fatalf("valid query: %+v %v", q, err)
	}
	if q, err := NewQuery("acme", Latest, nil, 0); err != nil || !q.Latest || q.After != 0 {
		t.Fatalf("after=latest: %+v %v", q, err)
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

func TestPollHintRisesWithLoadAndIsBounded(t *testing.T) {
	h := PollHint{Interval: 5 * time.Second, Busy: 10}
	for inFlight, want := range map[int64]time.Duration{0: 5 * time.Second, 9: 5 * time.Second, 10: 10 * time.Second,
		19: 10 * time.Second, 20: 20 * time.Second, 40: 40 * time.Second, 10000: 40 * time.Second} {
		if got := h.For(inFlight); got != want {
			t.Errorf("%d reads in flight: %v, want %v", inFlight, got, want)
		}
	}
	if got := (PollHint{Interval: 300 * time.Millisecond}).Seconds(0); got != "1" {
		t.Errorf("a sub-second hint renders as %q, want 1", got)
	}
	if got := (PollHint{}).For(0); got != 5*time.Second {
		t.Errorf("default hint %v", got)
	}
}
