package webhooksvc_test

import (
	"context"
	"net/http"
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

// When the delivery queue is lost (a restore of MongoDB without NATS), the recovery sweep schedules the open
// deliveries again; without it they would wait forever.
func TestRecoverySweepRequeuesALostQueue(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *webhooksvc.Config) {
		c.RetrySchedule = []time.Duration{0, 3 * time.Second, time.Second}
		c.SweepInterval, c.SweepGrace = time.Second, time.Second
	})
	var healthy atomic.Bool
	rc := newReceiver(t, func(int, *http.Request) int {
		if healthy.Load() {
			return http.StatusNoContent
		}
		return http.StatusServiceUnavailable
	})
	ep, _ := e.createEndpoint(rc.URL)
	e.publish("acme", 3)
	testinfra.Eventually(t, 10*time.Second, "three deliveries retrying", func() bool {
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
