// Package kyc is the domain of the case service: a KYC case of one tenant, its lifecycle as an explicit state
// machine, and the rules its data must satisfy. It does no I/O.
package kyc

import (
	"errors"
	"maps"
	"slices"
	"time"
)

// Sentinel errors; adapters translate to them and the gRPC edge maps them to status codes.
var (
	ErrNotFound = errors.New("case not found")
	// ErrVersionMismatch means the caller's expected version is not the case's version.
	ErrVersionMismatch = errors.New("case version mismatch")
	// ErrInvalidTransition is wrapped by TransitionError.
	ErrInvalidTransition = errors.New("invalid status transition")
	// ErrClosed means the case no longer accepts this change in its status.
	ErrClosed = errors.New("case does not accept this change in its status")
)

// Level is the depth of verification the tenant asked for.
type Level string

const (
	LevelBasic    Level = "basic"
	LevelEnhanced Level = "enhanced"
)

// DocumentType, DocumentDecision, CheckType, CheckResult, RiskLevel, ReviewAnswer and RejectType are closed sets.
type (
	DocumentType     string
	DocumentDecision string
	CheckType        string
	CheckResult      string
	RiskLevel        string
	ReviewAnswer     string
	RejectType       string
)

const (
	DocPassport       DocumentType = "passport"
	DocIDCard         DocumentType = "id_card"
	DocDrivingLicence DocumentType = "driving_licence"
	DocProofOfAddress DocumentType = "proof_of_address"
	DocSelfie         DocumentType = "selfie"

	DecisionPending  DocumentDecision = "pending"
	DecisionAccepted DocumentDecision = "accepted"
	DecisionRejected DocumentDecision = "rejected"

	CheckDocument     CheckType = "document"
	CheckLiveness     CheckType = "liveness"
	CheckAMLScreening CheckType = "aml_screening"
	CheckPEP          CheckType = "pep"
	CheckSanctions    CheckType = "sanctions"

	ResultClear    CheckResult = "clear"
	ResultConsider CheckResult = "consider"
	ResultFail     CheckResult = "fail"
	ResultError    CheckResult = "error"

	RiskLow    RiskLevel = "low"
	RiskMedium RiskLevel = "medium"
	RiskHigh   RiskLevel = "high"

	AnswerApproved ReviewAnswer = "approved"
	AnswerRejected ReviewAnswer = "rejected"

	RejectFinal RejectType = "final"
	RejectRetry RejectType = "retry"
)

// Address is where the applicant lives.
type Address struct {
	Line1, Line2, City, PostalCode, Region, Country string
}

// Applicant is the person being verified; all of it is personal data.
type Applicant struct {
	FullName    string
	DateOfBirth string // YYYY-MM-DD
	Nationality string // ISO 3166-1 alpha-2
	Email       string
	Phone       string // E.164
	Address     Address
}

// Document is one identity document or selfie.
type Document struct {
	ID             string
	Type           DocumentType
	IssuingCountry string
	MaskedNumber   string
	Decision       DocumentDecision
	AddedAt        time.Time
}

// Check is the result of one verification by a provider.
type Check struct {
	ID          string
	Type        CheckType
	Result      CheckResult
	Provider    string
	Reference   string
	CompletedAt time.Time
}

// Risk is the case's assessed risk.
type Risk struct {
	Level   RiskLevel
	Score   int32
	Reasons []string
}

// Review is the reviewer's verdict.
type Review struct {
	Answer       ReviewAnswer
	RejectLabels []string
	RejectType   RejectType
	Reviewer     string
	Comment      string
	ReviewedAt   time.Time
}

// Case is one KYC case of one tenant. Version grows by one with every change.
type Case struct {
	ID           string
	Tenant       string
	RequestID    string
	ExternalRef  string
	Level        Level
	Status       Status
	StatusReason string
	Applicant    Applicant
	Documents    []Document
	Checks       []Check
	Risk         *Risk
	Review       *Review
	Labels       []string
	Metadata     map[string]string
	Assignee     string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	SubmittedAt  time.Time
	ReviewedAt   time.Time
	RedactedAt   time.Time
	Version      int64
}

// Clone returns a deep copy, so that a change can be computed without touching the loaded case.
func (c *Case) Clone() *Case {
	n := *c
	n.Documents = slices.Clone(c.Documents)
	n.Checks = slices.Clone(c.Checks)
	n.Labels = slices.Clone(c.Labels)
	n.Metadata = maps.Clone(c.Metadata)
	if c.Risk != nil {
		r := *c.Risk
		r.Reasons = slices.Clone(c.Risk.Reasons)
		n.Risk = &r
	}
	if c.Review != nil {
		r := *c.Review
		r.RejectLabels = slices.Clone(c.Review.RejectLabels)
		n.Review = &r
	}
	return &n
}
