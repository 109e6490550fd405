package webhooksvc_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	webhooksvc "github.com/casekeeper/core/services/webhook"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/mongostore"
)

func (e *env) deliveries(t testing.TB, endpointID string, st casekeeperv1.DeliveryStatus) []*casekeeperv1.Delivery {
	t.Helper()
	resp, err := e.client.ListDeliveries(as("acme-admin"), &casekeeperv1.ListDeliveriesRequest{EndpointId: endpointID, Status: st})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetDeliveries()
}

// 410 Gone disables the endpoint, with a reason and an operational event, and dead-letters the delivery.
func TestGoneDisablesEndpoint(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusGone })
	ep, _ := e.createEndpoint(rc.URL)
	e.publish("acme", 1)
	testinfra.Eventually(t, 10*time.Second, "the endpoint disabled", func() bool {
		g, err := e.client.GetEndpoint(as("acme-admin"), &casekeeperv1.GetEndpointRequest{Id: ep.GetId()})
		return err == nil && g.GetEndpoint().GetDisabled() && strings.Contains(g.GetEndpoint().GetDisabledReason(), "410")
	})
	if n := len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD)); n != 1 {
		t.Fatalf("%d dead deliveries, want 1", n)
	}
	// The operational event is recorded right after the endpoint is disabled: one, the disabling (no
	// endpoint.failing besides: the one attempt disabled it).
	store := mongostore.New(testinfra.ConnectMongo(t, e.mongoURI, e.db), testKeyring(t))
	var ops []delivery.Operation
	testinfra.Eventually(t, 10*time.Second, "the operational event recorded", func() bool {
		var err error
		ops, err = store.Operations(context.Background(), "acme")
		return err == nil && len(ops) > 0
	})
	time.Sleep(500 * time.Millisecond)
	if ops, _ = store.Operations(context.Background(), "acme"); len(ops) != 1 || ops[0].Kind != "endpoint.disabled" || ops[0].EndpointID != ep.GetId() {
		t.Fatalf("operational events %v", ops)
	}
	// A disabled endpoint gets nothing more.
	e.publish("acme", 3)
	time.Sleep(time.Second)
	if n := len(rc.Requests()); n != 1 {
		t.Fatalf("%d requests to a disabled endpoint", n)
	}
}

// An endpoint whose attempts fail for WEBHOOK_DISABLE_AFTER is disabled; its deliveries run out of attempts and
// are dead-lettered; RecoverFailed and ResendDelivery bring them back once the receiver is fixed.
func TestFailingEndpointDisabledThenRecovered(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *webhooksvc.Config) {
		c.DisableAfter = 2 * time.Second
		c.RetrySchedule = []time.Duration{0, time.Second, time.Second}
	})
	var healthy atomic.Bool
	rc := newReceiver(t, func(int, *http.Request) int {
		if healthy.Load() {
			return http.StatusNoContent
		}
		return http.StatusInternalServerError
	})
	ep, _ := e.createEndpoint(rc.URL)
	since := time.Now().Add(-time.Minute)
	e.publish("acme", 2)
	testinfra.Eventually(t, 20*time.Second, "the endpoint disabled after failing", func() bool {
		g, _ := e.client.GetEndpoint(as("acme-admin"), &casekeeperv1.GetEndpointRequest{Id: ep.GetId()})
		return g.GetEndpoint().GetDisabled()
	})
	testinfra.Eventually(t, 20*time.Second, "both deliveries dead", func() bool {
		return len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD)) == 2
	})
	healthy.Store(true)
	if _, err := e.client.UpdateEndpoint(as("acme-admin"), &casekeeperv1.UpdateEndpointRequest{
		Endpoint: &casekeeperv1.Endpoint{Id: ep.GetId(), Disabled: false}, UpdateMask: fieldMask("disabled")}); err != nil {
		t.Fatal(err)
	}
	rec, err := e.client.RecoverFailed(as("acme-admin"), &casekeeperv1.RecoverFailedRequest{EndpointId: ep.GetId(), Since: timestamppb.New(since)})
	if err != nil || rec.GetRecovered() != 2 {
		t.Fatalf("recover %v %v", rec, err)
	}
	testinfra.Eventually(t, 15*time.Second, "both recovered deliveries succeeded", func() bool {
		return len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)) == 2
	})
	d := e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)[0]
	res, err := e.client.ResendDelivery(as("acme-admin"), &casekeeperv1.ResendDeliveryRequest{Id: d.GetId()})
	if err != nil || res.GetDelivery().GetStatus() != casekeeperv1.DeliveryStatus_DELIVERY_STATUS_PENDING {
		t.Fatalf("resend %v %v", res, err)
	}
	testinfra.Eventually(t, 10*time.Second, "the resent delivery", func() bool {
		g, _ := e.client.GetDelivery(as("acme-admin"), &casekeeperv1.GetDeliveryRequest{Id: d.GetId()})
		return g.GetDelivery().GetStatus() == casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED &&
			g.GetDelivery().GetAttemptCount() == d.GetAttemptCount()+1
	})
	ids := map[string]int{}
	for _, r := range rc.Requests() {
		ids[r.Header.Get("webhook-id")]++
	}
	if len(ids) != 2 {
		t.Fatalf("%d webhook-ids over all attempts, want 2 (stable across retries, recovery and resend)", len(ids))
	}
}

