package kyc

import (
	"testing"

	"github.com/casekeeper/core/pkg/validation"
)

func TestHostileTextIsRefusedNamingTheField(t *testing.T) {
	valid := func() NewCase {
		return NewCase{RequestID: "r1", ExternalRef: "cust-1", Applicant: Applicant{FullName: "Jane Roe"}}
	}
	cases := []struct {
		name  string
		edit  func(*NewCase)
		field string
	}{
		{"empty request id", func(n *NewCase) { n.RequestID = "" }, "request_id"},
		{"NUL in request id", func(n *NewCase) { n.RequestID = "r\x001" }, "request_id"},
		{"NUL in external ref", func(n *NewCase) { n.ExternalRef = "cust\x00-1" }, "external_ref"},
		{"ESC in the applicant's name", func(n *NewCase) { n.Applicant.FullName = "Jane \x1b[31mRoe" }, "applicant.full_name"},
		{"right-to-left override in the name", func(n *NewCase) { n.Applicant.FullName = "Jane \u202eeoR" }, "applicant.full_name"},
		{"isolate in the address", func(n *NewCase) { n.Applicant.Address.Line1 = "Main St \u2066 1" }, "applicant.address.line1"},
		{"line break in the city", func(n *NewCase) { n.Applicant.Address.City = "Ber\nlin" }, "applicant.address.city"},
		{"C1 control in the assignee", func(n *NewCase) { n.Assignee = "bob\u0085" }, "assignee"},
		{"DEL in a label", func(n *NewCase) { n.Labels = []string{"ok", "bad\x7f"} }, "labels[1]"},
		{"bidi control in a metadata value", func(n *NewCase) { n.Metadata = map[string]string{"source": "web\u200f"} }, "metadata.source"},
		{"control in a metadata key", func(n *NewCase) { n.Metadata = map[string]string{"so\x1burce": "web"} }, "metadata"},
		{"invalid UTF-8", func(n *NewCase) { n.ExternalRef = "cust-\xff" }, "external_ref"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := valid()
			tc.edit(&in)
			assertField(t, in.Validate(), tc.field)
		})
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid case refused: %v", err)
	}
	ok := valid()
	ok.Applicant.FullName = "Zoë Ångström-عبدالله 李"
	if err := ok.Validate(); err != nil {
		t.Fatalf("printable non-ASCII refused: %v", err)
	}
}

func TestHostileTextIsRefusedInUpdates(t *testing.T) {
	assertField(t, CaseUpdate{Fields: []string{"external_ref"}, ExternalRef: "a\u202eb"}.Validate(), "external_ref")
	assertField(t, CaseUpdate{Fields: []string{"assignee"}, Assignee: "a\x00"}.Validate(), "assignee")
	assertField(t, CaseUpdate{Fields: []string{"labels"}, Labels: []string{"\x1b"}}.Validate(), "labels[0]")
	assertField(t, validateApplicant(Applicant{FullName: "J\x00"}, "applicant"), "applicant.full_name")
	assertField(t, validateCheck(Check{Type: CheckPEP, Result: ResultClear, Provider: "p\x1b"}, "check"), "check.provider")
	assertField(t, validateRisk(Risk{Level: RiskLow, Reasons: []string{"r\u2067"}}, "risk"), "risk.reasons[0]")
	assertField(t, validateReview(Review{Answer: AnswerApproved, Comment: "fine\x00"}, false), "comment")
	assertField(t, checkText("reason", "on hold\x1b", maxReason), "reason")
}

func assertField(t *testing.T, err error, field string) {
	t.Helper()
	fe, ok := validation.As(err)
	if !ok {
		t.Fatalf("want a field error for %s, got %v", field, err)
	}
	for _, f := range fe {
		if f.Field == field {
			return
		}
	}
	t.Fatalf("error %v does not name %s", err, field)
}
