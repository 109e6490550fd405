package kyc

import (
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/casekeeper/core/pkg/validation"
)

// Limits that keep one case document far below MongoDB's 16 MiB and every event small enough for JetStream.
const (
	MaxDocuments  = 50
	MaxChecks     = 100
	maxLabels     = 50
	maxLabel      = 64
	maxMetadata   = 50
	maxMetaKey    = 64
	maxMetaValue  = 1024
	maxName       = 200
	maxRef        = 256
	maxRequestID  = 128
	maxReason     = 500
	maxComment    = 2000
	maxReasons    = 20
	maxAddressLen = 200
)

var (
	countryCode = regexp.MustCompile(`^[A-Z]{2}$`)
	e164        = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	maskedDoc   = regexp.MustCompile(`^[*Xx]*[A-Za-z0-9]{0,6}$`)
)

func fieldError(field, format string, args ...any) error {
	var errs validation.Errors
	errs.Add(field, format, args...)
	return errs
}

// checkText is the one check of the API's free text: valid UTF-8 on one line, no control characters and no
// bidirectional controls (the shared validation.TextProblem), at most max characters. No field of the case API is
// documented to hold line breaks, so none may.
func checkText(field, v string, max int) error {
	if msg := validation.TextProblem(v, validation.TextRule{}); msg != "" {
		return fieldError(field, "%s", msg)
	}
	if utf8.RuneCountInString(v) > max {
		return fieldError(field, "must be at most %d characters", max)
	}
	return nil
}

// Validate checks a creation request.
func (in NewCase) Validate() error {
	var errs validation.Errors
	if in.RequestID == "" {
		errs.Add("request_id", "must be 1 to %d characters: the idempotency key of the creation", maxRequestID)
	}
	text(&errs, "request_id", in.RequestID, maxRequestID)
	text(&errs, "external_ref", in.ExternalRef, maxRef)
	text(&errs, "assignee", in.Assignee, maxName)
	if in.Level != "" && !validLevel(in.Level) {
		errs.Add("level", "unknown verification level %q", in.Level)
	}
	labels(&errs, "labels", in.Labels)
	metadata(&errs, "metadata", in.Metadata)
	if len(in.Documents) > MaxDocuments {
		errs.Add("documents", "a case holds at most %d documents, got %d", MaxDocuments, len(in.Documents))
	} else {
		for i, d := range in.Documents {
			appendErr(&errs, validateDocument(d, fmt.Sprintf("documents[%d]", i)))
		}
	}
	appendErr(&errs, validateApplicant(in.Applicant, "applicant"))
	return errs.Err()
}

// Validate checks an update of plain fields.
func (u CaseUpdate) Validate() error {
	var errs validation.Errors
	if len(u.Fields) == 0 {
		errs.Add("update_mask", "name at least one of level, labels, metadata, assignee, external_ref")
	}
	for _, f := range u.Fields {
		switch f {
		case "level":
			if !validLevel(u.Level) {
				errs.Add("level", "unknown verification level %q", u.Level)
			}
		case "labels":
			labels(&errs, "labels", u.Labels)
		case "metadata":
			metadata(&errs, "metadata", u.Metadata)
		case "assignee":
			text(&errs, "assignee", u.Assignee, maxName)
		case "external_ref":
			text(&errs, "external_ref", u.ExternalRef, maxRef)
		default:
			errs.Add("update_mask", "unknown field %q", f)
		}
	}
	return errs.Err()
}

func validateApplicant(a Applicant, field string) error {
	var errs validation.Errors
	text(&errs, field+".full_name", a.FullName, maxName)
	if a.DateOfBirth != "" {
		dob, err := time.Parse(time.DateOnly, a.DateOfBirth)
		switch {
		case err != nil:
			errs.Add(field+".date_of_birth", "must be a calendar date YYYY-MM-DD")
		case dob.Year() < 1900 || dob.After(time.Now()):
			errs.Add(field+".date_of_birth", "must be between 1900-01-01 and today")
		}
	}
	if a.Nationality != "" && !countryCode.MatchString(a.Nationality) {
		errs.Add(field+".nationality", "must be an ISO 3166-1 alpha-2 code such as DE")
	}
	if a.Email != "" {
		if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Address != a.Email || len(a.Email) > 254 {
			errs.Add(field+".email", "must be a plain e-mail address such as jane@example.com")
		}
	}
	if a.Phone != "" && !e164.MatchString(a.Phone) {
		errs.Add(field+".phone", "must be in E.164 form such as +4915112345678")
	}
	addr := a.Address
	for name, v := range map[string]string{"line1": addr.Line1, "line2": addr.Line2, "city": addr.City,
		"postal_code": addr.PostalCode, "region": addr.Region} {
		text(&errs, field+".address."+name, v, maxAddressLen)
	}
	if addr.Country != "" && !countryCode.MatchString(addr.Country) {
		errs.Add(field+".address.country", "must be an ISO 3166-1 alpha-2 code such as DE")
	}
	return errs.Err()
}