// Disabling an endpoint dead-letters what still waits for it, with the reason, instead of leaving it in the queue;
// after it is enabled again, recovering its failed deliveries sends them.
func TestDisablingAnEndpointDeadLettersWhatWaits(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *webhooksvc.Config) { c.RequestTimeout = 10 * time.Second })
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 1 {
			<-release // the first attempt holds the endpoint's only slot while it is disabled
		}
		return http.StatusNoContent
	})
	ep, _ := e.createEndpoint(rc.URL, func(ep *casekeeperv1.Endpoint) { ep.MaxConcurrency = 1 })
	since := time.Now().Add(-time.Minute)
	e.publish("acme", 5)
	testinfra.Eventually(t, 10*time.Second, "the first attempt in flight", func() bool { return len(rc.Requests()) == 1 })
	if _, err := e.client.UpdateEndpoint(as("acme-admin"), &casekeeperv1.UpdateEndpointRequest{
		Endpoint:   &casekeeperv1.Endpoint{Id: ep.GetId(), Disabled: true, DisabledReason: "receiver maintenance"},
		UpdateMask: fieldMask("disabled", "disabled_reason")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // every replica's table has the change (WEBHOOK_ENDPOINT_REFRESH is 1s)
	close(release)
	testinfra.Eventually(t, 20*time.Second, "the four waiting deliveries dead-lettered", func() bool {
		return len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD)) == 4
	})
	for _, d := range e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD) {
		if !strings.Contains(d.GetLastError(), "the endpoint is disabled: receiver maintenance") {
			t.Errorf("dead delivery %s: last error %q, want the reason", d.GetId(), d.GetLastError())
		}
	}
	if n := len(rc.Requests()); n != 1 {
		t.Fatalf("%d requests to the disabled endpoint, want only the one in flight", n)
	}
	if _, err := e.client.UpdateEndpoint(as("acme-admin"), &casekeeperv1.UpdateEndpointRequest{
		Endpoint: &casekeeperv1.Endpoint{Id: ep.GetId(), Disabled: false}, UpdateMask: fieldMask("disabled")}); err != nil {
		t.Fatal(err)
	}
	rec, err := e.client.RecoverFailed(as("acme-admin"), &casekeeperv1.RecoverFailedRequest{EndpointId: ep.GetId(), Since: timestamppb.New(since)})
	if err != nil || rec.GetRecovered() != 4 {
		t.Fatalf("RecoverFailed: %v %v, want 4", rec, err)
	}
	testinfra.Eventually(t, 20*time.Second, "all five delivered", func() bool {
		return len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)) == 5
	})
}

