package webhooksvc_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// A resend reads the event back from the case event stream: an event that is no longer there (erased with its
// redacted case, or past the stream's retention) is not sent again, and the caller is told why.
func TestResendOfAnErasedEventIsRefused(t *testing.T) {
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
	// The kept event is resent from the stream, with the same webhook-id.
	kept, erased := ds[0], ds[1]
	if kept.GetEventId() != ids[0] {
		kept, erased = erased, kept
	}
	if _, err := e.client.ResendDelivery(as("acme-admin"), &casekeeperv1.ResendDeliveryRequest{Id: kept.GetId()}); err != nil {
		t.Fatal(err)
	}
	testinfra.Eventually(t, 10*time.Second, "the resent delivery arrived again", func() bool {
		n := 0
		for _, r := range rc.Requests() {
			if r.Header.Get("webhook-id") == kept.GetId() {
				n++
			}
		}
		return n == 2
	})
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
	before := len(rc.Requests())
	_, err = e.client.ResendDelivery(as("acme-admin"), &casekeeperv1.ResendDeliveryRequest{Id: erased.GetId()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("resend of an erased event: %v, want FailedPrecondition", err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.Requests()); n != before {
		t.Fatalf("%d requests after the refused resend, want %d", n, before)
	}
}

// A retry waits on the queue without the event; when it comes due after the event was erased (its case redacted),
// nothing is sent and the delivery ends, saying why.
func TestRetryOfAnErasedEventSendsNothing(t *testing.T) {
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
	erased := retrying[0]
	if erased.GetEventId() != ids[0] {
		erased = retrying[1]
	}
	cases, err := e.js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := cases.Purge(ctx, jetstream.WithPurgeSubject(events.Subject("acme", erased.GetCaseId()))); err != nil {
		t.Fatal(err)
	}
	healthy.Store(true)
	testinfra.Eventually(t, 15*time.Second, "the kept event delivered, the erased one dead", func() bool {
		return len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)) == 1 &&
			len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD)) == 1
	})
	dead := e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD)[0]
	if dead.GetId() != erased.GetId() || !strings.Contains(dead.GetLastError(), "no longer stored") {
		t.Fatalf("dead delivery %s (%q), want %s saying the event is no longer stored", dead.GetId(), dead.GetLastError(), erased.GetId())
	}
	for _, r := range rc.Requests() {
		if r.Header.Get("webhook-id") == erased.GetId() && r.Status < 300 {
			t.Fatal("the erased event was sent after its erasure")
		}
	}
}
