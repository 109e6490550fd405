package app

import (
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// SampleCaseID is the fictitious case of every test event: a receiver recognises a sample by it.
const SampleCaseID = "case_test"

// SampleEvent is the event of the given type that SendTest sends (webhooks.TypeTest, or any type of a real case
// change) and that Preview and the save-time check of a jq program run on (webhooks.TypeTest): one fictitious
// case, no real person, taken through a plausible KYC life — created, assigned, a passport, an AML screening, a
// low risk, submitted, reviewed and approved, redacted — as far as the type's change, so that each sample carries
// what a real event of its type carries, with the version that change gives it. webhooks.TypeTest carries the
// case as created. It reports false for a type no case change has.
func SampleEvent(tenant, eventType string, now time.Time) (*casekeeperv1.CaseEvent, bool) {
	step := slices.Index(sampleSteps, eventType)
	if eventType == webhooks.TypeTest {
		step = 0 // the case as created: version 1
	}
	if step < 0 {
		return nil, false
	}
	ts := timestamppb.New(now)
	c := &casekeeperv1.Case{Id: SampleCaseID, Tenant: tenant, ExternalRef: "test-ref",
		Level: casekeeperv1.VerificationLevel_VERIFICATION_LEVEL_ENHANCED, Status: casekeeperv1.CaseStatus_CASE_STATUS_DRAFT,
		Applicant: &casekeeperv1.Applicant{FullName: "Test Applicant", DateOfBirth: "1990-01-01", Nationality: "DE",
			Email: "applicant@example.com", Phone: "+4915100000000",
			Address: &casekeeperv1.Address{Line1: "Teststraße 1", City: "Berlin", PostalCode: "10115", Country: "DE"}},
		Labels: []string{"test"}, Metadata: map[string]string{"source": "test event"}, CreatedAt: ts}
	for _, change := range sampleSteps[1 : step+1] {
		applySample(c, change, ts)
	}
	c.Version, c.UpdatedAt = int64(step+1), ts
	return &casekeeperv1.CaseEvent{Id: newID("evt_test_"), Type: eventType, Tenant: tenant, CaseId: SampleCaseID,
		CaseVersion: c.Version, OccurredAt: ts, Data: c}, true
}

// sampleSteps is the sample case's life, one change per event type, in order.
var sampleSteps = []string{webhooks.TypeCreated, webhooks.TypeUpdated, webhooks.TypeDocumentAdded,
	webhooks.TypeCheckRecorded, webhooks.TypeRiskSet, webhooks.TypeStatusChanged, webhooks.TypeReviewCompleted,
	webhooks.TypeRedacted}

func applySample(c *casekeeperv1.Case, change string, ts *timestamppb.Timestamp) {
	switch change {
	case webhooks.TypeUpdated:
		c.Assignee = "analyst-1"
	case webhooks.TypeDocumentAdded:
		c.Documents = append(c.Documents, &casekeeperv1.Document{Id: "doc_test", Type: casekeeperv1.DocumentType_DOCUMENT_TYPE_PASSPORT,
			IssuingCountry: "DE", MaskedNumber: "*****0000", Decision: casekeeperv1.DocumentDecision_DOCUMENT_DECISION_ACCEPTED, AddedAt: ts})
	case webhooks.TypeCheckRecorded:
		c.Checks = append(c.Checks, &casekeeperv1.Check{Id: "chk_test", Type: casekeeperv1.CheckType_CHECK_TYPE_AML_SCREENING,
			Result: casekeeperv1.CheckResult_CHECK_RESULT_CLEAR, Provider: "screening-provider", Reference: "scr-test", CompletedAt: ts})
	case webhooks.TypeRiskSet:
		c.Risk = &casekeeperv1.Risk{Level: casekeeperv1.RiskLevel_RISK_LEVEL_LOW, Score: 12, Reasons: []string{"domestic applicant"}}
	case webhooks.TypeStatusChanged:
		c.Status, c.SubmittedAt = casekeeperv1.CaseStatus_CASE_STATUS_SUBMITTED, ts
	case webhooks.TypeReviewCompleted:
		c.Status, c.ReviewedAt = casekeeperv1.CaseStatus_CASE_STATUS_APPROVED, ts
		c.Review = &casekeeperv1.Review{Answer: casekeeperv1.ReviewAnswer_REVIEW_ANSWER_APPROVED, Reviewer: "analyst-1",
			Comment: "all checks clear", ReviewedAt: ts}
	case webhooks.TypeRedacted:
		// What a redaction leaves of a case (services/case: kyc.Redact): its shape, no personal data.
		c.Status, c.StatusReason, c.RedactedAt = casekeeperv1.CaseStatus_CASE_STATUS_REDACTED, "retention period over", ts
		c.Applicant, c.ExternalRef, c.Assignee, c.Labels, c.Metadata = &casekeeperv1.Applicant{}, "", "", nil, nil
		for _, d := range c.Documents {
			d.MaskedNumber = ""
		}
		for _, k := range c.Checks {
			k.Reference = ""
		}
		c.Risk.Reasons = nil
		c.Review.Comment, c.Review.Reviewer = "", ""
	}
}
