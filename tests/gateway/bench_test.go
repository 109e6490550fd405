package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
)

// The benchmarks behind docs/benchmarks.md ("Query gateway"). Run them alone, on an otherwise idle machine:
//
//	KEYCLOAK_URL=http://127.0.0.1:18180 go test -run '^$' -bench . -benchtime 5s ./tests/gateway/ ./services/gateway/...
//
// They run the whole stack in one process (gateway, case service, FerretDB, NATS) plus the load generator, all on
// the same cores, so the figures are a floor for the gateway alone.

var (
	benchOnce, memOnce sync.Once
	benchH, memH       *harness
)

// sharedBench builds one stack for all benchmarks, with no rate limit. It lives until the process ends.
func sharedBench(b *testing.B) *harness {
	benchOnce.Do(func() {
		benchH = newHarness(&processTB{B: b}, harnessOptions{rateLimit: 0, rateBurst: 1})
	})
	return benchH
}

// processTB hands the harness a testing.TB whose cleanups never run: the benchmarks share one stack, torn down
// with the process.
type processTB struct{ *testing.B }

func (p *processTB) Log(...any)               {}
func (p *processTB) Logf(string, ...any)      {}
func (p *processTB) Cleanup(func())           {}
func (p *processTB) TempDir() string          { return must(osMkdirTemp()) }
func (p *processTB) Context() context.Context { return context.Background() }

// BenchmarkGetCaseHTTP measures authenticated GET /v1/cases/{id}: through the real case service on FerretDB, and
// through an in-memory case service (what the gateway itself costs: HTTP, grpc-gateway, gRPC, token check,
// delegation, audit write).
func BenchmarkGetCaseHTTP(b *testing.B) {
	b.Run("real-case-service", func(b *testing.B) {
		h := sharedBench(b)
		c := h.createCase(b, h.acmeProvider(), fmt.Sprintf("bench-%d", time.Now().UnixNano()))
		benchGetCase(b, h, c.GetId())
	})
	b.Run("in-memory-case-service", func(b *testing.B) {
		memOnce.Do(func() { memH = newHarness(&processTB{B: b}, harnessOptions{rateBurst: 1, inMemoryCases: true}) })
		benchGetCase(b, memH, "case-1")
	})
	// The bare limit (P3's baseline), with the same load tool in the same run: a plain net/http handler that
	// verifies the same token with the same verifier (keys cached) and answers a case-sized JSON body.
	b.Run("bare-jwt-handler", func(b *testing.B) {
		h := sharedBench(b)
		v, err := auth.NewVerifier(auth.VerifierConfig{KeycloakURL: h.kc, Realm: testinfra.Realm, Audience: "casekeeper-api"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		body := []byte(`{"id":"case-1","tenant":"acme","external_ref":"bench","status":"CASE_STATUS_IN_REVIEW","version":"3",` +
			`"applicant":{"full_name":"Bench Person","date_of_birth":"1990-01-01","nationality":"DE"}}`)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if _, err := v.Verify(r.Context(), raw); !ok || err != nil {
				http.Error(w, "unauthenticated", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}))
		defer srv.Close()
		benchGet(b, h, srv.URL+"/v1/cases/case-1")
	})
}

func benchGetCase(b *testing.B, h *harness, id string) { benchGet(b, h, h.base+"/v1/cases/"+id) }

func benchGet(b *testing.B, h *harness, url string) {
	tok := h.acme()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func() (time.Duration, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return time.Since(start), nil
	}
	if _, err := get(); err != nil { // warm: keys fetched, the gateway's own token obtained
		b.Fatal(err)
	}
	kcBefore := h.kcCalls.Load()
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(8) // 16 concurrent clients on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			d, err := get()
			if err != nil {
				b.Error(err)
				return
			}
			local = append(local, d)
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.ReportMetric(float64(h.kcCalls.Load()-kcBefore)/float64(b.N), "keycloak-calls/op")
}

// BenchmarkVerifyToken is the cost of authenticating one request: a token seen before (the steady state: a client
// reuses its token for its lifetime) and a token verified from scratch (RSA signature + claims).
func BenchmarkVerifyToken(b *testing.B) {
	h := sharedBench(b)
	tok := h.acme()
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := auth.NewVerifier(auth.VerifierConfig{KeycloakURL: h.kc, Realm: testinfra.Realm, Audience: "casekeeper-api", CacheSize: bc.cache}, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := v.Verify(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
			fetches := v.KeyFetches()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(v.KeyFetches()-fetches)/float64(b.N), "keycloak-calls/op")
		})
	}
}

// BenchmarkPoll compares, over HTTP, an interval fetch that finds nothing new with full list fetches, after seeding
// the tenant with feedSize events and listSize cases.
func BenchmarkPoll(b *testing.B) {
	const feedSize, listSize = 500, 200
	h := sharedBench(b)
	tok := h.acme()
	seedOnce.Do(func() {
		tenant := "acme"
		for i := range feedSize {
			h.publish(b, tenant, fmt.Sprintf("poll-%d", i), events.TypeCreated, 1)
		}
		prov := h.acmeProvider()
		for i := range listSize {
			h.createCase(b, prov, fmt.Sprintf("poll-case-%d-%d", i, time.Now().UnixNano()))
		}
	})
	var head string
	waitFor(b, func() bool {
		head = h.head(b, tok)
		_, body := h.get(b, "/v1/events?page_size=500", tok)
		return len(body) > 0 && countEvents(body) == 500
	})
	client := &http.Client{}
	run := func(b *testing.B, path string) {
		bytes := 0
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodGet, h.base+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("HTTP %d", resp.StatusCode)
			}
			bytes = int(n)
		}
		b.ReportMetric(float64(bytes), "resp-bytes")
	}
	b.Run("empty-poll", func(b *testing.B) { run(b, "/v1/events?after="+head) })
	b.Run("full-feed-500-events", func(b *testing.B) { run(b, "/v1/events?page_size=500") })
	b.Run("full-case-list-500", func(b *testing.B) { run(b, "/v1/cases?page_size=500") })
}

var seedOnce sync.Once

func countEvents(body []byte) int {
	n := 0
	for i := 0; i+len(`"cursor"`) <= len(body); i++ {
		if string(body[i:i+len(`"cursor"`)]) == `"cursor"` {
			n++
		}
	}
	return n
}

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "gateway-bench-") }

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// BenchmarkProjection is the price of the gap-free feed: the projector stores one event per round trip
// (MaxAckPending 1). It publishes a burst of events and reports how fast the feed catches up.
func BenchmarkProjection(b *testing.B) {
	h := sharedBench(b)
	// The gateway's feed collection, by name: the only way to see the projection without going through the API.
	feedColl := testinfra.ConnectMongo(&processTB{B: b}, h.mongoURI, h.db).Collection("feed")
	const burst = 300
	for b.Loop() {
		start := time.Now()
		var last string
		for i := range burst {
			last = h.publish(b, "projection", fmt.Sprintf("p-%d-%d", start.UnixNano(), i), events.TypeCreated, 1).GetId()
		}
		waitFor(b, func() bool {
			n, err := feedColl.CountDocuments(context.Background(), bson.D{{Key: "_id", Value: last}})
			return err == nil && n == 1
		})
		b.ReportMetric(burst/time.Since(start).Seconds(), "events/s")
	}
}
