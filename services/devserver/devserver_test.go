package devserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/devserver"
)

// startStack runs the dev stack on data in dataDir, on random ports, with the test's Keycloak; stop ends it.
func startStack(t *testing.T, dataDir string) (stack *devserver.Stack, stop func()) {
	t.Helper()
	env := map[string]string{
		"CASE_GRPC_ADDR": "127.0.0.1:0", "CASE_HTTP_ADDR": "127.0.0.1:0",
		"WEBHOOK_GRPC_ADDR": "127.0.0.1:0", "WEBHOOK_HTTP_ADDR": "127.0.0.1:0",
		"GATEWAY_GRPC_ADDR": "127.0.0.1:0", "GATEWAY_HTTP_ADDR": "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(context.Background())
	stack, err := devserver.Start(ctx, devserver.Config{
		DataDir: dataDir, KeycloakURL: testinfra.KeycloakURL(t), NATSPort: -1, MongoAddr: "127.0.0.1:0",
	}, env, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- stack.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stack stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("the stack did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return stack, stop
}

// TestSecondStartReusesTheData is a second `make run`: cases, their events and webhook endpoints written before a
// stop are there after a start on the same DATA_DIR.
func TestSecondStartReusesTheData(t *testing.T) {
	dataDir := t.TempDir()
	stack, stop := startStack(t, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	provider := bearer(ctx, testinfra.ClientToken(t, "acme-provider", "acmeProviderDevSecret"))
	created, err := pb.NewCaseServiceClient(dial(t, stack.Case.GRPCAddr())).CreateCase(provider,
		&pb.CreateCaseRequest{RequestId: "persist-1", Applicant: &pb.Applicant{FullName: "Jane Roe"}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetCase().GetId()
	nc, err := nats.Connect(stack.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	testinfra.Eventually(t, 10*time.Second, "the event on the stream", func() bool {
		s, err := js.Stream(ctx, events.Stream)
		if err != nil {
			return false
		}
		_, err = s.GetLastMsgForSubject(ctx, events.Subject("acme", id))
		return err == nil
	})
	nc.Close()
	sessionKey, err := os.ReadFile(filepath.Join(dataDir, "gateway-session.key"))
	if err != nil {
		t.Fatalf("the gateway's session key was not generated into DATA_DIR: %v", err)
	}
	stop()
	keyFile := filepath.Join(dataDir, "webhook-secrets.key")
	key, err := os.ReadFile(keyFile)
	if fi, _ := os.Stat(keyFile); err != nil || len(key) < 44 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the webhook secrets key in DATA_DIR: %q %v", key, err)
	}

	// The streams are encrypted at rest with a key kept in DATA_DIR: the applicant's name is nowhere on the disk
	// in clear (the gateway's and the case projection's copies are in FerretDB, not under nats/).
	if _, err := os.Stat(filepath.Join(dataDir, "nats-store.key")); err != nil {
		t.Fatalf("the NATS store key in DATA_DIR: %v", err)
	}
	_ = filepath.WalkDir(filepath.Join(dataDir, "nats"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("Jane Roe")) {
				t.Errorf("%s holds the applicant in clear", path)
			}
		}
		return nil
	})

	stack, _ = startStack(t, dataDir)
	// The same session key after a restart: the dashboard's sessions (in NATS, under DATA_DIR too) still open.
	if again, err := os.ReadFile(filepath.Join(dataDir, "gateway-session.key")); err != nil || string(again) != string(sessionKey) {
		t.Fatalf("the session key changed across a restart: %v", err)
	}
	if again, _ := os.ReadFile(keyFile); string(again) != string(key) {
		t.Fatal("the second start made a new webhook secrets key: endpoints stored by the first would not open")
	}
	got, err := pb.NewCaseServiceClient(dial(t, stack.Case.GRPCAddr())).GetCase(provider, &pb.GetCaseRequest{Id: id})
	if err != nil || got.GetCase().GetApplicant().GetFullName() != "Jane Roe" {
		t.Fatalf("the case after a restart: %v %v", got, err)
	}
	nc, err = nats.Connect(stack.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = jetstream.New(nc)
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLastMsgForSubject(ctx, events.Subject("acme", id)); err != nil {
		t.Fatalf("the event after a restart: %v", err)
	}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func bearer(ctx context.Context, token string, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, append([]string{"authorization", "Bearer " + token}, kv...)...)
}

// TestCaseTravelsFromWriteToWebhookAndGateway is the whole path through the dev stack: a case created through the
// case service's gRPC API becomes an event on the JetStream stream, the webhook service POSTs it to a local
// receiver, and the gateway serves the case over gRPC and HTTP to a Keycloak token of the right tenant only.
func TestCaseTravelsFromWriteToWebhookAndGateway(t *testing.T) {
	stack, _ := startStack(t, t.TempDir())
	ctx := context.Background()

	// A local receiver that records every webhook.
	var (
		mu       sync.Mutex
		received []map[string]any
		headers  []http.Header
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var payload map[string]any
		if err := json.Unmarshal(body, &payload); err == nil {
			mu.Lock()
			received = append(received, payload)
			headers = append(headers, r.Header.Clone())
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	// The tenant's administrator registers the receiver (as the dashboard does, through the gateway's identity).
	callCtx, callCancel := context.WithTimeout(ctx, 60*time.Second)
	defer callCancel()
	gatewayToken := testinfra.ClientToken(t, "casekeeper-gateway", "gatewayDevSecret")
	admin := bearer(callCtx, gatewayToken, "x-casekeeper-subject", "admin-acme", "x-casekeeper-client", "casekeeper-dashboard",
		"x-casekeeper-tenant", "acme", "x-casekeeper-roles", "webhooks:manage")
	hooks := pb.NewWebhookServiceClient(dial(t, stack.Webhook.GRPCAddr()))
	if _, err := hooks.CreateEndpoint(admin, &pb.CreateEndpointRequest{Endpoint: &pb.Endpoint{
		Url: receiver.URL + "/hooks", PayloadFormat: pb.PayloadFormat_PAYLOAD_FORMAT_FULL,
	}}); err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}

	// Watch the stream like any consumer would.
	nc, err := nats.Connect(stack.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	// The KYC provider writes a case.
	cases := pb.NewCaseServiceClient(dial(t, stack.Case.GRPCAddr()))
	created, err := cases.CreateCase(bearer(callCtx, testinfra.ClientToken(t, "acme-provider", "acmeProviderDevSecret")),
		&pb.CreateCaseRequest{RequestId: "e2e-1", ExternalRef: "cust-e2e", Applicant: &pb.Applicant{FullName: "Jane Roe"}})
	if err != nil {
		t.Fatalf("CreateCase: %v", err)
	}
	id := created.GetCase().GetId()

	// 1. The event is on the stream.
	testinfra.Eventually(t, 15*time.Second, "the case.created event on the CASES stream", func() bool {
		s, err := js.Stream(callCtx, events.Stream)
		if err != nil {
			return false
		}
		m, err := s.GetLastMsgForSubject(callCtx, events.Subject("acme", id))
		if err != nil {
			return false
		}
		ev, err := events.Decode(m.Data)
		return err == nil && ev.GetType() == events.TypeCreated && ev.GetData().GetId() == id
	})

	// 2. The webhook arrives, signed, with the case.
	testinfra.Eventually(t, 30*time.Second, "the webhook at the local receiver", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i, p := range received {
			data, _ := p["data"].(map[string]any)
			if p["type"] == events.TypeCreated && strings.Contains(mustJSON(data), id) {
				h := headers[i]
				return h.Get("webhook-id") != "" && h.Get("webhook-timestamp") != "" && strings.HasPrefix(h.Get("webhook-signature"), "v1,")
			}
		}
		return false
	})

	// 3. The gateway serves the case to acme over gRPC and HTTP, and to globex not at all.
	acme := testinfra.ClientToken(t, "acme-backend", "acmeBackendDevSecret")
	globex := testinfra.ClientToken(t, "globex-backend", "globexBackendDevSecret")
	query := pb.NewCaseQueryServiceClient(dial(t, stack.Gateway.GRPCAddr()))
	got, err := query.GetCase(bearer(callCtx, acme), &pb.GetCaseRequest{Id: id})
	if err != nil || got.GetCase().GetId() != id || got.GetCase().GetApplicant().GetFullName() != "Jane Roe" {
		t.Fatalf("gateway gRPC GetCase: %v %v", got, err)
	}
	if _, err := query.GetCase(bearer(callCtx, globex), &pb.GetCaseRequest{Id: id}); status.Code(err) != codes.NotFound {
		t.Fatalf("globex through the gateway: %v, want NotFound", err)
	}
	base := "http://" + stack.Gateway.HTTPAddr()

	// 4. The dashboard is mounted and sends a browser to the Keycloak login.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(base + "/dashboard/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.Contains(loc, "/dashboard/") && !strings.Contains(loc, "/protocol/openid-connect/auth") {
		t.Fatalf("dashboard without a session: %d to %q, want a redirect towards the login", resp.StatusCode, loc)
	}

	for _, tc := range []struct {
		token string
		want  int
	}{{acme, http.StatusOK}, {globex, http.StatusNotFound}, {"", http.StatusUnauthorized}} {
		req, _ := http.NewRequestWithContext(callCtx, http.MethodGet, base+"/v1/cases/"+id, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("HTTP GET /v1/cases/{id}: %d %s, want %d", resp.StatusCode, body, tc.want)
		}
		if tc.want == http.StatusOK && !strings.Contains(string(body), id) {
			t.Fatalf("HTTP body does not hold the case: %s", body)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
