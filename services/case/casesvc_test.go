package casesvc_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

func jane() *pb.Applicant {
	return &pb.Applicant{
		FullName: "Jane Quartermaine", DateOfBirth: "1988-04-12", Nationality: "DE",
		Email: "jane.quartermaine@example.com", Phone: "+4915112345678",
		Address: &pb.Address{Line1: "Lindenstrasse 7", City: "Berlin", PostalCode: "10969", Country: "DE"},
	}
}

func create(t testing.TB, st *stack, c client, requestID string) *pb.Case {
	t.Helper()
	resp, err := st.api.CreateCase(as(t, c), &pb.CreateCaseRequest{
		RequestId: requestID, ExternalRef: "cust-" + requestID, Level: pb.VerificationLevel_VERIFICATION_LEVEL_ENHANCED,
		Applicant: jane(),
	})
	if err != nil {
		t.Fatalf("CreateCase: %v", err)
	}
	return resp.GetCase()
}

func TestLifecycleEmitsOneEventPerChangeInOrder(t *testing.T) {
	st := startStack(t)
	ctx := as(t, acmeProvider)
	c := create(t, st, acmeProvider, "life-1")
	if c.GetStatus() != pb.CaseStatus_CASE_STATUS_DRAFT || c.GetVersion() != 1 || c.GetTenant() != "acme" {
		t.Fatalf("created case: %v", c)
	}
	steps := []func() (*pb.Case, error){
		func() (*pb.Case, error) {
			r, err := st.api.AddDocument(ctx, &pb.AddDocumentRequest{Id: c.Id, Document: &pb.Document{
				Type: pb.DocumentType_DOCUMENT_TYPE_PASSPORT, IssuingCountry: "DE", MaskedNumber: "*****1234"}})
			return r.GetCase(), err
		},
		func() (*pb.Case, error) {
			r, err := st.api.RecordCheck(ctx, &pb.RecordCheckRequest{Id: c.Id, Check: &pb.Check{
				Type: pb.CheckType_CHECK_TYPE_AML_SCREENING, Result: pb.CheckResult_CHECK_RESULT_CLEAR, Provider: "screenco"}})
			return r.GetCase(), err
		},
		func() (*pb.Case, error) {
			r, err := st.api.SetRisk(ctx, &pb.SetRiskRequest{Id: c.Id, Risk: &pb.Risk{Level: pb.RiskLevel_RISK_LEVEL_LOW, Score: 12}})
			return r.GetCase(), err
		},
		func() (*pb.Case, error) {
			r, err := st.api.Submit(ctx, &pb.SubmitRequest{Id: c.Id, ExpectedVersion: 4})
			return r.GetCase(), err
		},
		func() (*pb.Case, error) {
			r, err := st.api.StartReview(ctx, &pb.StartReviewRequest{Id: c.Id, Reviewer: "rita"})
			return r.GetCase(), err
		},
		func() (*pb.Case, error) {
			r, err := st.api.PutOnHold(ctx, &pb.PutOnHoldRequest{Id: c.Id, Reason: "second opinion"})
			return r.GetCase(), err
		},
		func() (*pb.Case, error) {
			r, err := st.api.ResumeReview(ctx, &pb.ResumeReviewRequest{Id: c.Id})
			return r.GetCase(), err
		},
		func() (*pb.Case, error) {
			r, err := st.api.CompleteReview(ctx, &pb.CompleteReviewRequest{Id: c.Id, Answer: pb.ReviewAnswer_REVIEW_ANSWER_APPROVED, Reviewer: "rita"})
			return r.GetCase(), err
		},
	}
	for i, step := range steps {
		got, err := step()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got.GetVersion() != int64(i+2) {
			t.Fatalf("step %d: version %d, want %d", i, got.GetVersion(), i+2)
		}
	}
	// A move the state machine forbids names where the case is and where it may go.
	_, err := st.api.Submit(ctx, &pb.SubmitRequest{Id: c.Id})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "case is approved") || !strings.Contains(err.Error(), "redacted") {
		t.Fatalf("submit of an approved case: %v", err)
	}
	// A stale expected version is refused.
	_, err = st.api.UpdateCase(ctx, &pb.UpdateCaseRequest{Id: c.Id, ExpectedVersion: 3, Labels: []string{"x"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("stale expected version: %v", err)
	}

	wantTypes := []string{events.TypeCreated, events.TypeDocumentAdded, events.TypeCheckRecorded, events.TypeRiskSet,
		events.TypeStatusChanged, events.TypeStatusChanged, events.TypeStatusChanged, events.TypeStatusChanged, events.TypeReviewCompleted}
	var evs []*pb.CaseEvent
	testinfra.Eventually(t, 10*time.Second, "all events on the stream", func() bool {
		evs = st.caseEvents(t, "acme", c.Id)
		return len(evs) >= len(wantTypes)
	})
	if len(evs) != len(wantTypes) {
		t.Fatalf("%d events, want %d", len(evs), len(wantTypes))
	}
	for i, ev := range evs {
		if ev.GetType() != wantTypes[i] || ev.GetCaseVersion() != int64(i+1) || ev.GetData().GetVersion() != int64(i+1) {
			t.Errorf("event %d: %s v%d, want %s v%d", i, ev.GetType(), ev.GetCaseVersion(), wantTypes[i], i+1)
		}
		if ev.GetTenant() != "acme" || ev.GetCaseId() != c.Id || ev.GetId() == "" || ev.GetOccurredAt() == nil {
			t.Errorf("event %d envelope incomplete: %v", i, ev)
		}
	}
	if got := evs[len(evs)-1].GetData().GetStatus(); got != pb.CaseStatus_CASE_STATUS_APPROVED {
		t.Errorf("last event's case status %s", got)
	}
}

func TestCreateCaseIsIdempotentByRequestID(t *testing.T) {
	st := startStack(t)
	first := create(t, st, acmeProvider, "req-77")
	var wg sync.WaitGroup
	ids := make(chan string, 5)
	for range 5 {
		wg.Go(func() {
			resp, err := st.api.CreateCase(as(t, acmeProvider), &pb.CreateCaseRequest{RequestId: "req-77", Applicant: jane()})
			if err != nil {
				t.Errorf("retry: %v", err)
				return
			}
			ids <- resp.GetCase().GetId()
		})
	}
	wg.Wait()
	close(ids)
	for id := range ids {
		if id != first.Id {
			t.Fatalf("retry created another case %s (first %s)", id, first.Id)
		}
	}
	// The same request id in another tenant is another case.
	other := create(t, st, globexProvider, "req-77")
	if other.Id == first.Id {
		t.Fatal("request ids are per tenant")
	}
	time.Sleep(500 * time.Millisecond) // give a wrongly emitted second event the time to show up
	if evs := st.caseEvents(t, "acme", first.Id); len(evs) != 1 {
		t.Fatalf("%d events for one idempotent create, want 1", len(evs))
	}
}

func TestConcurrentWritersLoseNoUpdate(t *testing.T) {
	st := startStack(t)
	c := create(t, st, acmeProvider, "busy")
	const writers, each = 20, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			ctx := as(t, acmeProvider)
			last := int64(0)
			for i := range each {
				resp, err := st.api.RecordCheck(ctx, &pb.RecordCheckRequest{Id: c.Id, Check: &pb.Check{
					Type: pb.CheckType_CHECK_TYPE_PEP, Result: pb.CheckResult_CHECK_RESULT_CLEAR,
					Reference: fmt.Sprintf("w%d-%d", w, i)}})
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if v := resp.GetCase().GetVersion(); v <= last {
					t.Errorf("writer %d saw version %d after %d", w, v, last)
				} else {
					last = v
				}
			}
		})
	}
	wg.Wait()
	got, err := st.api.GetCase(as(t, acmeProvider), &pb.GetCaseRequest{Id: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.GetCase().GetChecks()); n != writers*each {
		t.Fatalf("%d checks, want %d: updates were lost", n, writers*each)
	}
	refs := map[string]bool{}
	for _, ch := range got.GetCase().GetChecks() {
		refs[ch.GetReference()] = true
	}
	if len(refs) != writers*each {
		t.Fatalf("%d distinct checks, want %d", len(refs), writers*each)
	}
	wantVersion := int64(1 + writers*each)
	if got.GetCase().GetVersion() != wantVersion {
		t.Fatalf("version %d, want %d", got.GetCase().GetVersion(), wantVersion)
	}
	var evs []*pb.CaseEvent
	testinfra.Eventually(t, 15*time.Second, "every version on the stream", func() bool {
		evs = st.caseEvents(t, "acme", c.Id)
		return int64(len(evs)) >= wantVersion
	})
	for i, ev := range evs {
		if ev.GetCaseVersion() != int64(i+1) {
			t.Fatalf("event %d carries version %d: versions must be published in order, each once", i, ev.GetCaseVersion())
		}
	}
	if int64(len(evs)) != wantVersion {
		t.Fatalf("%d events, want %d", len(evs), wantVersion)
	}
	// Twenty writers on one case must have collided: the compare-and-set on the subject, not luck, kept them apart.
	if n := testinfra.Metric(t, st.url("/metrics"), "case_write_conflicts_total"); n == 0 {
		t.Fatal("no write lost the compare-and-set: the test did not exercise the conflict path")
	}
}

