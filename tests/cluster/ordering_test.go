package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// TestPerCaseOrderAcrossWebhookProcesses: two webhook service processes share a PER_CASE endpoint's deliveries.
// While the receiver fails one case, every other case's versions arrive, each case in version order, whichever
// process sends them; once the failing case recovers, its versions follow in order too.
func TestPerCaseOrderAcrossWebhookProcesses(t *testing.T) {
	pair := startWebhookPair(t, "0s,1s,2s,2s,2s,2s,2s,2s,2s,2s")
	const slow, cases, versions = "case_o0", 6, 6
	var slowFails atomic.Bool
	slowFails.Store(true)
	var hooks *testinfra.Recorder
	caseOf := func(body []byte) (id string, version int64) {
		var b struct {
			Data struct {
				ID      string `json:"id"`
				Version int64  `json:"version,string"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &b)
		return b.Data.ID, b.Data.Version
	}
	hooks = testinfra.NewRecorder(t, func(n int, _ *http.Request) int {
		if id, _ := caseOf(hooks.Requests()[n-1].Body); id == slow && slowFails.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	if _, err := pair.api.CreateEndpoint(pair.admin, &pb.CreateEndpointRequest{Endpoint: &pb.Endpoint{Url: hooks.URL + "/ordered",
		MaxConcurrency: 16, Ordering: pb.EndpointOrdering_ENDPOINT_ORDERING_PER_CASE}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the other process learns of the endpoint from the registry before the events
	for v := int64(1); v <= versions; v++ {
		for c := range cases {
			pair.publish(t, fmt.Sprint("case_o", c), v)
		}
	}
	// okBy is what each case got answered 2xx, in arrival order; inOrder checks every request, failed ones too.
	okBy := func() map[string][]int64 {
		out := map[string][]int64{}
		for _, r := range hooks.Requests() {
			if id, v := caseOf(r.Body); r.Status == http.StatusOK {
				out[id] = append(out[id], v)
			}
		}
		return out
	}
	complete := func(vs []int64) bool { return len(vs) >= versions && vs[len(vs)-1] == versions }
	testinfra.Eventually(t, time.Minute, "every version of the cases that do not fail", func() bool {
		ok := okBy()
		for c := 1; c < cases; c++ {
			if !complete(ok[fmt.Sprint("case_o", c)]) {
				return false
			}
		}
		return true
	})
	if got := okBy()[slow]; len(got) != 0 {
		t.Fatalf("the failing case got %v answered 2xx while it failed", got)
	}
	slowFails.Store(false)
	testinfra.Eventually(t, time.Minute, "every version of the case that failed", func() bool { return complete(okBy()[slow]) })

	last := map[string]int64{}
	for _, r := range hooks.Requests() {
		id, v := caseOf(r.Body)
		if v < last[id] {
			t.Errorf("case %s: version %d sent after version %d", id, v, last[id])
		}
		last[id] = v
	}
	for id, vs := range okBy() {
		for i, v := range vs {
			if v != int64(i+1) {
				t.Errorf("case %s: versions answered 2xx %v, want 1..%d once each", id, vs, versions)
				break
			}
		}
	}
}
