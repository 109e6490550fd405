package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	casesvc "github.com/casekeeper/core/services/case"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

const realm = "casekeeper"

// repoRoot is the monorepo's root: this module lives in <root>/tests.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// stack is the real case and webhook services in-process on embedded NATS and FerretDB, with the real Keycloak.
type stack struct {
	cases    casekeeperv1.CaseServiceClient
	webhooks casekeeperv1.WebhookServiceClient
	// provider writes cases as the acme KYC provider (cases:write); admin manages acme's webhooks.
	provider context.Context
	admin    context.Context
}

func startStack(t *testing.T) *stack {
	t.Helper()
	kc := testinfra.KeycloakURL(t)
	nats := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	log := slog.New(slog.NewTextHandler(&testLog{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	caseCfg, err := config.Load[casesvc.Config](map[string]string{
		"CASE_GRPC_ADDR": "127.0.0.1:0", "CASE_HTTP_ADDR": "127.0.0.1:0",
		"NATS_URL": nats.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": db, "KEYCLOAK_URL": kc,
	})
	if err != nil {
		t.Fatal(err)
	}
	whCfg, err := config.Load[webhooksvc.Config](map[string]string{
		"WEBHOOK_GRPC_ADDR": "127.0.0.1:0", "WEBHOOK_HTTP_ADDR": "127.0.0.1:0",
		"NATS_URL": nats.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": db + "_webhooks", "KEYCLOAK_URL": kc,
		"WEBHOOK_ALLOW_LOOPBACK_HTTP": "true", "WEBHOOK_REQUEST_TIMEOUT": "10s",
		"WEBHOOK_RETRY_SCHEDULE": "0s,1s,1s,2s", "GATEWAY_PUBLIC_URL": "https://api.casekeeper.example.com",
		"WEBHOOK_SWEEP_INTERVAL": "1s", "WEBHOOK_SWEEP_GRACE": "5s", "WEBHOOK_ENDPOINT_REFRESH": "1s",
		"WEBHOOK_SECRETS_KEY": "1tA/2S5CnLmUq2z4yQxT0bqSLy0Qv6h8dbsV6lY5H3Y=",
	})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	caseSvc, err := casesvc.New(ctx, caseCfg, log.With("service", "case"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	whSvc, err := webhooksvc.New(ctx, whCfg, log.With("service", "webhook"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{"case": caseSvc.Run, "webhook": whSvc.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				t.Errorf("%s service stopped with %v", name, err)
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the services did not stop within 30s")
		}
	})

	caseConn := dial(t, caseSvc.GRPCAddr())
	// The webhook API is called the way the gateway calls it: its own token (service:delegate) plus the identity
	// of an acme administrator in metadata (pkg/auth delegation).
	gateway := auth.NewClientCredentials(kc, realm, "casekeeper-gateway", "gatewayDevSecret")
	whConn := dial(t, whSvc.GRPCAddr(), grpc.WithUnaryInterceptor(auth.DelegatingInterceptor(gateway)))
	provider := auth.NewClientCredentials(kc, realm, "acme-provider", "acmeProviderDevSecret")
	tok, err := provider.Token(context.Background())
	if err != nil {
		t.Fatalf("token of acme-provider from %s: %v", kc, err)
	}
	return &stack{
		cases:    casekeeperv1.NewCaseServiceClient(caseConn),
		webhooks: casekeeperv1.NewWebhookServiceClient(whConn),
		provider: metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok),
		admin: auth.WithPrincipal(context.Background(), auth.Principal{Subject: "receivers-test", Tenant: "acme",
			Roles: []string{auth.RoleWebhooksManage}}),
	}
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// createEndpoint registers url for acme's events in the given format and returns the endpoint and its secret.
func (s *stack) createEndpoint(t *testing.T, url, description string, format casekeeperv1.PayloadFormat, jq string) (*casekeeperv1.Endpoint, string) {
	t.Helper()
	resp, err := s.webhooks.CreateEndpoint(s.admin, &casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{
		Url: url, Description: description, PayloadFormat: format, JqTransform: jq}})
	if err != nil {
		t.Fatalf("CreateEndpoint %s: %v", description, err)
	}
	return resp.GetEndpoint(), resp.GetSecret()
}

// deliveries lists every delivery of an endpoint.
func (s *stack) deliveries(t *testing.T, endpointID string) []*casekeeperv1.Delivery {
	t.Helper()
	var all []*casekeeperv1.Delivery
	token := ""
	for range 100 {
		resp, err := s.webhooks.ListDeliveries(s.admin, &casekeeperv1.ListDeliveriesRequest{EndpointId: endpointID, PageSize: 100, PageToken: token})
		if err != nil {
			t.Fatalf("ListDeliveries: %v", err)
		}
		all = append(all, resp.GetDeliveries()...)
		if token = resp.GetNextPageToken(); token == "" {
			return all
		}
	}
	t.Fatal("ListDeliveries did not end after 100 pages")
	return nil
}

// capture is an endpoint inside the test that keeps the raw requests, to check them against the schemas and
// the Go receiver package.
type capture struct {
	*httptest.Server
	mu  sync.Mutex
	got []captured
}

type captured struct {
	Header http.Header
	Body   []byte
}

func newCapture(t *testing.T) *capture {
	c := &capture{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.got = append(c.got, captured{Header: r.Header.Clone(), Body: body})
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *capture) received() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), c.got...)
}

// receiver is one example receiver running as a subprocess.
type receiver struct {
	name    string
	url     string
	port    int
	events  string // its JSON lines
	logs    *lockedBuffer
	cmd     *exec.Cmd
	exited  chan struct{}
	secret  string
	format  casekeeperv1.PayloadFormat
	endpnt  *casekeeperv1.Endpoint
	command []string
}

// recorded is one line a receiver writes per verified event.
type recorded struct {
	WebhookID   string `json:"webhook_id"`
	Type        string `json:"type"`
	CaseID      string `json:"case_id"`
	CaseVersion int64  `json:"case_version"`
	Applied     bool   `json:"applied"`
}

func (r *receiver) start(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(r.command[0], r.command[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(r.port), "WEBHOOK_SECRET="+r.secret,
		"PAYLOAD_FORMAT="+formatName(r.format), "EVENTS_FILE="+r.events)
	r.logs = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting receiver %s (%s): %v", r.name, strings.Join(r.command, " "), err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.exited
		if t.Failed() {
			t.Logf("receiver %s output:\n%s", r.name, r.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-r.exited:
			t.Fatalf("receiver %s exited at start:\n%s", r.name, r.logs.String())
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", r.port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver %s not answering /healthz after 30s:\n%s", r.name, r.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lines reads what the receiver recorded so far.
func (r *receiver) lines(t *testing.T) []recorded {
	t.Helper()
	f, err := os.Open(r.events)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []recorded
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l recorded
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			// A line being written right now: read again later.
			break
		}
		out = append(out, l)
	}
	return out
}

func formatName(f casekeeperv1.PayloadFormat) string {
	if f == casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_THIN {
		return "thin"
	}
	return "full"
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventually polls cond every 100ms until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type testLog struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() { _ = recover() }() // a line logged after the test ended
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