// A write is acknowledged only once the stream holds its event: while NATS is away, writes fail fast with
// UNAVAILABLE (never acknowledged and lost), reads fall back to the projection, and once NATS is back every
// acknowledged write is there, each once, in order.
func TestNATSDownWritesFailFastAndNothingAcknowledgedIsLost(t *testing.T) {
	st := startStack(t)
	ctx := as(t, acmeProvider)
	c := create(t, st, acmeProvider, "outage")
	testinfra.Eventually(t, 10*time.Second, "the case projected", func() bool {
		list, err := st.api.ListCases(ctx, &pb.ListCasesRequest{ExternalRef: "cust-outage"})
		return err == nil && len(list.GetCases()) == 1
	})
	st.nats.Stop()
	// The client notices the lost connection within moments; a write sent before it did waits for its time-out
	// (CASE_STREAM_TIMEOUT), every later one fails at once.
	testinfra.Eventually(t, 5*time.Second, "the service noticed the outage", func() bool { return !testinfra.Ready(st.url("/readyz")) })
	for i := range 3 {
		start := time.Now()
		_, err := st.api.UpdateCase(ctx, &pb.UpdateCaseRequest{Id: c.Id, Labels: []string{fmt.Sprintf("lost-%d", i)},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("write %d while NATS is down: %v, want UNAVAILABLE", i, err)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Fatalf("write %d took %v to fail: it must fail fast", i, took)
		}
	}
	if _, err := st.api.CreateCase(ctx, &pb.CreateCaseRequest{RequestId: "during-outage", Applicant: jane()}); status.Code(err) != codes.Unavailable {
		t.Fatalf("create while NATS is down: %v, want UNAVAILABLE", err)
	}
	got, err := st.api.GetCase(ctx, &pb.GetCaseRequest{Id: c.Id})
	if err != nil || got.GetCase().GetVersion() != 1 {
		t.Fatalf("read while NATS is down (from the projection): %v %v", got, err)
	}
	st.nats.Start()
	testinfra.Eventually(t, 20*time.Second, "writes accepted again", func() bool {
		_, err := st.api.UpdateCase(ctx, &pb.UpdateCaseRequest{Id: c.Id, Labels: []string{"after"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
		return err == nil
	})
	evs := st.caseEvents(t, "acme", c.Id)
	if len(evs) != 2 || evs[0].GetCaseVersion() != 1 || evs[1].GetCaseVersion() != 2 {
		t.Fatalf("events after the outage: %v, want versions 1 and 2 only", evs)
	}
	for _, ev := range evs {
		if strings.Contains(strings.Join(ev.GetData().GetLabels(), ","), "lost") {
			t.Fatalf("a write answered UNAVAILABLE reached the stream: %v", ev.GetData().GetLabels())
		}
	}
}

func TestBadInputIsRefusedNamingTheFieldAndWritesNothing(t *testing.T) {
	st := startStack(t)
	ctx := as(t, acmeProvider)
	c := create(t, st, acmeProvider, "valid")
	manyDocs := make([]*pb.Document, 10000)
	for i := range manyDocs {
		manyDocs[i] = &pb.Document{Type: pb.DocumentType_DOCUMENT_TYPE_SELFIE}
	}
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"unknown enum", func() error {
			_, err := st.api.CreateCase(ctx, &pb.CreateCaseRequest{Level: pb.VerificationLevel(99)})
			return err
		}, "level"},
		{"malformed id", func() error {
			_, err := st.api.GetCase(ctx, &pb.GetCaseRequest{Id: "../../etc/passwd"})
			return err
		}, "id"},
		{"malformed id on write", func() error {
			_, err := st.api.Submit(ctx, &pb.SubmitRequest{Id: "42"})
			return err
		}, "id"},
		{"oversized name", func() error {
			_, err := st.api.CreateCase(ctx, &pb.CreateCaseRequest{Applicant: &pb.Applicant{FullName: strings.Repeat("J", 5000)}})
			return err
		}, "applicant.full_name"},
		{"10,000 documents", func() error {
			_, err := st.api.CreateCase(ctx, &pb.CreateCaseRequest{Documents: manyDocs})
			return err
		}, "documents"},
		{"invalid date", func() error {
			_, err := st.api.UpdateApplicant(ctx, &pb.UpdateApplicantRequest{Id: c.Id, Applicant: &pb.Applicant{DateOfBirth: "1990-02-30"}})
			return err
		}, "applicant.date_of_birth"},
		{"invalid email", func() error {
			_, err := st.api.UpdateApplicant(ctx, &pb.UpdateApplicantRequest{Id: c.Id, Applicant: &pb.Applicant{Email: "jane at example"}})
			return err
		}, "applicant.email"},
		{"unmasked document number", func() error {
			_, err := st.api.AddDocument(ctx, &pb.AddDocumentRequest{Id: c.Id, Document: &pb.Document{
				Type: pb.DocumentType_DOCUMENT_TYPE_PASSPORT, MaskedNumber: "C01X00T47"}})
			return err
		}, "document.masked_number"},
		{"missing check type", func() error {
			_, err := st.api.RecordCheck(ctx, &pb.RecordCheckRequest{Id: c.Id, Check: &pb.Check{Result: pb.CheckResult_CHECK_RESULT_FAIL}})
			return err
		}, "check.type"},
		{"risk score out of range", func() error {
			_, err := st.api.SetRisk(ctx, &pb.SetRiskRequest{Id: c.Id, Risk: &pb.Risk{Level: pb.RiskLevel_RISK_LEVEL_HIGH, Score: 101}})
			return err
		}, "risk.score"},
		{"unknown status filter", func() error {
			_, err := st.api.ListCases(ctx, &pb.ListCasesRequest{Statuses: []pb.CaseStatus{42}})
			return err
		}, "statuses[0]"},
		{"forged page token", func() error {
			_, err := st.api.ListCases(ctx, &pb.ListCasesRequest{PageToken: "not-a-token"})
			return err
		}, "page_token"},
		{"page size", func() error {
			_, err := st.api.ListCases(ctx, &pb.ListCasesRequest{PageSize: 100000})
			return err
		}, "page_size"},
		{"applicant search too long", func() error {
			_, err := st.api.ListCases(ctx, &pb.ListCasesRequest{ApplicantName: strings.Repeat("a", 201)})
			return err
		}, "applicant_name"},
		{"NUL in the applicant search", func() error {
			_, err := st.api.ListCases(ctx, &pb.ListCasesRequest{ApplicantName: "a\x00b"})
			return err
		}, "applicant_name"},
		{"negative expected version", func() error {
			_, err := st.api.Submit(ctx, &pb.SubmitRequest{Id: c.Id, ExpectedVersion: -1})
			return err
		}, "expected_version"},
		{"empty request id", func() error {
			_, err := st.api.CreateCase(ctx, &pb.CreateCaseRequest{ExternalRef: "cust-x", Applicant: jane()})
			return err
		}, "request_id"},
		{"NUL in external ref", func() error {
			_, err := st.api.CreateCase(ctx, &pb.CreateCaseRequest{RequestId: "nul-1", ExternalRef: "cust\x00-1", Applicant: jane()})
			return err
		}, "external_ref"},
		{"ESC in the applicant's name", func() error {
			_, err := st.api.UpdateApplicant(ctx, &pb.UpdateApplicantRequest{Id: c.Id, Applicant: &pb.Applicant{FullName: "Jane \x1b[2JRoe"}})
			return err
		}, "applicant.full_name"},
		{"right-to-left override in a label", func() error {
			_, err := st.api.UpdateCase(ctx, &pb.UpdateCaseRequest{Id: c.Id, Labels: []string{"vip\u202egpj.exe"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
			return err
		}, "labels[0]"},
		{"bidi isolate in external ref on update", func() error {
			_, err := st.api.UpdateCase(ctx, &pb.UpdateCaseRequest{Id: c.Id, ExternalRef: "cust\u2066-1",
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"external_ref"}}})
			return err
		}, "external_ref"},
		{"unknown update mask path", func() error {
			_, err := st.api.UpdateCase(ctx, &pb.UpdateCaseRequest{Id: c.Id, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}}})
			return err
		}, "update_mask"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if !hasFieldViolation(err, tc.field) {
				t.Fatalf("error %v does not name the field %q", err, tc.field)
			}
		})
	}
	got, err := st.api.GetCase(ctx, &pb.GetCaseRequest{Id: c.Id})
	if err != nil || got.GetCase().GetVersion() != 1 {
		t.Fatalf("the valid case changed: %v %v", got, err)
	}
	testinfra.Eventually(t, 10*time.Second, "the valid case projected", func() bool {
		list, err := st.api.ListCases(ctx, &pb.ListCasesRequest{})
		return err == nil && len(list.GetCases()) > 0
	})
	time.Sleep(500 * time.Millisecond) // time for a wrongly written case to reach the projection too
	list, err := st.api.ListCases(ctx, &pb.ListCasesRequest{})
	if err != nil || len(list.GetCases()) != 1 {
		t.Fatalf("bad input created cases: %d %v", len(list.GetCases()), err)
	}
	stream, _ := st.js.Stream(context.Background(), events.Stream)
	info, _ := stream.Info(context.Background())
	if info.State.Msgs != 1 {
		t.Fatalf("%d events on the stream, want only the valid creation", info.State.Msgs)
	}
}

