package mongostore

import (
	"time"

	"github.com/casekeeper/core/services/case/internal/kyc"
)

// caseDoc is a case as the projection stores it. Its top-level fields have no omitempty, so a field emptied by a
// change reads back as empty.
type caseDoc struct {
	ID           string            `bson:"_id"`
	Tenant       string            `bson:"tenant"`
	ExternalRef  string            `bson:"external_ref"`
	Level        string            `bson:"level"`
	Status       string            `bson:"status"`
	StatusReason string            `bson:"status_reason"`
	Applicant    applicantDoc      `bson:"applicant"`
	Documents    []documentDoc     `bson:"documents"`
	Checks       []checkDoc        `bson:"checks"`
	Risk         *riskDoc          `bson:"risk"`
	Review       *reviewDoc        `bson:"review"`
	Labels       []string          `bson:"labels"`
	Metadata     map[string]string `bson:"metadata"`
	Assignee     string            `bson:"assignee"`
	CreatedAt    time.Time         `bson:"created_at"`
	UpdatedAt    time.Time         `bson:"updated_at"`
	SubmittedAt  *time.Time        `bson:"submitted_at"`
	ReviewedAt   *time.Time        `bson:"reviewed_at"`
	RedactedAt   *time.Time        `bson:"redacted_at"`
	Version      int64             `bson:"version"`
}

type applicantDoc struct {
	FullName    string     `bson:"full_name,omitempty"`
	DateOfBirth string     `bson:"date_of_birth,omitempty"`
	Nationality string     `bson:"nationality,omitempty"`
	Email       string     `bson:"email,omitempty"`
	Phone       string     `bson:"phone,omitempty"`
	Address     addressDoc `bson:"address"`
}

type addressDoc struct {
	Line1      string `bson:"line1,omitempty"`
	Line2      string `bson:"line2,omitempty"`
	City       string `bson:"city,omitempty"`
	PostalCode string `bson:"postal_code,omitempty"`
	Region     string `bson:"region,omitempty"`
	Country    string `bson:"country,omitempty"`
}

type documentDoc struct {
	ID             string    `bson:"id"`
	Type           string    `bson:"type"`
	IssuingCountry string    `bson:"issuing_country,omitempty"`
	MaskedNumber   string    `bson:"masked_number,omitempty"`
	Decision       string    `bson:"decision"`
	AddedAt        time.Time `bson:"added_at"`
}

type checkDoc struct {
	ID          string    `bson:"id"`
	Type        string    `bson:"type"`
	Result      string    `bson:"result"`
	Provider    string    `bson:"provider,omitempty"`
	Reference   string    `bson:"reference,omitempty"`
	CompletedAt time.Time `bson:"completed_at"`
}

type riskDoc struct {
	Level   string   `bson:"level"`
	Score   int32    `bson:"score"`
	Reasons []string `bson:"reasons"`
}

type reviewDoc struct {
	Answer       string    `bson:"answer"`
	RejectLabels []string  `bson:"reject_labels"`
	RejectType   string    `bson:"reject_type,omitempty"`
	Reviewer     string    `bson:"reviewer,omitempty"`
	Comment      string    `bson:"comment,omitempty"`
	ReviewedAt   time.Time `bson:"reviewed_at"`
}

