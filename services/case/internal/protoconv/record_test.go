package protoconv

import (
	"reflect"
	"testing"
	"time"

	"github.com/casekeeper/core/services/case/internal/kyc"
)

// A write re-reads the case from its last event, so the round trip through the envelope must lose nothing the
// domain holds (but the request id, which has its own record).
func TestEventRoundTripKeepsTheWholeCase(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 123000000, time.UTC)
	c := &kyc.Case{
		ID: "0190a7e0-0000-7000-8000-000000000001", Tenant: "acme", ExternalRef: "cust-1", Level: kyc.LevelEnhanced,
		Status: kyc.StatusRejected, StatusReason: "blurred",
		Applicant: kyc.Applicant{FullName: "Jane Roe", DateOfBirth: "1988-04-12", Nationality: "DE", Email: "j@example.com",
			Phone: "+4915112345678", Address: kyc.Address{Line1: "Lindenstrasse 1", City: "Berlin", Country: "DE"}},
		Documents: []kyc.Document{{ID: "d1", Type: kyc.DocPassport, IssuingCountry: "DE", MaskedNumber: "****1234",
			Decision: kyc.DecisionRejected, AddedAt: now}},
		Checks: []kyc.Check{{ID: "c1", Type: kyc.CheckPEP, Result: kyc.ResultConsider, Provider: "p", Reference: "r",
			CompletedAt: now}},
		Risk:   &kyc.Risk{Level: kyc.RiskHigh, Score: 80, Reasons: []string{"pep"}},
		Review: &kyc.Review{Answer: kyc.AnswerRejected, RejectLabels: []string{"BLUR"}, RejectType: kyc.RejectRetry, Reviewer: "rev", Comment: "c", ReviewedAt: now},
		Labels: []string{"vip"}, Metadata: map[string]string{"k": "v"}, Assignee: "ann",
		CreatedAt: now, UpdatedAt: now, SubmittedAt: now, ReviewedAt: now, Version: 7,
	}
	raw, err := EncodeEvent("ev-1", kyc.EventReviewCompleted, c, now)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "ev-1" || ev.Type != kyc.EventReviewCompleted || !ev.OccurredAt.Equal(now) {
		t.Fatalf("envelope = %+v", ev)
	}
	if !reflect.DeepEqual(ev.Case, c) {
		t.Fatalf("round trip changed the case:\n got %+v\nwant %+v", ev.Case, c)
	}
}

func TestDecodeEventRefusesAnEnvelopeWithoutItsCase(t *testing.T) {
	if _, err := DecodeEvent([]byte{0x0a, 0x02, 'e', '1'}); err == nil {
		t.Fatal("an event without its case was accepted as a record")
	}
	if _, err := DecodeEvent([]byte{0xff}); err == nil {
		t.Fatal("garbage was decoded")
	}
}