func hasFieldViolation(err error, field string) bool {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return true
				}
			}
		}
	}
	return false
}

func TestTenantsAndRolesAreEnforced(t *testing.T) {
	st := startStack(t)
	c := create(t, st, acmeProvider, "private")

	if _, err := st.api.GetCase(as(t, globexProvider), &pb.GetCaseRequest{Id: c.Id}); status.Code(err) != codes.NotFound {
		t.Errorf("globex reading acme's case: %v, want NotFound", err)
	}
	if _, err := st.api.Submit(as(t, globexProvider), &pb.SubmitRequest{Id: c.Id}); status.Code(err) != codes.NotFound {
		t.Errorf("globex writing acme's case: %v, want NotFound", err)
	}
	list, err := st.api.ListCases(as(t, globexProvider), &pb.ListCasesRequest{})
	if err != nil || len(list.GetCases()) != 0 {
		t.Errorf("globex lists %d cases (%v), want none", len(list.GetCases()), err)
	}
	if _, err := st.api.GetCase(as(t, acmeBackend), &pb.GetCaseRequest{Id: c.Id}); err != nil {
		t.Errorf("cases:read may read: %v", err)
	}
	if _, err := st.api.Submit(as(t, acmeBackend), &pb.SubmitRequest{Id: c.Id}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a token without cases:write: %v, want PermissionDenied", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := st.api.GetCase(ctx, &pb.GetCaseRequest{Id: c.Id}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
	tampered := token(t, acmeProvider)
	tampered = tampered[:len(tampered)-4] + "AAAA"
	bad := testinfra.Bearer(ctx, tampered)
	if _, err := st.api.GetCase(bad, &pb.GetCaseRequest{Id: c.Id}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("tampered token: %v, want Unauthenticated", err)
	}
}

func TestRedactErasesPersonalDataEverywhere(t *testing.T) {
	st := startStack(t)
	ctx := as(t, acmeProvider)
	c := create(t, st, acmeProvider, "forget-me")
	if _, err := st.api.Submit(ctx, &pb.SubmitRequest{Id: c.Id}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.api.Redact(ctx, &pb.RedactRequest{Id: c.Id, Reason: "erasure request"})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetCase()
	if r.GetStatus() != pb.CaseStatus_CASE_STATUS_REDACTED || r.GetApplicant().GetFullName() != "" || r.GetExternalRef() != "" || r.GetRedactedAt() == nil {
		t.Fatalf("redacted case: %v", r)
	}
	// The event history keeps only the tombstone: earlier events held the personal data.
	testinfra.Eventually(t, 10*time.Second, "history purged down to the redaction", func() bool {
		evs := st.caseEvents(t, "acme", c.Id)
		return len(evs) == 1 && evs[0].GetType() == events.TypeRedacted
	})
	evs := st.caseEvents(t, "acme", c.Id)
	if evs[0].GetData().GetApplicant().GetEmail() != "" {
		t.Fatal("the redaction event carries personal data")
	}
	if _, err := st.api.UpdateApplicant(ctx, &pb.UpdateApplicantRequest{Id: c.Id, Applicant: jane()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a redacted case took new personal data: %v", err)
	}
}

func TestListCasesPagesInStableOrderWithFilters(t *testing.T) {
	st := startStack(t)
	ctx := as(t, acmeProvider)
	var ids []string
	for i := range 7 {
		ids = append(ids, create(t, st, acmeProvider, fmt.Sprintf("page-%d", i)).Id)
	}
	// A name with characters a regular expression would read as operators: the search must take them literally.
	if _, err := st.api.UpdateApplicant(ctx, &pb.UpdateApplicantRequest{Id: ids[2], Applicant: &pb.Applicant{FullName: "Ada (Q.) Łukasiewicz"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.api.Submit(ctx, &pb.SubmitRequest{Id: ids[3]}); err != nil {
		t.Fatal(err)
	}
	testinfra.Eventually(t, 10*time.Second, "the projection holds every case", func() bool {
		sub, err := st.api.ListCases(ctx, &pb.ListCasesRequest{Statuses: []pb.CaseStatus{pb.CaseStatus_CASE_STATUS_SUBMITTED}})
		all, err2 := st.api.ListCases(ctx, &pb.ListCasesRequest{PageSize: 100})
		ada, err3 := st.api.ListCases(ctx, &pb.ListCasesRequest{ApplicantName: "Ada"})
		return err == nil && err2 == nil && err3 == nil && len(sub.GetCases()) == 1 && len(all.GetCases()) == len(ids) && len(ada.GetCases()) == 1
	})
	var seen []string
	token := ""
	for pages := 0; pages < 10; pages++ {
		resp, err := st.api.ListCases(ctx, &pb.ListCasesRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.GetCases() {
			seen = append(seen, c.Id)
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Fatalf("pages gave %v, want %v", seen, ids)
	}
	sub, err := st.api.ListCases(ctx, &pb.ListCasesRequest{Statuses: []pb.CaseStatus{pb.CaseStatus_CASE_STATUS_SUBMITTED}})
	if err != nil || len(sub.GetCases()) != 1 || sub.GetCases()[0].Id != ids[3] {
		t.Fatalf("status filter: %v %v", sub.GetCases(), err)
	}
	ref, err := st.api.ListCases(ctx, &pb.ListCasesRequest{ExternalRef: "cust-page-5"})
	if err != nil || len(ref.GetCases()) != 1 || ref.GetCases()[0].Id != ids[5] {
		t.Fatalf("external ref filter: %v %v", ref.GetCases(), err)
	}
	after := sub.GetCases()[0].GetUpdatedAt()
	upd, err := st.api.ListCases(ctx, &pb.ListCasesRequest{UpdatedAfter: after})
	if err != nil || len(upd.GetCases()) != 0 {
		t.Fatalf("updated_after: %d cases %v, want 0", len(upd.GetCases()), err)
	}

	// Newest first, in pages, is the same cases the other way round.
	seen, token = nil, ""
	var firstToken string
	for pages := 0; pages < 10; pages++ {
		resp, err := st.api.ListCases(ctx, &pb.ListCasesRequest{PageSize: 3, PageToken: token, NewestFirst: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.GetCases() {
			seen = append(seen, c.Id)
		}
		if firstToken == "" {
			firstToken = resp.GetNextPageToken()
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	newest := slices.Clone(ids)
	slices.Reverse(newest)
	if strings.Join(seen, ",") != strings.Join(newest, ",") {
		t.Fatalf("newest-first pages gave %v, want %v", seen, newest)
	}
	if _, err = st.api.ListCases(ctx, &pb.ListCasesRequest{PageSize: 3, PageToken: firstToken}); status.Code(err) != codes.InvalidArgument || !hasFieldViolation(err, "page_token") {
		t.Fatalf("a newest-first token read oldest first: %v, want InvalidArgument naming page_token", err)
	}

	// The applicant-name search: contained, case ignored, taken literally.
	for _, c := range []struct {
		search string
		want   []string
	}{
		{"ada (q.) ł", []string{ids[2]}},
		{"QUARTERMAINE", append(slices.Clone(ids[:2]), ids[3:]...)},
		{"a.a", nil},
		{"(Q.*", nil},
	} {
		resp, err := st.api.ListCases(ctx, &pb.ListCasesRequest{ApplicantName: c.search, PageSize: 100})
		var got []string
		for _, x := range resp.GetCases() {
			got = append(got, x.Id)
		}
		if err != nil || strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("applicant_name %q: %v %v, want %v", c.search, got, err, c.want)
		}
	}
}

func TestNoPersonalDataInLogs(t *testing.T) {
	st := startStack(t)
	ctx := as(t, acmeProvider)
	c := create(t, st, acmeProvider, "quiet")
	_, _ = st.api.UpdateApplicant(ctx, &pb.UpdateApplicantRequest{Id: c.Id, Applicant: &pb.Applicant{FullName: "Jane Quartermaine", Email: "not an email"}})
	_, _ = st.api.Submit(ctx, &pb.SubmitRequest{Id: c.Id})
	_, _ = st.api.Submit(ctx, &pb.SubmitRequest{Id: c.Id})
	st.nats.Stop() // make the writes and the projector log their failures too
	_, _ = st.api.UpdateApplicant(ctx, &pb.UpdateApplicantRequest{Id: c.Id, Applicant: jane()})
	time.Sleep(1500 * time.Millisecond)
	logs := st.logs.String()
	if !strings.Contains(logs, "case service started") {
		t.Fatal("the log capture does not work")
	}
	for _, pii := range []string{"Quartermaine", "jane.quartermaine@example.com", "+4915112345678", "1988-04-12", "Lindenstrasse"} {
		if strings.Contains(logs, pii) {
			t.Errorf("the logs contain applicant data %q", pii)
		}
	}
}
