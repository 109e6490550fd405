package casesvc_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/devinfra"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
	casesvc "github.com/casekeeper/core/services/case"
	"github.com/casekeeper/core/services/case/internal/projector"
)

// Demo clients of the casekeeper realm (deploy/keycloak/casekeeper-realm.json).
var (
	acmeProvider   = client{"acme-provider", "acmeProviderDevSecret"}
	globexProvider = client{"globex-provider", "globexProviderDevSecret"}
	acmeBackend    = client{"acme-backend", "acmeBackendDevSecret"}
)

type client struct{ id, secret string }

var (
	tokenMu    sync.Mutex
	tokenCache = map[string]string{}
)

// token gets a real access token from Keycloak by client credentials (cached for the test binary's run: tokens
// live five minutes, longer than these tests).
func token(t testing.TB, c client) string {
	t.Helper()
	tokenMu.Lock()
	defer tokenMu.Unlock()
	if tok, ok := tokenCache[c.id]; ok {
		return tok
	}
	tokenCache[c.id] = testinfra.ClientToken(t, c.id, c.secret)
	return tokenCache[c.id]
}

// stack is a running case service on embedded NATS and FerretDB.
type stack struct {
	svc      *casesvc.Service
	cfg      casesvc.Config
	nats     *devinfra.NATSServer
	natsDir  string
	natsPort int
	conn     *grpc.ClientConn
	api      pb.CaseServiceClient
	js       jetstream.JetStream
	logs     *syncBuffer
	stop     func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type stackOption func(*casesvc.Config)

func startStack(t testing.TB, opts ...stackOption) *stack {
	t.Helper()
	st := &stack{natsDir: t.TempDir(), natsPort: testinfra.FreePort(t), logs: &syncBuffer{}}
	st.startNATS(t)
	uri, db := testinfra.Mongo(t)
	cfg, err := config.Load[casesvc.Config](map[string]string{
		"CASE_GRPC_ADDR": "127.0.0.1:0", "CASE_HTTP_ADDR": "127.0.0.1:0",
		"NATS_URL": st.nats.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": db,
		"KEYCLOAK_URL": testinfra.KeycloakURL(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	// A dead projector hands over quickly in tests; the retries of a failed round come back soon.
	cfg.Projector = projector.Options{PinnedTTL: 2 * time.Second, RetryDelay: 200 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	st.cfg = cfg
	log := slog.New(slog.NewJSONHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := casesvc.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	st.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service stopped with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("service did not stop within 20s")
		}
	}
	t.Cleanup(st.stop)
	st.svc = svc
	st.conn, err = grpc.NewClient(svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.conn.Close() })
	st.api = pb.NewCaseServiceClient(st.conn)

	nc, err := nats.Connect(st.nats.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	st.js, _ = jetstream.New(nc)
	st.waitStream(t)
	return st
}

func (st *stack) startNATS(t testing.TB) {
	t.Helper()
	srv, err := devinfra.StartNATS(devinfra.NATSOptions{StoreDir: st.natsDir, ServerName: "test", Port: st.natsPort})
	if err != nil {
		t.Fatalf("start NATS: %v", err)
	}
	st.nats = srv
	t.Cleanup(srv.Shutdown)
}

func (st *stack) waitStream(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := st.js.Stream(context.Background(), events.Stream); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the CASES stream was not declared within 10s")
}

// as returns a context carrying the client's token.
func as(t testing.TB, c client) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token(t, c))
}

// caseEvents reads every event of one case on the stream, in stream order.
func (st *stack) caseEvents(t *testing.T, tenant, caseID string) []*pb.CaseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := st.js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subject(tenant, caseID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.Info(ctx, jetstream.WithSubjectFilter(events.Subject(tenant, caseID)))
	if err != nil {
		t.Fatal(err)
	}
	want := int(si.State.Subjects[events.Subject(tenant, caseID)])
	var out []*pb.CaseEvent
	for len(out) < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				break
			}
			t.Fatal(err)
		}
		ev, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// scrape reads the lines of the service's /metrics.
func (st *stack) scrape(t testing.TB) []string {
	t.Helper()
	resp, err := http.Get("http://" + st.svc.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(body), "\n")
}

// metric reads one unlabelled counter or gauge from the service's /metrics.
func (st *stack) metric(t testing.TB, name string) float64 {
	t.Helper()
	for _, line := range st.scrape(t) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}

// ready reports whether the service's /readyz answers 200 (MongoDB, NATS and the stream all reachable).
func (st *stack) ready(t testing.TB) bool {
	t.Helper()
	resp, err := http.Get("http://" + st.svc.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// histogram reads the cumulative buckets of one histogram from the service's /metrics: upper bound → count.
func (st *stack) histogram(t testing.TB, name string) map[float64]float64 {
	t.Helper()
	out := map[float64]float64{}
	for _, line := range st.scrape(t) {
		rest, ok := strings.CutPrefix(line, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(count, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("metric line %q", line)
		}
		out[bound] = n
	}
	if len(out) == 0 {
		t.Fatalf("histogram %s not exported", name)
	}
	return out
}
