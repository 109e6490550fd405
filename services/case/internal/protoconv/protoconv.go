// Package protoconv converts between the kyc domain and the casekeeper.v1 contract, for the gRPC API and for the
// event envelope alike, so that a case reads the same in a response and in an event.
package protoconv

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/validation"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/case/internal/kyc"
)

// enumMap pairs proto enum values with domain values; UNSPECIFIED maps to the domain's zero value.
type enumMap[P ~int32, D ~string] map[P]D

func (m enumMap[P, D]) toDomain(errs *validation.Errors, field string, p P, required bool) D {
	if p == 0 {
		if required {
			errs.Add(field, "is required")
		}
		return ""
	}
	d, ok := m[p]
	if !ok {
		errs.Add(field, "unknown value %d", int32(p))
	}
	return d
}

func (m enumMap[P, D]) toProto(d D) P {
	for p, v := range m {
		if v == d {
			return p
		}
	}
	return 0
}

var (
	statuses = enumMap[pb.CaseStatus, kyc.Status]{
		pb.CaseStatus_CASE_STATUS_DRAFT: kyc.StatusDraft, pb.CaseStatus_CASE_STATUS_SUBMITTED: kyc.StatusSubmitted,
		pb.CaseStatus_CASE_STATUS_IN_REVIEW: kyc.StatusInReview, pb.CaseStatus_CASE_STATUS_APPROVED: kyc.StatusApproved,
		pb.CaseStatus_CASE_STATUS_REJECTED: kyc.StatusRejected, pb.CaseStatus_CASE_STATUS_RESUBMISSION_REQUESTED: kyc.StatusResubmissionRequested,
		pb.CaseStatus_CASE_STATUS_ON_HOLD: kyc.StatusOnHold, pb.CaseStatus_CASE_STATUS_EXPIRED: kyc.StatusExpired,
		pb.CaseStatus_CASE_STATUS_REDACTED: kyc.StatusRedacted,
	}
	levels = enumMap[pb.VerificationLevel, kyc.Level]{
		pb.VerificationLevel_VERIFICATION_LEVEL_BASIC: kyc.LevelBasic, pb.VerificationLevel_VERIFICATION_LEVEL_ENHANCED: kyc.LevelEnhanced,
	}
	docTypes = enumMap[pb.DocumentType, kyc.DocumentType]{
		pb.DocumentType_DOCUMENT_TYPE_PASSPORT: kyc.DocPassport, pb.DocumentType_DOCUMENT_TYPE_ID_CARD: kyc.DocIDCard,
		pb.DocumentType_DOCUMENT_TYPE_DRIVING_LICENCE: kyc.DocDrivingLicence, pb.DocumentType_DOCUMENT_TYPE_PROOF_OF_ADDRESS: kyc.DocProofOfAddress,
		pb.DocumentType_DOCUMENT_TYPE_SELFIE: kyc.DocSelfie,
	}
	decisions = enumMap[pb.DocumentDecision, kyc.DocumentDecision]{
		pb.DocumentDecision_DOCUMENT_DECISION_PENDING: kyc.DecisionPending, pb.DocumentDecision_DOCUMENT_DECISION_ACCEPTED: kyc.DecisionAccepted,
		pb.DocumentDecision_DOCUMENT_DECISION_REJECTED: kyc.DecisionRejected,
	}
	checkTypes = enumMap[pb.CheckType, kyc.CheckType]{
		pb.CheckType_CHECK_TYPE_DOCUMENT: kyc.CheckDocument, pb.CheckType_CHECK_TYPE_LIVENESS: kyc.CheckLiveness,
		pb.CheckType_CHECK_TYPE_AML_SCREENING: kyc.CheckAMLScreening, pb.CheckType_CHECK_TYPE_PEP: kyc.CheckPEP,
		pb.CheckType_CHECK_TYPE_SANCTIONS: kyc.CheckSanctions,
	}
	checkResults = enumMap[pb.CheckResult, kyc.CheckResult]{
		pb.CheckResult_CHECK_RESULT_CLEAR: kyc.ResultClear, pb.CheckResult_CHECK_RESULT_CONSIDER: kyc.ResultConsider,
		pb.CheckResult_CHECK_RESULT_FAIL: kyc.ResultFail, pb.CheckResult_CHECK_RESULT_ERROR: kyc.ResultError,
	}
	riskLevels = enumMap[pb.RiskLevel, kyc.RiskLevel]{
		pb.RiskLevel_RISK_LEVEL_LOW: kyc.RiskLow, pb.RiskLevel_RISK_LEVEL_MEDIUM: kyc.RiskMedium, pb.RiskLevel_RISK_LEVEL_HIGH: kyc.RiskHigh,
	}
	answers = enumMap[pb.ReviewAnswer, kyc.ReviewAnswer]{
		pb.ReviewAnswer_REVIEW_ANSWER_APPROVED: kyc.AnswerApproved, pb.ReviewAnswer_REVIEW_ANSWER_REJECTED: kyc.AnswerRejected,
	}
	rejectTypes = enumMap[pb.RejectType, kyc.RejectType]{
		pb.RejectType_REJECT_TYPE_FINAL: kyc.RejectFinal, pb.RejectType_REJECT_TYPE_RETRY: kyc.RejectRetry,
	}
)

