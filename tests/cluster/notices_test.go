package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// TestNoticesOnceAcrossWebhookProcesses: two webhook service processes share an endpoint's attempts; while the
// endpoint fails, both see failures, and when it recovers either may see the success — the tenant's notice URL
// still gets one endpoint.failing and one endpoint.recovered.
func TestNoticesOnceAcrossWebhookProcesses(t *testing.T) {
	pair := startWebhookPair(t, "0s,1s,1s,1s,1s")
	var failing atomic.Bool
	failing.Store(true)
	hooks := testinfra.NewRecorder(t, func(int, *http.Request) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	notices := testinfra.NewRecorder(t, nil)
	if _, err := pair.api.UpdateNoticeSettings(pair.admin, &pb.UpdateNoticeSettingsRequest{Url: notices.URL + "/notices"}); err != nil {
		t.Fatal(err)
	}
	ep, err := pair.api.CreateEndpoint(pair.admin, &pb.CreateEndpointRequest{Endpoint: &pb.Endpoint{Url: hooks.URL + "/hook", MaxConcurrency: 8}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the other process learns of the endpoint from the registry before the events
	for i := range 20 {
		pair.publish(t, fmt.Sprint("case_n", i), 1)
	}
	testinfra.Eventually(t, time.Minute, "failed attempts from both processes", func() bool { return len(hooks.Requests()) >= 30 })
	failing.Store(false)
	kinds := func() []string {
		var out []string
		for _, r := range notices.Requests() {
			var b struct {
				Type string `json:"type"`
				Data struct {
					EndpointID string `json:"endpoint_id"`
				} `json:"data"`
			}
			if json.Unmarshal(r.Body, &b) == nil && b.Data.EndpointID == ep.GetEndpoint().GetId() {
				out = append(out, b.Type)
			}
		}
		slices.Sort(out)
		return out
	}
	testinfra.Eventually(t, time.Minute, "the recovered notice", func() bool { return slices.Contains(kinds(), "endpoint.recovered") })
	testinfra.Eventually(t, time.Minute, "every delivery succeeded", func() bool {
		ok := map[string]bool{}
		for _, r := range hooks.Requests() {
			if r.Status == http.StatusOK {
				ok[r.Header.Get("Webhook-Id")] = true
			}
		}
		return len(ok) == 20
	})
	time.Sleep(2 * time.Second)
	if got := strings.Join(kinds(), ","); got != "endpoint.failing,endpoint.recovered" {
		t.Fatalf("notices %s, want one endpoint.failing and one endpoint.recovered", got)
	}
}
