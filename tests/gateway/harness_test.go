package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/grpcserver"
	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/logging"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	casesvc "github.com/casekeeper/core/services/case"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// harness runs the gateway against the real Keycloak, the real case service, embedded NATS and FerretDB, and a
// stand-in webhook service that records who called it.
type harness struct {
	t        testing.TB
	kc       string
	gw       *gatewaysvc.Service
	base     string // http://gateway
	caseAddr string
	cases    casekeeperv1.CaseServiceClient
	js       jetstream.JetStream
	webhooks *fakeWebhooks
	kcCalls  *atomic.Int64
	clock    *offsetClock

	svcs                  *testinfra.Services
	natsURL, mongoURI, db string
}

// startGateway starts a gateway instance on the harness's infrastructure. Several instances share the feed
// projection (one durable consumer) and the database, as in a multi-instance deployment.
func (h *harness) startGateway(mod func(*gatewaysvc.Config)) *gatewaysvc.Service {
	h.t.Helper()
	counting := &http.Client{Transport: countingTransport{next: http.DefaultTransport, n: h.kcCalls}}
	cfg := gatewaysvc.Config{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", CaseServiceAddr: h.caseAddr,
		WebhookServiceAddr: h.webhooks.addr, PublicURL: "http://127.0.0.1",
		RateLimit: 0, RateBurst: 1, FailedAuthLimit: 0, MaxBodyBytes: 64 << 10,
		RequestTimeout: 10 * time.Second, FeedConsumer: "gateway-feed", FeedRetention: time.Hour, DrainTimeout: 2 * time.Second,
		CaseProjection: "case-projection",
		NATS:           config.NATS{URL: h.natsURL, StreamReplicas: 1},
		Mongo:          config.Mongo{URI: config.Secret(h.mongoURI), Database: h.db},
		Keycloak:       config.Keycloak{URL: h.kc, Realm: testinfra.Realm, Audience: "casekeeper-api", ClientID: "casekeeper-gateway", ClientSecret: "gatewayDevSecret"},
	}
	if mod != nil {
		mod(&cfg)
	}
	gw, err := gatewaysvc.New(h.svcs.Context(), cfg, logging.Discard(), gatewaysvc.WithKeycloakHTTPClient(counting),
		gatewaysvc.WithClock(h.clock.now), gatewaysvc.WithRecheck(2*time.Second))
	if err != nil {
		h.t.Fatalf("gateway: %v", err)
	}
	h.svcs.Run("gateway", gw.Run)
	return gw
}

type harnessOptions struct {
	rateLimit float64
	rateBurst int
	// inMemoryCases replaces the case service by an in-memory one (same authentication), to measure the gateway
	// without the database work of the case service.
	inMemoryCases bool
	// realWebhooks runs the real webhook service behind the gateway instead of the stand-in.
	realWebhooks bool
}