func validateDocument(d Document, field string) error {
	var errs validation.Errors
	if !slices.Contains([]DocumentType{DocPassport, DocIDCard, DocDrivingLicence, DocProofOfAddress, DocSelfie}, d.Type) {
		errs.Add(field+".type", "must be one of passport, id_card, driving_licence, proof_of_address, selfie")
	}
	if d.IssuingCountry != "" && !countryCode.MatchString(d.IssuingCountry) {
		errs.Add(field+".issuing_country", "must be an ISO 3166-1 alpha-2 code such as DE")
	}
	if len(d.MaskedNumber) > 64 || !maskedDoc.MatchString(d.MaskedNumber) {
		errs.Add(field+".masked_number", "must be masked: at most 6 visible letters or digits after * or X, e.g. *****1234")
	}
	if d.Decision != "" && !slices.Contains([]DocumentDecision{DecisionPending, DecisionAccepted, DecisionRejected}, d.Decision) {
		errs.Add(field+".decision", "unknown decision %q", d.Decision)
	}
	return errs.Err()
}

func validateCheck(c Check, field string) error {
	var errs validation.Errors
	if !slices.Contains([]CheckType{CheckDocument, CheckLiveness, CheckAMLScreening, CheckPEP, CheckSanctions}, c.Type) {
		errs.Add(field+".type", "must be one of document, liveness, aml_screening, pep, sanctions")
	}
	if !slices.Contains([]CheckResult{ResultClear, ResultConsider, ResultFail, ResultError}, c.Result) {
		errs.Add(field+".result", "must be one of clear, consider, fail, error")
	}
	text(&errs, field+".provider", c.Provider, maxName)
	text(&errs, field+".reference", c.Reference, maxRef)
	if !c.CompletedAt.IsZero() && c.CompletedAt.After(time.Now().Add(5*time.Minute)) {
		errs.Add(field+".completed_at", "must not be in the future")
	}
	return errs.Err()
}

func validateRisk(r Risk, field string) error {
	var errs validation.Errors
	if !slices.Contains([]RiskLevel{RiskLow, RiskMedium, RiskHigh}, r.Level) {
		errs.Add(field+".level", "must be one of low, medium, high")
	}
	if r.Score < 0 || r.Score > 100 {
		errs.Add(field+".score", "must be between 0 and 100")
	}
	if len(r.Reasons) > maxReasons {
		errs.Add(field+".reasons", "at most %d reasons", maxReasons)
	}
	for i, reason := range r.Reasons {
		text(&errs, fmt.Sprintf("%s.reasons[%d]", field, i), reason, maxName)
	}
	return errs.Err()
}

func validateReview(r Review, retry bool) error {
	var errs validation.Errors
	if !retry && r.Answer != AnswerApproved && r.Answer != AnswerRejected {
		errs.Add("answer", "must be approved or rejected")
	}
	if r.Answer == AnswerApproved && len(r.RejectLabels) > 0 {
		errs.Add("reject_labels", "must be empty when the answer is approved")
	}
	if len(r.RejectLabels) > maxLabels {
		errs.Add("reject_labels", "at most %d labels", maxLabels)
	}
	for i, l := range r.RejectLabels {
		text(&errs, fmt.Sprintf("reject_labels[%d]", i), l, maxLabel)
	}
	text(&errs, "reviewer", r.Reviewer, maxName)
	text(&errs, "comment", r.Comment, maxComment)
	return errs.Err()
}

func validLevel(l Level) bool { return l == LevelBasic || l == LevelEnhanced }

func labels(errs *validation.Errors, field string, ls []string) {
	if len(ls) > maxLabels {
		errs.Add(field, "at most %d labels", maxLabels)
		return
	}
	for i, l := range ls {
		if l == "" {
			errs.Add(fmt.Sprintf("%s[%d]", field, i), "must not be empty")
		}
		text(errs, fmt.Sprintf("%s[%d]", field, i), l, maxLabel)
	}
}

func metadata(errs *validation.Errors, field string, m map[string]string) {
	if len(m) > maxMetadata {
		errs.Add(field, "at most %d entries", maxMetadata)
		return
	}
	for k, v := range m {
		if k == "" {
			errs.Add(field, "keys must not be empty")
		}
		if msg := validation.TextProblem(k, validation.TextRule{}); msg != "" {
			// The key cannot name the field: it would carry the very characters refused.
			errs.Add(field, "key %q %s", k, msg)
			continue
		}
		text(errs, field+"."+k, k, maxMetaKey)
		text(errs, field+"."+k, v, maxMetaValue)
	}
}

func text(errs *validation.Errors, field, v string, max int) {
	appendErr(errs, checkText(field, v, max))
}

func appendErr(errs *validation.Errors, err error) {
	if fe, ok := validation.As(err); ok {
		*errs = append(*errs, fe...)
	}
}