// Case converts a domain case to its contract form.
func Case(c *kyc.Case) *pb.Case {
	out := &pb.Case{
		Id: c.ID, Tenant: c.Tenant, ExternalRef: c.ExternalRef, Level: levels.toProto(c.Level),
		Status: statuses.toProto(c.Status), StatusReason: c.StatusReason,
		Applicant: applicant(c.Applicant),
		Labels:    c.Labels, Metadata: c.Metadata, Assignee: c.Assignee,
		CreatedAt: ts(c.CreatedAt), UpdatedAt: ts(c.UpdatedAt), SubmittedAt: ts(c.SubmittedAt),
		ReviewedAt: ts(c.ReviewedAt), RedactedAt: ts(c.RedactedAt), Version: c.Version,
	}
	for _, d := range c.Documents {
		out.Documents = append(out.Documents, &pb.Document{Id: d.ID, Type: docTypes.toProto(d.Type), IssuingCountry: d.IssuingCountry,
			MaskedNumber: d.MaskedNumber, Decision: decisions.toProto(d.Decision), AddedAt: ts(d.AddedAt)})
	}
	for _, ch := range c.Checks {
		out.Checks = append(out.Checks, &pb.Check{Id: ch.ID, Type: checkTypes.toProto(ch.Type), Result: checkResults.toProto(ch.Result),
			Provider: ch.Provider, Reference: ch.Reference, CompletedAt: ts(ch.CompletedAt)})
	}
	if c.Risk != nil {
		out.Risk = &pb.Risk{Level: riskLevels.toProto(c.Risk.Level), Score: c.Risk.Score, Reasons: c.Risk.Reasons}
	}
	if c.Review != nil {
		out.Review = &pb.Review{Answer: answers.toProto(c.Review.Answer), RejectLabels: c.Review.RejectLabels,
			RejectType: rejectTypes.toProto(c.Review.RejectType), Reviewer: c.Review.Reviewer, Comment: c.Review.Comment,
			ReviewedAt: ts(c.Review.ReviewedAt)}
	}
	return out
}

// applicant is nil when there is none (a redacted case), so that no empty object suggests data.
func applicant(a kyc.Applicant) *pb.Applicant {
	if a == (kyc.Applicant{}) {
		return nil
	}
	out := &pb.Applicant{FullName: a.FullName, DateOfBirth: a.DateOfBirth, Nationality: a.Nationality, Email: a.Email, Phone: a.Phone}
	if a.Address != (kyc.Address{}) {
		ad := a.Address
		out.Address = &pb.Address{Line1: ad.Line1, Line2: ad.Line2, City: ad.City, PostalCode: ad.PostalCode, Region: ad.Region, Country: ad.Country}
	}
	return out
}

// EncodeEvent builds the event envelope of a change and encodes it; it is the case service's app.Encoder.
func EncodeEvent(eventID, eventType string, c *kyc.Case, at time.Time) ([]byte, error) {
	return proto.Marshal(&pb.CaseEvent{
		Id: eventID, Type: eventType, Tenant: c.Tenant, CaseId: c.ID, CaseVersion: c.Version,
		OccurredAt: timestamppb.New(at), Data: Case(c),
	})
}