// Retry-After of a 429 is honoured: the next attempt waits at least that long.
func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	rc.Config.Handler = retryAfter("3", rc.Config.Handler)
	e.createEndpoint(rc.URL)
	e.publish("acme", 1)
	testinfra.Eventually(t, 15*time.Second, "the second attempt", func() bool { return len(rc.Requests()) == 2 })
	got := rc.Requests()
	if gap := got[1].At.Sub(got[0].At); gap < 3*time.Second {
		t.Fatalf("second attempt after %s, want at least the 3 s of Retry-After", gap)
	}
}

// A resend made while a retry of the same delivery is due asks for the same attempt as the retry; the claim in
// WEBHOOK_ATTEMPT_CLAIMS lets one of them send it. The receiver fails the first attempt and holds the resend's
// request for 5 s, during which the retry (2 s after the first attempt) falls due and reads the same state.
func TestResendRacingADueRetrySendsOnce(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *webhooksvc.Config) {
		c.RequestTimeout = 15 * time.Second
		c.RetrySchedule = []time.Duration{0, 2 * time.Second, time.Second, time.Second}
	})
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		time.Sleep(5 * time.Second)
		return http.StatusNoContent
	})
	ep, _ := e.createEndpoint(rc.URL)
	e.publish("acme", 1)
	var d *casekeeperv1.Delivery
	testinfra.Eventually(t, 10*time.Second, "the first attempt failed and its retry scheduled", func() bool {
		ds := e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_RETRYING)
		if len(ds) == 1 && ds[0].GetAttemptCount() == 1 {
			d = ds[0]
		}
		return d != nil
	})
	if _, err := e.client.ResendDelivery(as("acme-admin"), &casekeeperv1.ResendDeliveryRequest{Id: d.GetId()}); err != nil {
		t.Fatal(err)
	}
	testinfra.Eventually(t, 20*time.Second, "the delivery succeeded at its second attempt", func() bool {
		g, _ := e.client.GetDelivery(as("acme-admin"), &casekeeperv1.GetDeliveryRequest{Id: d.GetId()})
		return g.GetDelivery().GetStatus() == casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})
	time.Sleep(3 * time.Second) // time for a second copy of attempt 2, were it sent, to arrive
	got := rc.Requests()
	if len(got) != 2 {
		var at []string
		for _, r := range got {
			at = append(at, r.At.Format("15:04:05.000"))
		}
		t.Fatalf("the receiver got %d requests (at %v), want 2: the failed first attempt and one second attempt", len(got), at)
	}
	g, err := e.client.GetDelivery(as("acme-admin"), &casekeeperv1.GetDeliveryRequest{Id: d.GetId()})
	if err != nil || g.GetDelivery().GetAttemptCount() != 2 {
		t.Fatalf("GetDelivery: %v %v, want 2 attempts", g.GetDelivery(), err)
	}
}

func retryAfter(v string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", v)
		next.ServeHTTP(w, r)
	})
}

