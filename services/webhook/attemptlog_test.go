package webhooksvc_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// Each attempt in the delivery log holds the request as it was sent: the receiver's headers (custom values
// masked) and the very body it got, for every attempt of a retried delivery; a page of the log leaves them out.
func TestAttemptsKeepTheRequestSent(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusBadGateway
		}
		return http.StatusNoContent
	})
	ep, _ := e.createEndpoint(rc.URL, func(ep *casekeeperv1.Endpoint) {
		ep.Headers = map[string]string{"X-Api-Key": "receiver-credential-42"}
	})
	e.publish("acme", 1)
	var d *casekeeperv1.Delivery
	testinfra.Eventually(t, 15*time.Second, "the delivery succeeded at its second attempt", func() bool {
		ds := e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)
		if len(ds) == 1 && ds[0].GetAttemptCount() == 2 {
			d = ds[0]
		}
		return d != nil
	})
	if la := d.GetLastAttempt(); la == nil || la.GetRequestBody() != "" || len(la.GetRequestHeaders()) != 0 {
		t.Errorf("a page of the log carries the request: %v", la)
	}
	g, err := e.client.GetDelivery(as("acme-admin"), &casekeeperv1.GetDeliveryRequest{Id: d.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	got := rc.Requests()
	attempts := g.GetDelivery().GetAttempts()
	if len(attempts) != 2 || len(got) != 2 {
		t.Fatalf("%d attempts logged, %d requests received; want 2 of each", len(attempts), len(got))
	}
	for i, a := range attempts {
		if a.GetRequestBody() != string(got[i].Body) {
			t.Errorf("attempt %d: logged body %q, the receiver got %q", a.GetNumber(), a.GetRequestBody(), got[i].Body)
		}
		logged := map[string]string{}
		for _, h := range a.GetRequestHeaders() {
			logged[h.GetName()] = h.GetValue()
		}
		for _, name := range []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature", "Content-Type", "User-Agent"} {
			if logged[name] == "" || logged[name] != got[i].Header.Get(name) {
				t.Errorf("attempt %d: logged %s %q, the receiver got %q", a.GetNumber(), name, logged[name], got[i].Header.Get(name))
			}
		}
		if logged["X-Api-Key"] != "••••••" || got[i].Header.Get("X-Api-Key") != "receiver-credential-42" {
			t.Errorf("attempt %d: custom header logged as %q (sent %q), want it masked", a.GetNumber(), logged["X-Api-Key"], got[i].Header.Get("X-Api-Key"))
		}
	}
}
