package webhooksvc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/devinfra"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// fakeVerifier stands in for Keycloak in the tests of delivery behaviour; the auth path itself is tested against
// the real Keycloak in auth_test.go.
type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, raw string) (auth.Principal, error) {
	switch raw {
	case "acme-admin":
		return auth.Principal{Subject: "u1", Tenant: "acme", Roles: []string{auth.RoleWebhooksManage}}, nil
	case "globex-admin":
		return auth.Principal{Subject: "u2", Tenant: "globex", Roles: []string{auth.RoleWebhooksManage}}, nil
	case "acme-reader":
		return auth.Principal{Subject: "u3", Tenant: "acme", Roles: []string{auth.RoleCasesRead}}, nil
	case "":
		return auth.Principal{}, auth.ErrNoToken
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

type env struct {
	t        testing.TB
	natsDir  string
	natsAddr int
	nats     *devinfra.NATSServer
	natsURL  string
	mongoURI string
	db       string
	nc       *nats.Conn
	js       jetstream.JetStream

	svc    *webhooksvc.Service
	cancel context.CancelFunc
	done   chan error
	conn   *grpc.ClientConn
	client casekeeperv1.WebhookServiceClient
	cfg    webhooksvc.Config
}

// newEnv starts NATS on a fixed port with its own store (so that it can be restarted) and FerretDB.
func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, natsDir: t.TempDir(), natsAddr: testinfra.FreePort(t)}
	e.mongoURI, e.db = testinfra.Mongo(t)
	e.startNATS()
	nc, err := nats.Connect(e.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.nc = nc
	e.js, _ = jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.CreateOrUpdateStream(ctx, events.StreamConfig(time.Hour, 1)); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) startNATS() {
	srv, err := devinfra.StartNATS(devinfra.NATSOptions{StoreDir: e.natsDir, Port: e.natsAddr})
	if err != nil {
		e.t.Fatal(err)
	}
	e.nats = srv
	e.natsURL = srv.URL()
	e.t.Cleanup(srv.Shutdown)
}

func (e *env) restartNATS(down time.Duration) {
	e.nats.Shutdown()
	time.Sleep(down)
	e.startNATS()
}

// config is the service's configuration for tests: loopback allowed, short timeouts and retries.
func (e *env) config() webhooksvc.Config {
	return webhooksvc.Config{
		LogLevel:          "warn",
		GRPCAddr:          "127.0.0.1:0",
		HTTPAddr:          "127.0.0.1:0",
		AllowLoopbackHTTP: true,
		RequestTimeout:    2 * time.Second,
		RetrySchedule:     []time.Duration{0, time.Second, time.Second, time.Second, time.Second, time.Second},
		RetryJitter:       0,
		DisableAfter:      120 * time.Hour,
		GatewayPublicURL:  "https://api.example",
		SweepInterval:     3 * time.Second,
		SweepGrace:        5 * time.Second,
		EndpointRefresh:   time.Second,
		FanoutBatch:       256,
		SecretsKey:        testSecretsKey,
		Verifier:          fakeVerifier{},
	}
}

func (e *env) env() map[string]string {
	return map[string]string{"NATS_URL": e.natsURL, "MONGODB_URI": e.mongoURI, "MONGODB_DATABASE": e.db}
}

// start runs the service in-process.
func (e *env) start(mods ...func(*webhooksvc.Config)) {
	e.t.Helper()
	cfg := e.config()
	cfg.NATS.URL, cfg.NATS.StreamReplicas = e.natsURL, 1
	cfg.Mongo.URI, cfg.Mongo.Database = config.Secret(e.mongoURI), e.db
	for _, m := range mods {
		m(&cfg)
	}
	e.cfg = cfg
	log := slog.New(slog.NewTextHandler(&testLog{t: e.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := webhooksvc.New(ctx, cfg, log)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	e.svc, e.cancel, e.done = svc, cancel, make(chan error, 1)
	go func() { e.done <- svc.Run(ctx) }()
	conn, err := grpc.NewClient(svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.conn = conn
	e.client = casekeeperv1.NewWebhookServiceClient(conn)
	e.t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("service stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Error("service did not stop within 30s")
	}
	_ = e.conn.Close()
	e.cancel = nil
}

func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func (e *env) createEndpoint(url string, mod ...func(*casekeeperv1.Endpoint)) (*casekeeperv1.Endpoint, string) {
	e.t.Helper()
	ep := &casekeeperv1.Endpoint{Url: url, PayloadFormat: casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL}
	for _, m := range mod {
		m(ep)
	}
	resp, err := e.client.CreateEndpoint(as("acme-admin"), &casekeeperv1.CreateEndpointRequest{Endpoint: ep})
	if err != nil {
		e.t.Fatalf("CreateEndpoint: %v", err)
	}
	return resp.GetEndpoint(), resp.GetSecret()
}

// publish sends n case events of the tenant, the way the case service does, and returns their ids.
func (e *env) publish(tenant string, n int) []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids := make([]string, n)
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		ids[i] = fmt.Sprintf("evt_%s_%d_%d", tenant, time.Now().UnixNano(), i)
		ev := &casekeeperv1.CaseEvent{Id: ids[i], Type: events.TypeCreated, Tenant: tenant, CaseId: fmt.Sprintf("case_%d", i),
			CaseVersion: 1, OccurredAt: timestamppb.Now(),
			Data: &casekeeperv1.Case{Id: fmt.Sprintf("case_%d", i), Tenant: tenant, Version: 1, ExternalRef: "ref",
				Applicant: &casekeeperv1.Applicant{FullName: "Test Person"}}}
		m, err := events.Message(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		f, err := e.js.PublishMsgAsync(m)
		if err != nil {
			e.t.Fatal(err)
		}
		futures = append(futures, f)
		if len(futures) >= 1000 {
			waitAll(ctx, e.t, futures)
			futures = futures[:0]
		}
	}
	waitAll(ctx, e.t, futures)
	return ids
}

func waitAll(ctx context.Context, t testing.TB, fs []jetstream.PubAckFuture) {
	t.Helper()
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

// receiver is a local webhook endpoint that records what arrives and answers as told.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int, r *http.Request) int // status for the n-th request (1-based)
}

type received struct {
	Header http.Header
	Body   []byte
	At     time.Time
	Status int // what the receiver answered
}

func newReceiver(t testing.TB, respond func(n int, r *http.Request) int) *receiver {
	return newReceiverOn(t, nil, respond)
}

// newReceiverOn serves on lis (nil: a fresh loopback port).
func newReceiverOn(t testing.TB, lis net.Listener, respond func(n int, r *http.Request) int) *receiver {
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{Header: r.Header.Clone(), Body: body, At: time.Now()})
		n := len(rc.got)
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.respond != nil {
			code = rc.respond(n, r)
		}
		rc.mu.Lock()
		rc.got[n-1].Status = code
		rc.mu.Unlock()
		w.WriteHeader(code)
		_, _ = w.Write([]byte("ok"))
	}))
	if lis != nil {
		_ = rc.Listener.Close()
		rc.Listener = lis
	}
	rc.Start()
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// distinctIDs counts distinct webhook-ids that were answered with a success, and all arrivals.
func (rc *receiver) distinctIDs() (delivered, total int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen := map[string]bool{}
	for _, g := range rc.got {
		if g.Status >= 200 && g.Status < 300 {
			seen[g.Header.Get("webhook-id")] = true
		}
	}
	return len(seen), len(rc.got)
}

// eventually polls cond every 50ms until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type testLog struct {
	t  testing.TB
	mu sync.Mutex
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// dumpState logs delivery states and the work stream, to explain a failure.
func (e *env) dumpState(t testing.TB) {
	ctx := context.Background()
	db := testinfra.ConnectMongo(t, e.mongoURI, e.db)
	for st := 1; st <= 4; st++ {
		n, _ := db.Collection("webhook_deliveries").CountDocuments(ctx, bson.D{{Key: "status", Value: st}})
		t.Logf("deliveries with status %d: %d", st, n)
	}
	if s, err := e.js.Stream(ctx, "WEBHOOK_DELIVERIES"); err == nil {
		if info, err := s.Info(ctx, jetstream.WithSubjectFilter(">")); err == nil {
			t.Logf("WEBHOOK_DELIVERIES holds %d messages on %d subjects", info.State.Msgs, len(info.State.Subjects))
		}
		for name := range s.ConsumerNames(ctx).Name() {
			c, _ := s.Consumer(ctx, name)
			if c != nil {
				info, _ := c.Info(ctx)
				t.Logf("consumer %s: pending %d ack-pending %d redelivered %d", name, info.NumPending, info.NumAckPending, info.NumRedelivered)
			}
		}
	}
	if c, err := e.js.Consumer(ctx, events.Stream, "webhook-fanout"); err == nil {
		info, _ := c.Info(ctx)
		t.Logf("fan-out: pending %d ack-pending %d", info.NumPending, info.NumAckPending)
	}
}

func fieldMask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
