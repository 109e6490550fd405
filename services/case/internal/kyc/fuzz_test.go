package kyc

import (
	"errors"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/validation"
)

// FuzzTransitions applies random sequences of changes and checks the invariants after each: the status is known,
// only allowed moves happen, a refused change leaves the case as it was, and a redacted case holds no personal data
// and never changes again.
func FuzzTransitions(f *testing.F) {
	f.Add([]byte{0, 1, 5, 2, 8})
	f.Add([]byte{0, 1, 2, 3, 6, 0, 1, 4, 9})
	f.Add([]byte{10, 11, 12, 13, 8, 8, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		ids := seq()
		c, err := Create("case-1", "acme", NewCase{RequestID: "r", Applicant: Applicant{FullName: "Jane Roe", Email: "jane@example.com"}}, ids, now)
		if err != nil {
			t.Fatal(err)
		}
		changes := []Change{
			Submit(), StartReview("rita"), PutOnHold("wait"), ResumeReview(),
			CompleteReview(Review{Answer: AnswerApproved}), CompleteReview(Review{Answer: AnswerRejected}),
			RequestResubmission(Review{RejectLabels: []string{"BLURRY"}}), Expire("late"), Redact("gdpr"),
			UpdateApplicant(Applicant{FullName: "John Doe"}),
			AddDocument(Document{Type: DocPassport, MaskedNumber: "***123"}, ids),
			RecordCheck(Check{Type: CheckLiveness, Result: ResultClear}, ids),
			SetRisk(Risk{Level: RiskHigh, Score: 90, Reasons: []string{"PEP match"}}),
			UpdateCase(CaseUpdate{Fields: []string{"labels"}, Labels: []string{"x"}}),
			CompleteReview(Review{Answer: "maybe"}),
		}
		for i, op := range ops {
			at := now.Add(time.Duration(i) * time.Second)
			before := c.Clone()
			next := c.Clone()
			_, err := changes[int(op)%len(changes)](next, at)
			if err != nil {
				if _, isField := validation.As(err); !isField && !errors.Is(err, ErrInvalidTransition) && !errors.Is(err, ErrClosed) {
					t.Fatalf("refusal of an unexpected kind: %v", err)
				}
				continue // refused: the copy is dropped and c stays as it was
			}
			if !next.Status.Valid() {
				t.Fatalf("unknown status %q", next.Status)
			}
			if next.Status != before.Status && !before.Status.CanMoveTo(next.Status) {
				t.Fatalf("moved %s → %s, which the table forbids", before.Status, next.Status)
			}
			if before.Status == StatusRedacted {
				t.Fatalf("a redacted case changed")
			}
			if next.Status == StatusRedacted && (next.Applicant != (Applicant{}) || next.Metadata != nil) {
				t.Fatalf("redacted case keeps personal data")
			}
			if len(next.Documents) > MaxDocuments {
				t.Fatalf("too many documents")
			}
			c = next
		}
	})
}