// NewCase reads a creation request; unknown enum values are field errors.
func NewCase(r *pb.CreateCaseRequest) (kyc.NewCase, error) {
	var errs validation.Errors
	in := kyc.NewCase{
		RequestID: r.GetRequestId(), ExternalRef: r.GetExternalRef(),
		Level:     levels.toDomain(&errs, "level", r.GetLevel(), false),
		Applicant: Applicant(r.GetApplicant()), Labels: r.GetLabels(), Metadata: r.GetMetadata(), Assignee: r.GetAssignee(),
	}
	if len(r.GetDocuments()) <= kyc.MaxDocuments {
		for i, d := range r.GetDocuments() {
			in.Documents = append(in.Documents, document(&errs, fieldIndex("documents", i), d))
		}
	} else {
		// Let the domain name the limit; converting 10,000 documents first would be wasted work.
		in.Documents = make([]kyc.Document, len(r.GetDocuments()))
	}
	return in, errs.Err()
}

// CaseUpdate reads an update of plain fields.
func CaseUpdate(r *pb.UpdateCaseRequest) (kyc.CaseUpdate, error) {
	var errs validation.Errors
	u := kyc.CaseUpdate{
		Fields: r.GetUpdateMask().GetPaths(), Labels: r.GetLabels(), Metadata: r.GetMetadata(),
		Assignee: r.GetAssignee(), ExternalRef: r.GetExternalRef(),
	}
	u.Level = levels.toDomain(&errs, "level", r.GetLevel(), false)
	return u, errs.Err()
}

// Applicant reads an applicant; a missing one is empty.
func Applicant(a *pb.Applicant) kyc.Applicant {
	ad := a.GetAddress()
	return kyc.Applicant{
		FullName: a.GetFullName(), DateOfBirth: a.GetDateOfBirth(), Nationality: a.GetNationality(),
		Email: a.GetEmail(), Phone: a.GetPhone(),
		Address: kyc.Address{Line1: ad.GetLine1(), Line2: ad.GetLine2(), City: ad.GetCity(), PostalCode: ad.GetPostalCode(),
			Region: ad.GetRegion(), Country: ad.GetCountry()},
	}
}

// Document reads one document of a request.
func Document(d *pb.Document) (kyc.Document, error) {
	var errs validation.Errors
	out := document(&errs, "document", d)
	return out, errs.Err()
}

func document(errs *validation.Errors, field string, d *pb.Document) kyc.Document {
	if d == nil {
		errs.Add(field, "is required")
		return kyc.Document{}
	}
	return kyc.Document{
		Type:           docTypes.toDomain(errs, field+".type", d.GetType(), true),
		IssuingCountry: d.GetIssuingCountry(), MaskedNumber: d.GetMaskedNumber(),
		Decision: decisions.toDomain(errs, field+".decision", d.GetDecision(), false),
	}
}

// Check reads a check result.
func Check(c *pb.Check) (kyc.Check, error) {
	var errs validation.Errors
	if c == nil {
		errs.Add("check", "is required")
		return kyc.Check{}, errs.Err()
	}
	out := kyc.Check{
		Type:     checkTypes.toDomain(&errs, "check.type", c.GetType(), true),
		Result:   checkResults.toDomain(&errs, "check.result", c.GetResult(), true),
		Provider: c.GetProvider(), Reference: c.GetReference(),
	}
	if c.CompletedAt != nil {
		if err := c.CompletedAt.CheckValid(); err != nil {
			errs.Add("check.completed_at", "is not a valid timestamp")
		} else {
			out.CompletedAt = c.CompletedAt.AsTime().UTC().Truncate(time.Millisecond)
		}
	}
	return out, errs.Err()
}

// Risk reads a risk assessment.
func Risk(r *pb.Risk) (kyc.Risk, error) {
	var errs validation.Errors
	if r == nil {
		errs.Add("risk", "is required")
		return kyc.Risk{}, errs.Err()
	}
	out := kyc.Risk{Level: riskLevels.toDomain(&errs, "risk.level", r.GetLevel(), true), Score: r.GetScore(), Reasons: r.GetReasons()}
	return out, errs.Err()
}

// ReviewAnswer reads the answer of a completed review.
func ReviewAnswer(a pb.ReviewAnswer) (kyc.ReviewAnswer, error) {
	var errs validation.Errors
	out := answers.toDomain(&errs, "answer", a, true)
	return out, errs.Err()
}

// Statuses reads a status filter.
func Statuses(ss []pb.CaseStatus) ([]kyc.Status, error) {
	var errs validation.Errors
	out := make([]kyc.Status, 0, len(ss))
	for i, s := range ss {
		out = append(out, statuses.toDomain(&errs, fieldIndex("statuses", i), s, true))
	}
	return out, errs.Err()
}

func fieldIndex(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
