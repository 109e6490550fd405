package webhooksvc_test

import (
	"github.com/casekeeper/core/pkg/testinfra"
	"net"
	"net/http"
	"testing"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// 500, 500, 500, then 200: four attempts of one delivery, all with the same webhook-id, recorded in order.
func TestRetriesUntilSuccessWithOneWebhookID(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	ep, _ := e.createEndpoint(rc.URL)
	e.publish("acme", 1)
	testinfra.Eventually(t, 20*time.Second, "four attempts", func() bool { return len(rc.Requests()) >= 4 })
	time.Sleep(1500 * time.Millisecond) // a fifth attempt would have come by now
	got := rc.Requests()
	if len(got) != 4 {
		t.Fatalf("%d requests, want 4", len(got))
	}
	id := got[0].Header.Get("webhook-id")
	for i, g := range got {
		if g.Header.Get("webhook-id") != id {
			t.Fatalf("attempt %d has webhook-id %q, want %q", i+1, g.Header.Get("webhook-id"), id)
		}
	}
	var d *casekeeperv1.Delivery
	testinfra.Eventually(t, 5*time.Second, "the delivery recorded as succeeded", func() bool {
		resp, err := e.client.GetDelivery(as("acme-admin"), &casekeeperv1.GetDeliveryRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		d = resp.GetDelivery()
		return d.GetStatus() == casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})
	if d.GetEndpointId() != ep.GetId() || d.GetAttemptCount() != 4 || len(d.GetAttempts()) != 4 {
		t.Fatalf("delivery %v", d)
	}
	for i, a := range d.GetAttempts() {
		want := int32(500)
		if i == 3 {
			want = 200
		}
		if a.GetNumber() != int32(i+1) || a.GetStatusCode() != want || a.GetResponseExcerpt() != "ok" || a.GetLatency().AsDuration() <= 0 {
			t.Errorf("attempt %d: %v", i+1, a)
		}
	}
}

// The receiver is down (connection refused) for the first attempts and comes up later: the delivery arrives.
func TestReceiverDownThenUp(t *testing.T) {
	e := newEnv(t)
	e.start()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // nothing listens: connection refused
	ep, _ := e.createEndpoint("http://" + addr + "/hook")
	e.publish("acme", 1)
	testinfra.Eventually(t, 10*time.Second, "a failed attempt", func() bool {
		resp, err := e.client.ListDeliveries(as("acme-admin"), &casekeeperv1.ListDeliveriesRequest{EndpointId: ep.GetId()})
		return err == nil && len(resp.GetDeliveries()) == 1 && resp.GetDeliveries()[0].GetAttemptCount() >= 1
	})
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := testinfra.NewRecorderOn(t, lis, nil)
	testinfra.Eventually(t, 15*time.Second, "the delivery after the receiver came up", func() bool { return len(rc.Requests()) == 1 })
	resp, _ := e.client.ListDeliveries(as("acme-admin"), &casekeeperv1.ListDeliveriesRequest{EndpointId: ep.GetId()})
	d := resp.GetDeliveries()[0]
	testinfra.Eventually(t, 5*time.Second, "succeeded", func() bool {
		g, err := e.client.GetDelivery(as("acme-admin"), &casekeeperv1.GetDeliveryRequest{Id: d.GetId()})
		d = g.GetDelivery()
		return err == nil && d.GetStatus() == casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})
	if d.GetAttempts()[0].GetError() == "" || d.GetAttempts()[0].GetStatusCode() != 0 {
		t.Errorf("first attempt %v, want a connection error", d.GetAttempts()[0])
	}
	// The listing carries the latest attempt, so a delivery log needs no GetDelivery per row.
	resp, err = e.client.ListDeliveries(as("acme-admin"), &casekeeperv1.ListDeliveriesRequest{EndpointId: ep.GetId()})
	if err != nil || len(resp.GetDeliveries()) != 1 {
		t.Fatalf("list: %v %v", resp, err)
	}
	last := resp.GetDeliveries()[0].GetLastAttempt()
	if last.GetNumber() != d.GetAttemptCount() || last.GetStatusCode() != 200 || last.GetLatency() == nil {
		t.Errorf("listed last attempt %v, want attempt %d answered 200", last, d.GetAttemptCount())
	}
}
