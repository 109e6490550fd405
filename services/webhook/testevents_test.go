package webhooksvc_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// A test event of every type reaches the endpoint as a real event of that type would (the type, the sample case
// at the version that change gives it), and each is in the delivery log as a test delivery: succeeded or dead at
// its one attempt, never resent or recovered. A type that is none is refused, naming the field.
func TestTestEventsOfEveryTypeAreInTheLog(t *testing.T) {
	e := newEnv(t)
	e.start()
	failing := map[string]bool{webhooks.TypeRiskSet: true} // the receiver refuses this one
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		if failing[r.Header.Get("X-Sample-Type")] {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	rc.Config.Handler = sampleType(rc.Config.Handler)
	ep, secret := e.createEndpoint(rc.URL)
	verifier, err := webhooks.NewVerifier([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Minute)

	types := append([]string{""}, webhooks.Types...)
	for _, typ := range types {
		res, err := e.client.SendTestEvent(as("acme-admin"), &casekeeperv1.SendTestEventRequest{Id: ep.GetId(), EventType: typ})
		if err != nil {
			t.Fatalf("SendTestEvent %q: %v", typ, err)
		}
		if want := map[bool]int32{true: 500, false: 204}[failing[typ]]; res.GetAttempt().GetStatusCode() != want {
			t.Errorf("SendTestEvent %q answered %d, want %d", typ, res.GetAttempt().GetStatusCode(), want)
		}
	}
	got := rc.Requests()
	if len(got) != len(types) {
		t.Fatalf("the receiver got %d requests, want %d (one per type, none retried)", len(got), len(types))
	}
	for i, r := range got {
		want := types[i]
		if want == "" {
			want = webhooks.TypeTest
		}
		if err := verifier.Verify(r.Header, r.Body); err != nil {
			t.Errorf("%s: signature: %v", want, err)
		}
		ev, err := webhooks.Decode(webhooks.FormatFull, r.Body)
		if err != nil {
			t.Fatalf("%s: %v\n%s", want, err, r.Body)
		}
		id, version, _ := ev.CaseVersion()
		// The sample case's life: created (v1), updated, document, check, risk, submitted, reviewed, redacted (v8).
		life := []string{webhooks.TypeCreated, webhooks.TypeUpdated, webhooks.TypeDocumentAdded, webhooks.TypeCheckRecorded,
			webhooks.TypeRiskSet, webhooks.TypeStatusChanged, webhooks.TypeReviewCompleted, webhooks.TypeRedacted}
		wantVersion := int64(slices.Index(life, want) + 1)
		if want == webhooks.TypeTest {
			wantVersion = 1
		}
		if ev.Type != want || id != "case_test" || version != wantVersion {
			t.Errorf("test event %d: type %s, case %s v%d; want %s, case_test v%d", i, ev.Type, id, version, want, wantVersion)
		}
	}

	var logged []*casekeeperv1.Delivery
	testinfra.Eventually(t, 10*time.Second, "every test event in the delivery log", func() bool {
		logged = e.deliveries(t, ep.GetId(), 0)
		return len(logged) == len(types)
	})
	var dead *casekeeperv1.Delivery
	for _, d := range logged {
		wantStatus := casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
		if failing[d.GetEventType()] {
			wantStatus, dead = casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD, d
		}
		if !d.GetTest() || d.GetStatus() != wantStatus || d.GetAttemptCount() != 1 || d.GetCaseId() != "case_test" {
			t.Errorf("logged test delivery %v, want test, %s, one attempt, case_test", d, wantStatus)
		}
	}
	if dead == nil {
		t.Fatal("the refused test event is not in the log")
	}
	if _, err := e.client.ResendDelivery(as("acme-admin"), &casekeeperv1.ResendDeliveryRequest{Id: dead.GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("ResendDelivery of a test delivery: %v, want FailedPrecondition", err)
	}
	rec, err := e.client.RecoverFailed(as("acme-admin"), &casekeeperv1.RecoverFailedRequest{EndpointId: ep.GetId(), Since: timestamppb.New(since)})
	if err != nil || rec.GetRecovered() != 0 {
		t.Errorf("RecoverFailed with only a failed test delivery: %v %v, want 0 recovered", rec, err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.Requests()); n != len(types) {
		t.Errorf("the receiver got %d requests after the resend and the recovery, want still %d", n, len(types))
	}

	_, err = e.client.SendTestEvent(as("acme-admin"), &casekeeperv1.SendTestEventRequest{Id: ep.GetId(), EventType: "case.deleted"})
	wantInvalid(t, "SendTestEvent of an unknown type", err, "event_type")
}

// sampleType tells the receiver's answer function the event type of the body.
func sampleType(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The type is in the body; the recorder's answer function sees only the request, so peek and pass it on.
		body, err := readAndRestore(r)
		if err == nil {
			if ev, err := webhooks.Decode(webhooks.FormatFull, body); err == nil {
				r.Header.Set("X-Sample-Type", ev.Type)
			}
		}
		next.ServeHTTP(w, r)
	})
}

func readAndRestore(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, err
}
