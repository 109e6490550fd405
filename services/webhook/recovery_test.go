package webhooksvc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// failingReceiver answers 503 until healthy is set, then 204.
// retryingAWhile keeps a failing delivery in the retrying state for about 16 s, so that a test on a loaded machine,
// where the delivery log can lag by seconds, still finds it there; each retry comes due within 2 s.
var retryingAWhile = []time.Duration{0, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second,
	2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}

func failingReceiver(t *testing.T) (*receiver, *atomic.Bool) {
	healthy := &atomic.Bool{}
	return newReceiver(t, func(int, *http.Request) int {
		if healthy.Load() {
			return http.StatusNoContent
		}
		return http.StatusServiceUnavailable
	}), healthy
}

// When the delivery queue is lost (a restore of MongoDB without NATS), the recovery sweep schedules the open
// deliveries again; without it they would wait forever.
func TestRecoverySweepRequeuesALostQueue(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *webhooksvc.Config) {
		c.RetrySchedule = retryingAWhile
		c.SweepInterval, c.SweepGrace = time.Second, time.Second
	})
	rc, healthy := failingReceiver(t)
	ep, _ := e.createEndpoint(rc.URL)
	e.publish("acme", 3)
	testinfra.Eventually(t, 15*time.Second, "three deliveries retrying", func() bool {
		return len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_RETRYING)) == 3
	})
	// The queue and its scheduled retries are gone.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, "WEBHOOK_DELIVERIES")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	healthy.Store(true)
	testinfra.Eventually(t, 20*time.Second, "the three deliveries succeeded after the sweep", func() bool {
		return len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)) == 3
	})
}

// thinBody reports whether a request body is the thin form of the event: its ids, type and version, and no case.
func thinBody(t *testing.T, body []byte, eventID, caseID string) bool {
	t.Helper()
	var got struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return got.Type == events.TypeCreated && len(got.Data) == 5 && got.Data["event_id"] == eventID &&
		got.Data["case_id"] == caseID && got.Data["case_version"] == float64(1) && got.Data["type"] == events.TypeCreated &&
		got.Data["url"] == "https://api.example/v1/cases/"+caseID && !strings.Contains(string(body), "Test Person")
}

// A resend reads the event back from the case event stream: an event that is no longer there (erased with its
// redacted case, or past the stream's retention) is resent in the thin form, whatever the endpoint's format — its
// ids, type and version, no case data — with the same webhook-id.
func TestResendOfAnErasedEventSendsTheThinForm(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusNoContent })
	ep, _ := e.createEndpoint(rc.URL)
	ids := e.publish("acme", 2)
	var ds []*casekeeperv1.Delivery
	testinfra.Eventually(t, 10*time.Second, "two deliveries succeeded", func() bool {
		ds = e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)
		return len(ds) == 2
	})
	kept, erased := ds[0], ds[1]
	if kept.GetEventId() != ids[0] {
		kept, erased = erased, kept
	}
	arrivals := func(id string) []testinfra.Request {
		var got []testinfra.Request
		for _, r := range rc.Requests() {
			if r.Header.Get("webhook-id") == id {
				got = append(got, r)
			}
		}
		return got
	}
	// The kept event is resent from the stream as it was.
	if _, err := e.client.ResendDelivery(as("acme-admin"), &casekeeperv1.ResendDeliveryRequest{Id: kept.GetId()}); err != nil {
		t.Fatal(err)
	}
	testinfra.Eventually(t, 10*time.Second, "the resent delivery arrived again", func() bool { return len(arrivals(kept.GetId())) == 2 })
	if got := arrivals(kept.GetId()); !bytes.Equal(got[1].Body, got[0].Body) || !strings.Contains(string(got[1].Body), "Test Person") {
		t.Fatalf("the kept event was resent as %s, want its full body again", got[1].Body)
	}
	// The other case's history is purged, as the case service does when the case is redacted.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(events.Subject("acme", erased.GetCaseId()))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ResendDelivery(as("acme-admin"), &casekeeperv1.ResendDeliveryRequest{Id: erased.GetId()}); err != nil {
		t.Fatalf("resend of an erased event: %v", err)
	}
	testinfra.Eventually(t, 10*time.Second, "the erased event resent", func() bool { return len(arrivals(erased.GetId())) == 2 })
	if body := arrivals(erased.GetId())[1].Body; !thinBody(t, body, erased.GetEventId(), erased.GetCaseId()) {
		t.Fatalf("the erased event was resent as %s, want the thin form", body)
	}
	testinfra.Eventually(t, 10*time.Second, "the resend on record", func() bool {
		d, err := e.client.GetDelivery(as("acme-admin"), &casekeeperv1.GetDeliveryRequest{Id: erased.GetId()})
		return err == nil && d.GetDelivery().GetAttemptCount() == 2 &&
			d.GetDelivery().GetStatus() == casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})
}