// Thin and jq payloads through the whole pipeline; a jq program failing at run time is a failed attempt with the
// error recorded, and the service keeps running.
func TestPayloadFormats(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *webhooksvc.Config) { c.RetrySchedule = []time.Duration{0} })
	thin, jq, broken := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	e.createEndpoint(thin.URL, func(p *casekeeperv1.Endpoint) { p.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_THIN })
	e.createEndpoint(jq.URL, func(p *casekeeperv1.Endpoint) {
		p.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ
		p.JqTransform = `{kind: .type, case: .data.id, ref: .data.external_ref}`
	})
	bad, _ := e.createEndpoint(broken.URL, func(p *casekeeperv1.Endpoint) {
		p.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ
		p.JqTransform = `error("no such field")`
	})
	e.publish("acme", 1)
	testinfra.Eventually(t, 10*time.Second, "thin and jq webhooks", func() bool { return len(thin.Requests()) == 1 && len(jq.Requests()) == 1 })
	var tb struct {
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal(thin.Requests()[0].Body, &tb)
	if tb.Data["url"] != "https://api.example/v1/cases/case_0" || tb.Data["case_id"] != "case_0" || strings.Contains(string(thin.Requests()[0].Body), "Test Person") {
		t.Errorf("thin body %s", thin.Requests()[0].Body)
	}
	if got := string(jq.Requests()[0].Body); got != `{"case":"case_0","kind":"case.created","ref":"ref"}` {
		t.Errorf("jq body %s", got)
	}
	// The error says what failed, never the value the program raised (it may be the applicant's data).
	testinfra.Eventually(t, 20*time.Second, "the failed jq attempt recorded", func() bool {
		ds := e.deliveries(t, bad.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD)
		return len(ds) == 1 && strings.Contains(ds[0].GetLastError(), "raised an error with a value of type string") &&
			!strings.Contains(ds[0].GetLastError(), "no such field")
	})
	if n := len(broken.Requests()); n != 0 {
		t.Errorf("the broken transform sent %d requests", n)
	}
}

// An endpoint's rate limit spaces its requests; waiting for the limiter never blocks other endpoints.
func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	e.start()
	limited, free := newReceiver(t, nil), newReceiver(t, nil)
	e.createEndpoint(limited.URL, func(p *casekeeperv1.Endpoint) { p.RateLimitPerSecond = 5 })
	e.createEndpoint(free.URL)
	start := time.Now()
	e.publish("acme", 20)
	testinfra.Eventually(t, 3*time.Second, "the unlimited endpoint", func() bool { return len(free.Requests()) == 20 })
	testinfra.Eventually(t, 15*time.Second, "the limited endpoint", func() bool { return len(limited.Requests()) == 20 })
	got := limited.Requests()
	// A burst of 5, then 5 per second: 20 requests span at least 3 s.
	if span := got[len(got)-1].At.Sub(got[0].At); span < 2500*time.Millisecond {
		t.Fatalf("20 requests at 5/s took %s", span)
	}
	t.Logf("unlimited done at once, limited over %s", time.Since(start))
}

// A delivery is in the log from the moment it is fanned out: while its first attempt waits in the queue (here
// behind a busy endpoint) it is listed as pending, then as its attempt's outcome, never twice.
func TestWaitingDeliveriesAreInTheLogAtOnce(t *testing.T) {
	e := newEnv(t)
	e.start()
	arrived, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	rc := newReceiver(t, func(int, *http.Request) int {
		first.Do(func() { close(arrived); <-release })
		return http.StatusNoContent
	})
	ep, _ := e.createEndpoint(rc.URL, func(p *casekeeperv1.Endpoint) { p.MaxConcurrency = 1 })
	published := time.Now()
	ids := e.publish("acme", 3)
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not arrive")
	}
	var pending []*casekeeperv1.Delivery
	testinfra.Eventually(t, 5*time.Second, "three pending deliveries listed", func() bool {
		pending = e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_PENDING)
		return len(pending) == 3
	})
	if d := time.Since(published); d > 3*time.Second {
		t.Logf("listed %v after the events were published (machine under load?)", d)
	}
	seen := map[string]bool{}
	for _, d := range pending {
		if d.GetEventType() != events.TypeCreated || d.GetCaseId() == "" || d.GetAttemptCount() != 0 || d.GetCreatedAt() == nil {
			t.Fatalf("pending delivery %v", d)
		}
		seen[d.GetEventId()] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("event %s not listed as pending: %v", id, pending)
		}
	}
	if got := e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED); len(got) != 3 {
		t.Fatalf("%d deliveries in the whole log, want 3", len(got))
	}
	close(release)
	testinfra.Eventually(t, 10*time.Second, "three succeeded, none pending, none twice", func() bool {
		all := e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED)
		ok := len(all) == 3
		for _, d := range all {
			ok = ok && d.GetStatus() == casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
		}
		return ok
	})
}
