package webhooksvc_test

import (
	"github.com/casekeeper/core/pkg/testinfra"
	"testing"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// 10,000 events × 3 endpoints: every (event, endpoint) pair arrives, none is lost; duplicates (allowed by
// at-least-once) are counted and reported.
func TestTenThousandEventsToThreeEndpoints(t *testing.T) {
	const events = 10000
	e := newEnv(t)
	e.start()
	var rcs [3]*receiver
	var eps [3]*casekeeperv1.Endpoint
	for i := range rcs {
		rcs[i] = newReceiver(t, nil)
		eps[i], _ = e.createEndpoint(rcs[i].URL, func(ep *casekeeperv1.Endpoint) { ep.MaxConcurrency = 32 })
	}
	start := time.Now()
	ids := e.publish("acme", events)
	t.Logf("published %d events in %s", events, time.Since(start))
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	testinfra.Eventually(t, slowdown*120*time.Second, "every pair delivered", func() bool {
		select {
		case <-progress.C:
			var counts []int
			for _, rc := range rcs {
				_, n := rc.distinctIDs()
				counts = append(counts, n)
			}
			t.Logf("after %s: %v", time.Since(start).Round(time.Second), counts)
		default:
		}
		for _, rc := range rcs {
			if d, _ := rc.distinctIDs(); d < events {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start)
	for i, rc := range rcs {
		want := make(map[string]bool, events)
		for _, id := range ids {
			want[delivery.DeliveryID(id, eps[i].GetId())] = true
		}
		got := map[string]int{}
		for _, r := range rc.Requests() {
			got[r.Header.Get("webhook-id")]++
		}
		missing, dups := 0, 0
		for id := range want {
			if got[id] == 0 {
				missing++
			}
		}
		for id, n := range got {
			if !want[id] {
				t.Errorf("endpoint %d got an unexpected webhook-id %s", i, id)
			}
			dups += n - 1
		}
		if missing > 0 {
			t.Errorf("endpoint %d: %d deliveries missing", i, missing)
		}
		t.Logf("endpoint %d: %d distinct, %d duplicates", i, len(got), dups)
	}
	t.Logf("%d deliveries in %s (%.0f/s)", 3*events, elapsed, float64(3*events)/elapsed.Seconds())
}
