package kyc

import (
	"fmt"
	"time"
)

// Event types; every change produces exactly one.
const (
	EventCreated         = "case.created"
	EventUpdated         = "case.updated"
	EventStatusChanged   = "case.status_changed"
	EventDocumentAdded   = "case.document_added"
	EventCheckRecorded   = "case.check_recorded"
	EventRiskSet         = "case.risk_set"
	EventReviewCompleted = "case.review_completed"
	EventRedacted        = "case.redacted"
)

// Change is one modification of a case: it validates its input, applies itself to c at time now and names the
// event it produces. Callers apply it to a copy and drop the copy when it returns an error.
type Change func(c *Case, now time.Time) (eventType string, err error)

// NewCase is the input of a case creation.
type NewCase struct {
	RequestID   string
	ExternalRef string
	Level       Level
	Applicant   Applicant
	Documents   []Document
	Labels      []string
	Metadata    map[string]string
	Assignee    string
}

// Create builds a draft case from validated input.
func Create(id, tenant string, in NewCase, newID func() string, now time.Time) (*Case, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	level := in.Level
	if level == "" {
		level = LevelBasic
	}
	c := &Case{
		ID: id, Tenant: tenant, RequestID: in.RequestID, ExternalRef: in.ExternalRef, Level: level,
		Status: StatusDraft, Applicant: in.Applicant, Labels: in.Labels, Metadata: in.Metadata,
		Assignee: in.Assignee, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	for _, d := range in.Documents {
		c.Documents = append(c.Documents, d.stamped(newID(), now))
	}
	return c, nil
}

// CaseUpdate names the plain fields to replace; only those listed in Fields change.
type CaseUpdate struct {
	Fields      []string // level, labels, metadata, assignee, external_ref
	Level       Level
	Labels      []string
	Metadata    map[string]string
	Assignee    string
	ExternalRef string
}

// UpdateCase replaces the plain fields named in u.Fields.
func UpdateCase(u CaseUpdate) Change {
	return func(c *Case, now time.Time) (string, error) {
		if err := u.Validate(); err != nil {
			return "", err
		}
		if c.Status == StatusRedacted {
			return "", closedError(c.Status, "its details")
		}
		for _, f := range u.Fields {
			switch f {
			case "level":
				c.Level = u.Level
			case "labels":
				c.Labels = u.Labels
			case "metadata":
				c.Metadata = u.Metadata
			case "assignee":
				c.Assignee = u.Assignee
			case "external_ref":
				c.ExternalRef = u.ExternalRef
			}
		}
		return EventUpdated, nil
	}
}

// UpdateApplicant replaces the applicant while the case is open.
func UpdateApplicant(a Applicant) Change {
	return func(c *Case, now time.Time) (string, error) {
		if err := validateApplicant(a, "applicant"); err != nil {
			return "", err
		}
		if !c.Status.Open() {
			return "", closedError(c.Status, "the applicant")
		}
		c.Applicant = a
		return EventUpdated, nil
	}
}

// AddDocument appends a document while the case is open.
func AddDocument(d Document, newID func() string) Change {
	return func(c *Case, now time.Time) (string, error) {
		if err := validateDocument(d, "document"); err != nil {
			return "", err
		}
		if !c.Status.Open() {
			return "", closedError(c.Status, "documents")
		}
		if len(c.Documents) >= MaxDocuments {
			return "", fieldError("document", "a case holds at most %d documents", MaxDocuments)
		}
		c.Documents = append(c.Documents, d.stamped(newID(), now))
		return EventDocumentAdded, nil
	}
}

// RecordCheck appends a check result while the case is open.
func RecordCheck(ch Check, newID func() string) Change {
	return func(c *Case, now time.Time) (string, error) {
		if err := validateCheck(ch, "check"); err != nil {
			return "", err
		}
		if !c.Status.Open() {
			return "", closedError(c.Status, "checks")
		}
		if len(c.Checks) >= MaxChecks {
			return "", fieldError("check", "a case holds at most %d checks", MaxChecks)
		}
		ch.ID = newID()
		if ch.CompletedAt.IsZero() {
			ch.CompletedAt = now
		}
		c.Checks = append(c.Checks, ch)
		return EventCheckRecorded, nil
	}
}

// SetRisk replaces the risk assessment while the case is open.
func SetRisk(r Risk) Change {
	return func(c *Case, now time.Time) (string, error) {
		if err := validateRisk(r, "risk"); err != nil {
			return "", err
		}
		if !c.Status.Open() {
			return "", closedError(c.Status, "the risk")
		}
		c.Risk = &r
		return EventRiskSet, nil
	}
}

// Submit hands a draft (or a case sent back for resubmission) in for review.
func Submit() Change {
	return move(StatusSubmitted, func(c *Case, now time.Time) { c.SubmittedAt = now; c.StatusReason = "" })
}

// StartReview puts a submitted case in a reviewer's hands.
func StartReview(reviewer string) Change {
	return func(c *Case, now time.Time) (string, error) {
		if err := checkText("reviewer", reviewer, maxName); err != nil {
			return "", err
		}
		if c.Status != StatusSubmitted {
			return "", &TransitionError{From: c.Status, To: StatusInReview}
		}
		return move(StatusInReview, func(c *Case, now time.Time) {
			if reviewer != "" {
				c.Assignee = reviewer
			}
			c.StatusReason = ""
		})(c, now)
	}
}

// PutOnHold pauses a review.
func PutOnHold(reason string) Change {
	return withReason(reason, StatusOnHold)
}

// ResumeReview takes a case off hold.
func ResumeReview() Change {
	return func(c *Case, now time.Time) (string, error) {
		if c.Status != StatusOnHold {
			return "", &TransitionError{From: c.Status, To: StatusInReview}
		}
		return move(StatusInReview, func(c *Case, now time.Time) { c.StatusReason = "" })(c, now)
	}
}

// CompleteReview approves or rejects (finally) a case in review.
func CompleteReview(r Review) Change {
	return func(c *Case, now time.Time) (string, error) {
		if err := validateReview(r, false); err != nil {
			return "", err
		}
		to := StatusApproved
		r.RejectType = ""
		if r.Answer == AnswerRejected {
			to, r.RejectType = StatusRejected, RejectFinal
		}
		return review(c, now, to, r)
	}
}

// RequestResubmission rejects a case in review with a retry: the applicant may submit again.
func RequestResubmission(r Review) Change {
	return func(c *Case, now time.Time) (string, error) {
		r.Answer, r.RejectType = AnswerRejected, RejectRetry
		if err := validateReview(r, true); err != nil {
			return "", err
		}
		return review(c, now, StatusResubmissionRequested, r)
	}
}

// Expire ends an open case that ran out of time.
func Expire(reason string) Change {
	return withReason(reason, StatusExpired)
}

// Redact erases the personal data (GDPR) and keeps the case as a tombstone: identity, status history times,
// level, document types and check results stay; anything that could identify the person goes.
func Redact(reason string) Change {
	return func(c *Case, now time.Time) (string, error) {
		if err := checkText("reason", reason, maxReason); err != nil {
			return "", err
		}
		if !c.Status.CanMoveTo(StatusRedacted) {
			return "", &TransitionError{From: c.Status, To: StatusRedacted}
		}
		c.Status, c.StatusReason, c.RedactedAt = StatusRedacted, reason, now
		c.Applicant = Applicant{}
		c.ExternalRef, c.Assignee = "", ""
		c.Labels, c.Metadata = nil, nil
		for i := range c.Documents {
			c.Documents[i].MaskedNumber = ""
		}
		for i := range c.Checks {
			c.Checks[i].Reference = ""
		}
		if c.Risk != nil {
			c.Risk.Reasons = nil
		}
		if c.Review != nil {
			c.Review.Comment, c.Review.Reviewer = "", ""
		}
		return EventRedacted, nil
	}
}

func review(c *Case, now time.Time, to Status, r Review) (string, error) {
	if !c.Status.CanMoveTo(to) || c.Status != StatusInReview {
		return "", &TransitionError{From: c.Status, To: to}
	}
	r.ReviewedAt = now
	c.Review = &r
	c.Status, c.ReviewedAt, c.StatusReason = to, now, ""
	return EventReviewCompleted, nil
}

func withReason(reason string, to Status) Change {
	return func(c *Case, now time.Time) (string, error) {
		if err := checkText("reason", reason, maxReason); err != nil {
			return "", err
		}
		return move(to, func(c *Case, now time.Time) { c.StatusReason = reason })(c, now)
	}
}

// move is a plain status change guarded by the state machine.
func move(to Status, apply func(c *Case, now time.Time)) Change {
	return func(c *Case, now time.Time) (string, error) {
		if !c.Status.CanMoveTo(to) {
			return "", &TransitionError{From: c.Status, To: to}
		}
		c.Status = to
		apply(c, now)
		return EventStatusChanged, nil
	}
}

func (d Document) stamped(id string, now time.Time) Document {
	d.ID, d.AddedAt = id, now
	if d.Decision == "" {
		d.Decision = DecisionPending
	}
	return d
}

func closedError(s Status, what string) error {
	return fmt.Errorf("%w: case is %s, so %s can no longer change", ErrClosed, s, what)
}