func toDoc(c *kyc.Case) caseDoc {
	d := caseDoc{
		ID: c.ID, Tenant: c.Tenant, ExternalRef: c.ExternalRef, Level: string(c.Level),
		Status: string(c.Status), StatusReason: c.StatusReason,
		Applicant: applicantDoc{
			FullName: c.Applicant.FullName, DateOfBirth: c.Applicant.DateOfBirth, Nationality: c.Applicant.Nationality,
			Email: c.Applicant.Email, Phone: c.Applicant.Phone,
			Address: addressDoc(c.Applicant.Address),
		},
		Documents: []documentDoc{}, Checks: []checkDoc{}, Labels: nonNil(c.Labels), Metadata: c.Metadata,
		Assignee: c.Assignee, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		SubmittedAt: timePtr(c.SubmittedAt), ReviewedAt: timePtr(c.ReviewedAt), RedactedAt: timePtr(c.RedactedAt),
		Version: c.Version,
	}
	if d.Metadata == nil {
		d.Metadata = map[string]string{}
	}
	for _, doc := range c.Documents {
		d.Documents = append(d.Documents, documentDoc{ID: doc.ID, Type: string(doc.Type), IssuingCountry: doc.IssuingCountry,
			MaskedNumber: doc.MaskedNumber, Decision: string(doc.Decision), AddedAt: doc.AddedAt})
	}
	for _, ch := range c.Checks {
		d.Checks = append(d.Checks, checkDoc{ID: ch.ID, Type: string(ch.Type), Result: string(ch.Result),
			Provider: ch.Provider, Reference: ch.Reference, CompletedAt: ch.CompletedAt})
	}
	if c.Risk != nil {
		d.Risk = &riskDoc{Level: string(c.Risk.Level), Score: c.Risk.Score, Reasons: nonNil(c.Risk.Reasons)}
	}
	if c.Review != nil {
		d.Review = &reviewDoc{Answer: string(c.Review.Answer), RejectLabels: nonNil(c.Review.RejectLabels),
			RejectType: string(c.Review.RejectType), Reviewer: c.Review.Reviewer, Comment: c.Review.Comment,
			ReviewedAt: c.Review.ReviewedAt}
	}
	return d
}

func (d caseDoc) toDomain() *kyc.Case {
	c := &kyc.Case{
		ID: d.ID, Tenant: d.Tenant, ExternalRef: d.ExternalRef, Level: kyc.Level(d.Level),
		Status: kyc.Status(d.Status), StatusReason: d.StatusReason,
		Applicant: kyc.Applicant{
			FullName: d.Applicant.FullName, DateOfBirth: d.Applicant.DateOfBirth, Nationality: d.Applicant.Nationality,
			Email: d.Applicant.Email, Phone: d.Applicant.Phone, Address: kyc.Address(d.Applicant.Address),
		},
		Labels: emptyToNil(d.Labels), Assignee: d.Assignee,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		SubmittedAt: timeVal(d.SubmittedAt), ReviewedAt: timeVal(d.ReviewedAt), RedactedAt: timeVal(d.RedactedAt),
		Version: d.Version,
	}
	if len(d.Metadata) > 0 {
		c.Metadata = d.Metadata
	}
	for _, doc := range d.Documents {
		c.Documents = append(c.Documents, kyc.Document{ID: doc.ID, Type: kyc.DocumentType(doc.Type),
			IssuingCountry: doc.IssuingCountry, MaskedNumber: doc.MaskedNumber,
			Decision: kyc.DocumentDecision(doc.Decision), AddedAt: doc.AddedAt.UTC()})
	}
	for _, ch := range d.Checks {
		c.Checks = append(c.Checks, kyc.Check{ID: ch.ID, Type: kyc.CheckType(ch.Type), Result: kyc.CheckResult(ch.Result),
			Provider: ch.Provider, Reference: ch.Reference, CompletedAt: ch.CompletedAt.UTC()})
	}
	if d.Risk != nil {
		c.Risk = &kyc.Risk{Level: kyc.RiskLevel(d.Risk.Level), Score: d.Risk.Score, Reasons: emptyToNil(d.Risk.Reasons)}
	}
	if d.Review != nil {
		c.Review = &kyc.Review{Answer: kyc.ReviewAnswer(d.Review.Answer), RejectLabels: emptyToNil(d.Review.RejectLabels),
			RejectType: kyc.RejectType(d.Review.RejectType), Reviewer: d.Review.Reviewer, Comment: d.Review.Comment,
			ReviewedAt: d.Review.ReviewedAt.UTC()}
	}
	return c
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func timeVal(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func emptyToNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