func newHarness(t testing.TB, ho harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, kc: testinfra.KeycloakURL(t), kcCalls: &atomic.Int64{}, clock: &offsetClock{}}
	ns := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	h.natsURL, h.mongoURI, h.db = ns.URL(), uri, db
	h.svcs = testinfra.StartServices(t)

	if ho.inMemoryCases {
		h.caseAddr = serveAuthenticated(t, h, casekeeperv1.CaseService_ServiceDesc, auth.RoleCasesRead, memCases{})
	} else {
		// Configured through its environment, as deployed: the case service's Config is its own business.
		caseCfg, err := config.Load[casesvc.Config](map[string]string{
			"CASE_GRPC_ADDR": "127.0.0.1:0", "CASE_HTTP_ADDR": "127.0.0.1:0",
			"SHUTDOWN_DRAIN_TIMEOUT": "2s", "EVENTS_STREAM_MAX_AGE": "1h",
			"NATS_URL": ns.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": db + "_case", "KEYCLOAK_URL": h.kc,
			"KEYCLOAK_CLIENT_ID": "casekeeper-case", "KEYCLOAK_CLIENT_SECRET": "caseDevSecret",
		})
		if err != nil {
			t.Fatalf("case service configuration: %v", err)
		}
		cs, err := casesvc.New(h.svcs.Context(), caseCfg, logging.Discard())
		if err != nil {
			t.Fatalf("case service: %v", err)
		}
		h.caseAddr = cs.GRPCAddr()
		h.svcs.Run("case service", cs.Run)
	}
	h.cases = casekeeperv1.NewCaseServiceClient(testinfra.Dial(t, h.caseAddr))

	h.js = testinfra.JetStream(t, ns.URL())
	if _, err := natsbus.EnsureStream(h.svcs.Context(), h.js, events.StreamConfig(time.Hour, 1)); err != nil {
		t.Fatal(err)
	}

	h.webhooks = &fakeWebhooks{}
	if ho.realWebhooks {
		// As deployed: production URL rules (no loopback), configured through its environment.
		whCfg, err := config.Load[webhooksvc.Config](map[string]string{
			"WEBHOOK_GRPC_ADDR": "127.0.0.1:0", "WEBHOOK_HTTP_ADDR": "127.0.0.1:0",
			"NATS_URL": ns.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": db + "_webhooks", "KEYCLOAK_URL": h.kc,
			"WEBHOOK_SECRETS_KEY": "1tA/2S5CnLmUq2z4yQxT0bqSLy0Qv6h8dbsV6lY5H3Y=",
		})
		if err != nil {
			t.Fatalf("webhook service configuration: %v", err)
		}
		ws, err := webhooksvc.New(h.svcs.Context(), whCfg, logging.Discard())
		if err != nil {
			t.Fatalf("webhook service: %v", err)
		}
		h.svcs.Run("webhook service", ws.Run)
		h.webhooks.addr = ws.GRPCAddr()
	} else {
		h.webhooks.addr = serveAuthenticated(t, h, casekeeperv1.WebhookService_ServiceDesc, auth.RoleWebhooksManage, h.webhooks)
	}

	h.gw = h.startGateway(func(c *gatewaysvc.Config) { c.RateLimit, c.RateBurst = ho.rateLimit, max(1, ho.rateBurst) })
	h.base = "http://" + h.gw.HTTPAddr()
	return h
}

