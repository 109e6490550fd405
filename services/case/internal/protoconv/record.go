package protoconv

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/case/internal/kyc"
)

// The event on a case's subject is the case's record: it carries the whole case after the change, so a write reads
// the current case back from it. FromProto is the inverse of Case for everything the contract carries (the request
// id is not part of it: idempotent creation keeps its own record of request ids).

// FromProto converts a case of the contract back to the domain.
func FromProto(p *pb.Case) *kyc.Case {
	c := &kyc.Case{
		ID: p.GetId(), Tenant: p.GetTenant(), ExternalRef: p.GetExternalRef(), Level: levels[p.GetLevel()],
		Status: statuses[p.GetStatus()], StatusReason: p.GetStatusReason(),
		Applicant: Applicant(p.GetApplicant()),
		Labels:    p.GetLabels(), Metadata: p.GetMetadata(), Assignee: p.GetAssignee(),
		CreatedAt: at(p.GetCreatedAt()), UpdatedAt: at(p.GetUpdatedAt()), SubmittedAt: at(p.GetSubmittedAt()),
		ReviewedAt: at(p.GetReviewedAt()), RedactedAt: at(p.GetRedactedAt()), Version: p.GetVersion(),
	}
	for _, d := range p.GetDocuments() {
		c.Documents = append(c.Documents, kyc.Document{ID: d.GetId(), Type: docTypes[d.GetType()],
			IssuingCountry: d.GetIssuingCountry(), MaskedNumber: d.GetMaskedNumber(), Decision: decisions[d.GetDecision()],
			AddedAt: at(d.GetAddedAt())})
	}
	for _, ch := range p.GetChecks() {
		c.Checks = append(c.Checks, kyc.Check{ID: ch.GetId(), Type: checkTypes[ch.GetType()], Result: checkResults[ch.GetResult()],
			Provider: ch.GetProvider(), Reference: ch.GetReference(), CompletedAt: at(ch.GetCompletedAt())})
	}
	if r := p.GetRisk(); r != nil {
		c.Risk = &kyc.Risk{Level: riskLevels[r.GetLevel()], Score: r.GetScore(), Reasons: r.GetReasons()}
	}
	if r := p.GetReview(); r != nil {
		c.Review = &kyc.Review{Answer: answers[r.GetAnswer()], RejectLabels: r.GetRejectLabels(),
			RejectType: rejectTypes[r.GetRejectType()], Reviewer: r.GetReviewer(), Comment: r.GetComment(),
			ReviewedAt: at(r.GetReviewedAt())}
	}
	return c
}

// Event is a decoded case event: which change it records and the case after it.
type Event struct {
	ID         string
	Type       string
	OccurredAt time.Time
	Case       *kyc.Case
}

// DecodeEvent reads an event envelope written by EncodeEvent.
func DecodeEvent(data []byte) (Event, error) {
	var e pb.CaseEvent
	if err := proto.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("decoding case event: %w", err)
	}
	if e.GetData() == nil || e.GetCaseId() == "" || e.GetData().GetVersion() != e.GetCaseVersion() {
		return Event{}, fmt.Errorf("decoding case event %s: no case, or a case of another version", e.GetId())
	}
	return Event{ID: e.GetId(), Type: e.GetType(), OccurredAt: at(e.GetOccurredAt()), Case: FromProto(e.GetData())}, nil
}

// at is the inverse of ts: a missing timestamp is the zero time.
func at(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime().UTC()
}
