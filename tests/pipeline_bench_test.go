package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// BenchmarkPipeline measures P2: a case written over gRPC (CreateCase, the real case service with a real Keycloak
// token) until its webhook is received (the real webhook service, full payloads, one endpoint), at a fixed rate.
// The delay runs from the event's timestamp, which the case service stamps when it takes the write, to receipt.
// The case and webhook services, NATS, FerretDB, the receiver and the writers share the machine's cores.
//
// Run: make bench BENCH=BenchmarkPipeline BENCHTIME=1x
func BenchmarkPipeline(b *testing.B) {
	s := startStack(b)
	var mu sync.Mutex
	var delays []time.Duration
	var received atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var env struct {
			Timestamp time.Time `json:"timestamp"`
		}
		if json.Unmarshal(body, &env) == nil {
			d := time.Since(env.Timestamp)
			mu.Lock()
			delays = append(delays, d)
			mu.Unlock()
		}
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(rc.Close)
	s.createEndpoint(b, rc.URL, "pipeline", casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL, "")
	time.Sleep(2 * time.Second) // the endpoint routed on every instance

	run := func(name string, rate, seconds int) {
		mu.Lock()
		delays = delays[:0]
		mu.Unlock()
		start := received.Load()
		n := rate * seconds
		every := time.Second / time.Duration(rate)
		var writers sync.WaitGroup
		jobs := make(chan int, n)
		for range 32 {
			writers.Go(func() {
				for i := range jobs {
					ref := fmt.Sprintf("pipe-%s-%d-%d", name, time.Now().UnixNano(), i)
					if _, err := s.cases.CreateCase(s.provider, &casekeeperv1.CreateCaseRequest{RequestId: ref, ExternalRef: ref,
						Level:     casekeeperv1.VerificationLevel_VERIFICATION_LEVEL_BASIC,
						Applicant: &casekeeperv1.Applicant{FullName: "Pipeline Person", Nationality: "DE"}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		// Paced against the clock, so that a late wake-up does not lower the rate.
		t0 := time.Now()
		for i := range n {
			if d := time.Until(t0.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
			jobs <- i
		}
		close(jobs)
		writers.Wait()
		offered := float64(n) / time.Since(t0).Seconds()
		deadline := time.Now().Add(2 * time.Minute)
		for received.Load()-start < int64(n) {
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d of %d webhooks received", name, received.Load()-start, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		lat := slices.Clone(delays)
		mu.Unlock()
		slices.Sort(lat)
		p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
		// The last tenth against the first: a backlog that grows shows here.
		tail := lat[len(lat)*9/10:]
		b.Logf("%s: %d writes offered at %.0f/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d slowest from %.1f ms)",
			name, n, offered, p(0.5), p(0.99), p(1), len(tail), float64(tail[0].Microseconds())/1000)
		b.ReportMetric(p(0.5), "p50-ms@"+name)
		b.ReportMetric(p(0.99), "p99-ms@"+name)
		b.ReportMetric(offered, "writes/s@"+name)
	}
	run("20/s", 20, 10)
	run("500/s", 500, 30)
}