// A retry waits on the queue without the event; when it comes due after the event was erased (its case redacted),
// it sends the thin form — the event's ids, type and version, no case data — and the delivery ends as any other.
func TestRetryOfAnErasedEventSendsTheThinForm(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *webhooksvc.Config) { c.RetrySchedule = retryingAWhile })
	rc, healthy := failingReceiver(t)
	ep, _ := e.createEndpoint(rc.URL)
	ids := e.publish("acme", 2)
	var retrying []*casekeeperv1.Delivery
	testinfra.Eventually(t, 15*time.Second, "two deliveries retrying", func() bool {
		retrying = e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_RETRYING)
		return len(retrying) == 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The scheduled retries hold no event.
	queue, err := e.js.Stream(ctx, "WEBHOOK_DELIVERIES")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range retrying {
		// A retry that just came due is off the queue until its attempt schedules the next one.
		var m *jetstream.RawStreamMsg
		testinfra.Eventually(t, 5*time.Second, "the retry of "+d.GetId()+" scheduled", func() bool {
			m, err = queue.GetLastMsgForSubject(ctx, "webhooks.retry.acme."+ep.GetId()+"."+d.GetId())
			return err == nil
		})
		if len(m.Data) != 0 {
			t.Fatalf("the scheduled retry of %s carries %d bytes of event", d.GetId(), len(m.Data))
		}
	}
	erased, kept := retrying[0], retrying[1]
	if erased.GetEventId() != ids[0] {
		erased, kept = kept, erased
	}
	cases, err := e.js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := cases.Purge(ctx, jetstream.WithPurgeSubject(events.Subject("acme", erased.GetCaseId()))); err != nil {
		t.Fatal(err)
	}
	healthy.Store(true)
	testinfra.Eventually(t, 15*time.Second, "both delivered", func() bool {
		return len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)) == 2
	})
	var sent []testinfra.Request
	for _, r := range rc.Requests() {
		if r.Status < 300 {
			sent = append(sent, r)
		}
	}
	if len(sent) != 2 {
		t.Fatalf("%d successful requests, want one per delivery", len(sent))
	}
	for _, r := range sent {
		switch r.Header.Get("webhook-id") {
		case erased.GetId():
			if !thinBody(t, r.Body, erased.GetEventId(), erased.GetCaseId()) {
				t.Fatalf("the erased event was sent as %s after its erasure, want the thin form", r.Body)
			}
		case kept.GetId():
			if !strings.Contains(string(r.Body), "Test Person") {
				t.Fatalf("the kept event was sent as %s, want its full body", r.Body)
			}
		default:
			t.Fatalf("a request of delivery %q", r.Header.Get("webhook-id"))
		}
	}
}

// A first attempt carries its event in the queue. One that is still waiting there when its case is redacted (its
// endpoint busy, paused or behind) goes out in the thin form: no replica sends the erased data after the erasure.
func TestQueuedFirstAttemptOfARedactedCaseGoesThin(t *testing.T) {
	e := newEnv(t)
	e.start()
	arrived, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	rc := newReceiver(t, func(int, *http.Request) int {
		first.Do(func() { close(arrived); <-release }) // the endpoint is busy with its first request until released
		return http.StatusNoContent
	})
	e.createEndpoint(rc.URL, func(p *casekeeperv1.Endpoint) { p.MaxConcurrency = 1 })
	ids := e.publish("acme", 2) // case_0 holds the endpoint; case_1's first attempt waits in the queue
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not arrive")
	}
	redacted := &casekeeperv1.CaseEvent{Id: "evt_redacted_case_1", Type: events.TypeRedacted, Tenant: "acme", CaseId: "case_1",
		CaseVersion: 2, OccurredAt: timestamppb.Now(), Data: &casekeeperv1.Case{Id: "case_1", Tenant: "acme", Version: 2}}
	m, err := events.Message(redacted)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(t.Context(), "WEBHOOK_ERASED_CASES")
	if err != nil {
		t.Fatal(err)
	}
	testinfra.Eventually(t, 10*time.Second, "the redaction known to every replica", func() bool {
		_, err := kv.Get(t.Context(), "acme.case_1")
		return err == nil
	})
	time.Sleep(200 * time.Millisecond) // the watchers' copies follow the bucket within milliseconds
	close(release)
	testinfra.Eventually(t, 10*time.Second, "three requests", func() bool { return len(rc.Requests()) == 3 })
	for _, r := range rc.Requests() {
		var body struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		switch {
		case body.Type == events.TypeRedacted:
		case body.Data["event_id"] == ids[1]:
			if strings.Contains(string(r.Body), "Test Person") || body.Data["case_id"] != "case_1" {
				t.Fatalf("the queued attempt of the redacted case: %s", r.Body)
			}
		case body.Data["id"] == "case_0":
			if !strings.Contains(string(r.Body), "Test Person") {
				t.Fatalf("the other case's event lost its data: %s", r.Body)
			}
		default:
			t.Fatalf("unexpected request %s", r.Body)
		}
	}
}
