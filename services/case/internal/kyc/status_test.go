package kyc

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func seq() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("id-%d", n) }
}

// statusChanges are the changes that move a case, by the status they aim for.
func statusChanges() map[string]Change {
	return map[string]Change{
		"submit":        Submit(),
		"start_review":  StartReview("rita"),
		"put_on_hold":   PutOnHold("waiting for a document"),
		"resume_review": ResumeReview(),
		"approve":       CompleteReview(Review{Answer: AnswerApproved}),
		"reject":        CompleteReview(Review{Answer: AnswerRejected, RejectLabels: []string{"FORGERY"}}),
		"resubmission":  RequestResubmission(Review{RejectLabels: []string{"BLURRY"}}),
		"expire":        Expire("no answer in 30 days"),
		"redact":        Redact("erasure request"),
	}
}

var target = map[string]Status{
	"submit": StatusSubmitted, "start_review": StatusInReview, "put_on_hold": StatusOnHold,
	"resume_review": StatusInReview, "approve": StatusApproved, "reject": StatusRejected,
	"resubmission": StatusResubmissionRequested, "expire": StatusExpired, "redact": StatusRedacted,
}

// TestTransitionTable runs every change from every status: it succeeds exactly when the table allows it (with the
// review changes only from in_review), and a refusal names the current status and the allowed next ones.
func TestTransitionTable(t *testing.T) {
	allowed := map[Status][]string{
		StatusDraft:                 {"submit", "expire", "redact"},
		StatusSubmitted:             {"start_review", "expire", "redact"},
		StatusInReview:              {"put_on_hold", "approve", "reject", "resubmission", "expire", "redact"},
		StatusOnHold:                {"resume_review", "expire", "redact"},
		StatusResubmissionRequested: {"submit", "expire", "redact"},
		StatusApproved:              {"redact"},
		StatusRejected:              {"redact"},
		StatusExpired:               {"redact"},
		StatusRedacted:              {},
	}
	for _, from := range Statuses {
		for name, change := range statusChanges() {
			t.Run(string(from)+"/"+name, func(t *testing.T) {
				c := &Case{ID: "c", Tenant: "acme", Status: from, Version: 3, Applicant: Applicant{FullName: "Jane Roe"}}
				ev, err := change(c, now)
				want := contains(allowed[from], name)
				if want {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if c.Status != target[name] {
						t.Fatalf("status %s, want %s", c.Status, target[name])
					}
					if ev == "" {
						t.Fatal("no event type")
					}
					return
				}
				if !errors.Is(err, ErrInvalidTransition) {
					t.Fatalf("got %v, want an invalid transition", err)
				}
				msg := err.Error()
				if !strings.Contains(msg, "case is "+string(from)) || !strings.Contains(msg, "allowed next:") {
					t.Fatalf("message %q does not name the status and the allowed next ones", msg)
				}
				for _, next := range from.Allowed() {
					if !strings.Contains(msg, string(next)) {
						t.Fatalf("message %q misses allowed %s", msg, next)
					}
				}
			})
		}
	}
}

func TestEventTypes(t *testing.T) {
	c := &Case{Status: StatusInReview}
	if ev, _ := CompleteReview(Review{Answer: AnswerApproved})(c.Clone(), now); ev != EventReviewCompleted {
		t.Errorf("approve: %s", ev)
	}
	if ev, _ := PutOnHold("x")(c.Clone(), now); ev != EventStatusChanged {
		t.Errorf("hold: %s", ev)
	}
	if ev, _ := AddDocument(Document{Type: DocPassport}, seq())(c.Clone(), now); ev != EventDocumentAdded {
		t.Errorf("document: %s", ev)
	}
	if ev, _ := RecordCheck(Check{Type: CheckPEP, Result: ResultClear}, seq())(c.Clone(), now); ev != EventCheckRecorded {
		t.Errorf("check: %s", ev)
	}
	if ev, _ := Redact("gdpr")(c.Clone(), now); ev != EventRedacted {
		t.Errorf("redact: %s", ev)
	}
}

func TestRedactRemovesPersonalData(t *testing.T) {
	c := &Case{
		Status: StatusApproved, ExternalRef: "cust-42", Assignee: "rita",
		Applicant: Applicant{FullName: "Jane Roe", Email: "jane@example.com", DateOfBirth: "1990-01-02",
			Address: Address{Line1: "Main St 1", Country: "DE"}},
		Documents: []Document{{ID: "d1", Type: DocPassport, MaskedNumber: "****1234"}},
		Checks:    []Check{{ID: "k1", Type: CheckPEP, Result: ResultClear, Reference: "ref-9"}},
		Review:    &Review{Answer: AnswerApproved, Reviewer: "rita", Comment: "Jane looks fine"},
		Metadata:  map[string]string{"crm": "Jane"}, Labels: []string{"vip"},
	}
	if _, err := Redact("erasure")(c, now); err != nil {
		t.Fatal(err)
	}
	if c.Applicant != (Applicant{}) || c.ExternalRef != "" || c.Metadata != nil || c.Labels != nil ||
		c.Documents[0].MaskedNumber != "" || c.Checks[0].Reference != "" || c.Review.Comment != "" || c.Review.Reviewer != "" {
		t.Fatalf("personal data left: %+v", c)
	}
	if c.Documents[0].Type != DocPassport || c.Checks[0].Result != ResultClear || c.Status != StatusRedacted {
		t.Fatalf("tombstone lost non-personal facts: %+v", c)
	}
}

func TestClosedCasesRefuseDataChanges(t *testing.T) {
	for _, st := range []Status{StatusApproved, StatusRejected, StatusExpired, StatusRedacted} {
		c := &Case{Status: st}
		for name, ch := range map[string]Change{
			"applicant": UpdateApplicant(Applicant{FullName: "X"}),
			"document":  AddDocument(Document{Type: DocSelfie}, seq()),
			"check":     RecordCheck(Check{Type: CheckPEP, Result: ResultClear}, seq()),
			"risk":      SetRisk(Risk{Level: RiskLow}),
		} {
			if _, err := ch(c.Clone(), now); !errors.Is(err, ErrClosed) {
				t.Errorf("%s on %s: %v, want ErrClosed", name, st, err)
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