// serveAuthenticated serves impl, an implementation of the gRPC service desc, on a loopback port the way the real
// services do (realm tokens only, every method requiring role), and returns its address.
func serveAuthenticated(t testing.TB, h *harness, desc grpc.ServiceDesc, role string, impl any) string {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{KeycloakURL: h.kc, Realm: testinfra.Realm, Audience: "casekeeper-api"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, m := range desc.Methods {
		roles["/"+desc.ServiceName+"/"+m.MethodName] = role
	}
	srv := grpcserver.New(grpcserver.Options{Log: logging.Discard(), Verifier: v, Policy: auth.Policy{Roles: roles}})
	srv.RegisterService(&desc, impl)
	lis, err := lifecycle.Listen("test", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.svcs.Run("stand-in "+desc.ServiceName, lifecycle.GRPCServer(desc.ServiceName, srv.Server, lis, time.Second).Run)
	return lis.Addr().String()
}

// offsetClock lets a test move the gateway's clock forward (token expiry) without waiting.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func (h *harness) clientToken(id, secret string) string {
	return testinfra.ClientToken(h.t, id, secret)
}

// Clients of the realm file (secrets from the contract). Each call gets a new token: the key rotation test needs
// one signed after the rotation.
func (h *harness) acme() string   { return h.clientToken("acme-backend", "acmeBackendDevSecret") }
func (h *harness) globex() string { return h.clientToken("globex-backend", "globexBackendDevSecret") }
func (h *harness) acmeProvider() string {
	return h.clientToken("acme-provider", "acmeProviderDevSecret")
}
func (h *harness) globexProvider() string {
	return h.clientToken("globex-provider", "globexProviderDevSecret")
}

// user logs a realm user in through the test client (password grant), returning access and ID tokens.
func (h *harness) user(t testing.TB, username, password string) testinfra.Tokens {
	ensureTestClients(t, h.kc)
	return testinfra.PasswordLogin(t, testinfra.Realm, testUserClient, testUserSecret, username, password, "openid")
}

// createCase writes a case through the real case service with a provider's token.
func (h *harness) createCase(t testing.TB, token, ref string) *casekeeperv1.Case {
	t.Helper()
	resp, err := h.cases.CreateCase(testinfra.Bearer(context.Background(), token), &casekeeperv1.CreateCaseRequest{
		RequestId: ref, ExternalRef: ref, Level: casekeeperv1.VerificationLevel_VERIFICATION_LEVEL_BASIC,
		Applicant: &casekeeperv1.Applicant{FullName: "Test Person " + ref, Email: ref + "@example.test"},
	})
	if err != nil {
		t.Fatalf("create case: %v", err)
	}
	return resp.GetCase()
}

// publish puts a synthetic event straight on the CASES stream, as the case service would.
func (h *harness) publish(t testing.TB, tenant, caseID, typ string, version int64) *casekeeperv1.CaseEvent {
	t.Helper()
	ev := &casekeeperv1.CaseEvent{
		Id: fmt.Sprintf("%s-%s-%d", tenant, caseID, version), Type: typ, Tenant: tenant, CaseId: caseID,
		CaseVersion: version, OccurredAt: timestamppb.Now(),
		Data: &casekeeperv1.Case{Id: caseID, Tenant: tenant, Version: version},
	}
	msg, err := events.Message(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	return ev
}

// grpcConn dials the gateway's gRPC port.
func (h *harness) grpcConn(t testing.TB) *grpc.ClientConn { return testinfra.Dial(t, h.gw.GRPCAddr()) }

// get performs an HTTP GET with a token and extra headers ("Name: value"); path is on the first gateway instance
// unless it is a whole URL.
func (h *harness) get(t testing.TB, path, token string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	if !strings.HasPrefix(path, "http://") {
		path = h.base + path
	}
	req, _ := http.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, hd := range headers {
		k, v, _ := strings.Cut(hd, ": ")
		req.Header.Add(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// fakeWebhooks stands in for the webhook service: it authenticates like the real one (realm tokens only,
// webhooks:manage) and records the principal it saw and the raw metadata.
type fakeWebhooks struct {
	casekeeperv1.UnimplementedWebhookServiceServer
	addr string
	mu   sync.Mutex
	last auth.Principal
	md   metadata.MD
}

func (f *fakeWebhooks) ListEndpoints(ctx context.Context, _ *casekeeperv1.ListEndpointsRequest) (*casekeeperv1.ListEndpointsResponse, error) {
	p, _ := auth.FromContext(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.last, f.md = p, md
	f.mu.Unlock()
	return &casekeeperv1.ListEndpointsResponse{Endpoints: []*casekeeperv1.Endpoint{{Id: "ep-" + p.Tenant, Url: "https://hooks.example.test"}}}, nil
}

func (f *fakeWebhooks) seen() (auth.Principal, metadata.MD) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, f.md
}

// memCases is an in-memory CaseService that authenticates like the real one: GetCase returns a fixed case of the
// caller's tenant.
type memCases struct {
	casekeeperv1.UnimplementedCaseServiceServer
}

func (memCases) GetCase(ctx context.Context, r *casekeeperv1.GetCaseRequest) (*casekeeperv1.GetCaseResponse, error) {
	p, _ := auth.FromContext(ctx)
	return &casekeeperv1.GetCaseResponse{Case: &casekeeperv1.Case{Id: r.GetId(), Tenant: p.Tenant, Version: 3,
		Status: casekeeperv1.CaseStatus_CASE_STATUS_IN_REVIEW, ExternalRef: "ref-1",
		Applicant: &casekeeperv1.Applicant{FullName: "Test Person", Email: "person@example.test", Nationality: "DE"}}}, nil
}
