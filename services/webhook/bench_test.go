package webhooksvc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/casekeeper/core/pkg/testinfra"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/proto/webhookbody"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/mongostore"
	"github.com/casekeeper/core/services/webhook/internal/signing"
)

// benchReceiver counts webhooks and, when asked, records the delay from the event's timestamp to receipt.
type benchReceiver struct {
	*httptest.Server
	count     atomic.Int64
	mu        sync.Mutex
	latencies []time.Duration
	measure   atomic.Bool
}

func newBenchReceiver(b *testing.B) *benchReceiver {
	br := &benchReceiver{}
	br.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if br.measure.Load() {
			var env struct {
				Timestamp time.Time `json:"timestamp"`
			}
			if json.Unmarshal(body, &env) == nil {
				d := time.Since(env.Timestamp)
				br.mu.Lock()
				br.latencies = append(br.latencies, d)
				br.mu.Unlock()
			}
		}
		br.count.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(br.Close)
	return br
}

func sampleEvent(tenant string, i int) *casekeeperv1.CaseEvent {
	return &casekeeperv1.CaseEvent{Id: fmt.Sprintf("evt_bench_%d_%d", time.Now().UnixNano(), i), Type: events.TypeUpdated,
		Tenant: tenant, CaseId: fmt.Sprintf("case_%d", i), CaseVersion: 2, OccurredAt: timestamppb.Now(),
		Data: &casekeeperv1.Case{Id: fmt.Sprintf("case_%d", i), Tenant: tenant, Version: 2, ExternalRef: "customer-4711",
			Status:    casekeeperv1.CaseStatus_CASE_STATUS_IN_REVIEW,
			Applicant: &casekeeperv1.Applicant{FullName: "Bench Person", DateOfBirth: "1990-01-01", Nationality: "DE", Email: "p@example.com"},
			Labels:    []string{"bench"}, Metadata: map[string]string{"channel": "web"}}}
}

func (e *env) publishAt(b *testing.B, n int, every time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var futures []jetstream.PubAckFuture
	// Paced by a schedule rather than a ticker per event, so that a late wake-up does not lower the rate.
	start := time.Now()
	for i := range n {
		if every > 0 {
			if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
		}
		m, _ := events.Message(sampleEvent("acme", i))
		f, err := e.js.PublishMsgAsync(m)
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		}
	}
}

func rssKiB(pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkDelivery measures the service (built and run as its own process, configured by environment, against
// embedded NATS and FerretDB) delivering to a local keep-alive receiver:
//   - deliveries/s for a burst of events, next to a bare Go HTTP client posting the same signed bodies to the same
//     receiver with the same concurrency (the ratio is the cost of durability: bus, database, signing);
//   - p50/p99 from the case event's write to its receipt at a fixed 500 events/s;
//   - the service's RSS (current and peak) under that load.
//
// Each is measured twice: with nothing stored before, and with 100,000 deliveries already in the delivery log (a
// cost that grows with what is stored shows as the difference).
//
// Run: go test -run '^$' -bench Delivery -benchtime 1x ./services/webhook/
func BenchmarkDelivery(b *testing.B) {
	for _, stored := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("stored=%d", stored), func(b *testing.B) { benchDelivery(b, stored) })
	}
}

// seedDeliveries stores n delivered first attempts of another endpoint, as the projector writes them.
func (e *env) seedDeliveries(b *testing.B, n int) {
	store := mongostore.New(testinfra.ConnectMongo(b, e.mongoURI, e.db), testKeyring(b))
	at := time.Now().Add(-time.Hour)
	for i := 0; i < n; i += 1000 {
		outs := make([]delivery.Outcome, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			d := delivery.Delivery{ID: fmt.Sprintf("msg_seeded%08d", j), Tenant: "acme", EndpointID: "ep_seededolderendpointaaaa",
				EventID: fmt.Sprintf("evt_seeded_%d", j), EventSeq: uint64(j + 1), EventType: events.TypeUpdated, CaseID: fmt.Sprintf("case_%d", j%5000)}
			outs = append(outs, delivery.Outcome{Delivery: d, Status: delivery.StatusSucceeded, Seq: uint64(j + 1),
				Attempt: delivery.Attempt{Number: 1, At: at, StatusCode: 204, Latency: 3 * time.Millisecond}})
		}
		if err := store.ApplyOutcomes(context.Background(), outs); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDelivery(b *testing.B, stored int) {
	const (
		burst       = 10000
		concurrency = 32
		rate        = 500
		seconds     = 10
	)
	e := newEnv(b)
	rc := newBenchReceiver(b)
	bin := testinfra.Build(b, "./cmd/webhook")
	ep := e.seedEndpoint(b, rc.URL, concurrency)
	e.seedDeliveries(b, stored)
	proc := e.startProcess(b, bin)

	// Warm-up: consumers created, connections open.
	e.publishAt(b, 100, 0)
	waitCount(b, &rc.count, 100, time.Minute)

	// 1. Throughput of the service.
	rc.count.Store(0)
	start := time.Now()
	e.publishAt(b, burst, 0)
	waitCount(b, &rc.count, burst, 5*time.Minute)
	svcRate := float64(burst) / time.Since(start).Seconds()

	// 2. Bare client, same bodies and headers, same receiver, same concurrency.
	signer, _ := signing.NewSigner(ep.Secrets[0].Value)
	bodies := make([][]byte, burst)
	for i := range bodies {
		bodies[i], _ = webhookbody.Full(sampleEvent("acme", i))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	rc.count.Store(0)
	start = time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= burst {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, rc.URL, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				signer.Sign(req.Header, delivery.DeliveryID(strconv.Itoa(i), ep.ID), time.Now(), bodies[i])
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	bareRate := float64(burst) / time.Since(start).Seconds()

	// 3. Latency at a fixed rate, and RSS.
	rc.count.Store(0)
	rc.measure.Store(true)
	var peakRSS atomic.Int64
	stopRSS := make(chan struct{})
	go func() {
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-tk.C:
				if r := rssKiB(proc.Cmd.Process.Pid, "VmRSS"); r > peakRSS.Load() {
					peakRSS.Store(r)
				}
			}
		}
	}()
	e.publishAt(b, rate*seconds, time.Second/rate)
	waitCount(b, &rc.count, rate*seconds, 2*time.Minute)
	close(stopRSS)
	rc.mu.Lock()
	lat := slices.Clone(rc.latencies)
	rc.mu.Unlock()
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }

	b.ReportMetric(svcRate, "deliveries/s")
	b.ReportMetric(bareRate, "bare-posts/s")
	b.ReportMetric(svcRate/bareRate, "ratio")
	b.ReportMetric(float64(p(0.5).Microseconds())/1000, "p50-ms@500/s")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms@500/s")
	b.ReportMetric(float64(peakRSS.Load())/1024, "rss-MiB@500/s")
	b.ReportMetric(float64(rssKiB(proc.Cmd.Process.Pid, "VmHWM"))/1024, "peak-rss-MiB")
}

func waitCount(b *testing.B, c *atomic.Int64, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for c.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d delivered after %s", c.Load(), n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
