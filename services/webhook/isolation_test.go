package webhooksvc_test

import (
	"github.com/casekeeper/core/pkg/testinfra"
	"net/http"
	"testing"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// A receiver that takes 10 s per request holds only its own endpoint's slots: a fast endpoint of the same tenant
// and one of another tenant get every event at once.
func TestSlowReceiverDoesNotDelayOthers(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *webhooksvc.Config) { c.RequestTimeout = 15 * time.Second })
	release := make(chan struct{})
	slow := newReceiver(t, func(_ int, r *http.Request) int {
		select {
		case <-time.After(10 * time.Second):
		case <-release:
		case <-r.Context().Done():
		}
		return http.StatusOK
	})
	t.Cleanup(func() { close(release) }) // runs before the receiver closes
	fast := newReceiver(t, nil)
	other := newReceiver(t, nil)
	e.createEndpoint(slow.URL)
	e.createEndpoint(fast.URL)
	if _, err := e.client.CreateEndpoint(as("globex-admin"), &casekeeperv1.CreateEndpointRequest{
		Endpoint: &casekeeperv1.Endpoint{Url: other.URL}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.publish("acme", 20)
	e.publish("globex", 20)
	testinfra.Eventually(t, 5*time.Second, "every event at the fast receivers", func() bool {
		return len(fast.Requests()) == 20 && len(other.Requests()) == 20
	})
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("fast receivers took %s", el)
	}
	if n := len(slow.Requests()); n > 4 {
		t.Fatalf("the slow receiver has %d requests in flight, want at most its concurrency (4)", n)
	}
	t.Logf("fast receivers done in %s while the slow one holds %d requests", time.Since(start), len(slow.Requests()))
}
