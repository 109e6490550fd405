package webhooksvc_test

import (
	"github.com/casekeeper/core/pkg/testinfra"
	"net/http"
	"testing"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// NATS restarts while deliveries (and retries) are in flight: nothing is lost. The server keeps its store, as a
// real deployment does; events published after the restart are delivered too.
func TestNATSRestartLosesNothing(t *testing.T) {
	before, after := 1000/slowdown, 200/slowdown // the race detector slows the embedded FerretDB several times
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n%5 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	e.createEndpoint(rc.URL, func(ep *casekeeperv1.Endpoint) { ep.MaxConcurrency = 8 })
	e.publish("acme", before)
	testinfra.Eventually(t, slowdown*30*time.Second, "deliveries under way", func() bool { _, n := rc.distinctIDs(); return n >= before/5 })
	e.nats.Restart(2 * time.Second)
	d, _ := rc.distinctIDs()
	t.Logf("NATS restarted with %d of %d delivered", d, before)
	e.publish("acme", after)
	deadline := time.Now().Add(slowdown * 90 * time.Second)
	for {
		if d, _ := rc.distinctIDs(); d == before+after {
			break
		}
		if time.Now().After(deadline) {
			e.dumpState(t)
			d, n := rc.distinctIDs()
			t.Fatalf("%d of %d delivered (%d requests)", d, before+after, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d, n := rc.distinctIDs()
	t.Logf("%d delivered with %d requests", d, n)
}
