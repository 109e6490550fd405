package webhooksvc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// publishVersions writes versions 1..n of each case, interleaved across the cases as busy writers would.
func (e *env) publishVersions(tenant string, cases []string, n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for v := 1; v <= n; v++ {
		for _, c := range cases {
			typ := events.TypeUpdated
			if v == 1 {
				typ = events.TypeCreated
			}
			ev := &casekeeperv1.CaseEvent{Id: fmt.Sprintf("evt_%s_%d", c, v), Type: typ, Tenant: tenant, CaseId: c, CaseVersion: int64(v),
				OccurredAt: timestamppb.Now(), Data: &casekeeperv1.Case{Id: c, Tenant: tenant, Version: int64(v)}}
			m, err := events.Message(ev)
			if err != nil {
				e.t.Fatal(err)
			}
			if _, err := e.js.PublishMsg(ctx, m); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// caseAttempt is one request a receiver got: which version of which case, and what it answered.
type caseAttempt struct {
	caseID  string
	version int64
	status  int
	at      time.Time
}

func attemptsByCase(t *testing.T, rc *receiver) map[string][]caseAttempt {
	t.Helper()
	out := map[string][]caseAttempt{}
	for _, r := range rc.Requests() {
		var b struct {
			Data struct {
				ID      string `json:"id"`
				Version int64  `json:"version,string"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatalf("body %s: %v", r.Body, err)
		}
		out[b.Data.ID] = append(out[b.Data.ID], caseAttempt{b.Data.ID, b.Data.Version, r.Status, r.At})
	}
	return out
}

// TestPerCaseOrderingHoldsBackOnlyTheFailingCase: on an endpoint with ordering PER_CASE, a receiver that fails
// one case for a while gets every case's events in version order — the failing case's later events only after its
// earlier one succeeded — and the other cases are not held back by it.
func TestPerCaseOrderingHoldsBackOnlyTheFailingCase(t *testing.T) {
	e := newEnv(t)
	// Retries for longer than the slow case fails: none of its events goes dead.
	e.start(func(c *webhooksvc.Config) {
		c.RetrySchedule = []time.Duration{0, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
	})
	const slow, versions = "case_slow", 5
	cases := []string{slow, "case_a", "case_b", "case_c"}
	var failSlow sync.Once
	failingUntil := make(chan struct{})
	var rc *receiver
	rc = newReceiver(t, func(n int, _ *http.Request) int {
		var b struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		_ = json.Unmarshal(rc.Requests()[n-1].Body, &b)
		if b.Data.ID == slow {
			select {
			case <-failingUntil:
			default:
				return http.StatusServiceUnavailable
			}
		}
		return http.StatusOK
	})
	ep, _ := e.createEndpoint(rc.URL, func(p *casekeeperv1.Endpoint) {
		p.Ordering = casekeeperv1.EndpointOrdering_ENDPOINT_ORDERING_PER_CASE
		p.MaxConcurrency = 16
	})
	if ep.GetOrdering() != casekeeperv1.EndpointOrdering_ENDPOINT_ORDERING_PER_CASE {
		t.Fatalf("ordering %v", ep.GetOrdering())
	}
	start := time.Now()
	e.publishVersions("acme", cases, versions)

	// The other cases all arrive while the slow one still fails.
	testinfra.Eventually(t, 30*time.Second, "every version of the other cases", func() bool {
		by := attemptsByCase(t, rc)
		for _, c := range cases[1:] {
			if ok := okVersions(by[c]); len(ok) != versions {
				return false
			}
		}
		return true
	})
	othersDone := time.Since(start)
	time.Sleep(2 * time.Second) // the slow case's first event is retried meanwhile; its later ones wait
	failSlow.Do(func() { close(failingUntil) })
	deadline := time.Now().Add(30 * time.Second)
	for len(okVersions(attemptsByCase(t, rc)[slow])) != versions {
		if time.Now().After(deadline) {
			t.Fatalf("the slow case's versions delivered: %v; its requests: %v", okVersions(attemptsByCase(t, rc)[slow]), attemptsByCase(t, rc)[slow])
		}
		time.Sleep(100 * time.Millisecond)
	}
	by := attemptsByCase(t, rc)
	for _, c := range cases {
		// Every request of the case, failed ones too, in version order: a version is tried only once the one
		// before it succeeded.
		var last int64
		for _, a := range by[c] {
			if a.version < last {
				t.Errorf("case %s: version %d sent after version %d: %v", c, a.version, last, by[c])
				break
			}
			last = a.version
		}
		if ok := okVersions(by[c]); len(ok) != versions {
			t.Errorf("case %s: versions delivered %v, want 1..%d", c, ok, versions)
		}
	}
	failedSlow := 0
	for _, a := range by[slow] {
		if a.status != http.StatusOK {
			failedSlow++
			if a.version != 1 {
				t.Errorf("a later version of the slow case was sent while its first failed: %v", by[slow])
			}
		}
	}
	if failedSlow < 2 {
		t.Errorf("the slow case failed %d times, want it retried while the others went", failedSlow)
	}
	t.Logf("other cases delivered in %s while the slow case was failing", othersDone.Round(time.Millisecond))
}

// okVersions are the versions answered 2xx, in the order they were.
func okVersions(as []caseAttempt) []int64 {
	var out []int64
	for _, a := range as {
		if a.status == http.StatusOK {
			out = append(out, a.version)
		}
	}
	return out
}
