package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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
)

const realm = "casekeeper"

// harness runs the gateway against the real Keycloak, the real case service, embedded NATS and FerretDB, and a
// stand-in webhook service that records who called it.
type harness struct {
	t        testing.TB
	kc       string
	gw       *gatewaysvc.Service
	base     string // http://gateway
	caseAddr string
	js       jetstream.JetStream
	webhooks *fakeWebhooks
	kcCalls  *atomic.Int64
	clock    *offsetClock
	tokens   tokenSource

	ctx                   context.Context
	run                   func(string, func(context.Context) error)
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
		NATS:     config.NATS{URL: h.natsURL, StreamReplicas: 1},
		Mongo:    config.Mongo{URI: config.Secret(h.mongoURI), Database: h.db},
		Keycloak: config.Keycloak{URL: h.kc, Realm: realm, Audience: "casekeeper-api", ClientID: "casekeeper-gateway", ClientSecret: "gatewayDevSecret"},
	}
	if mod != nil {
		mod(&cfg)
	}
	gw, err := gatewaysvc.New(h.ctx, cfg, logging.Discard(), gatewaysvc.WithKeycloakHTTPClient(counting),
		gatewaysvc.WithClock(h.clock.now), gatewaysvc.WithRecheck(2*time.Second))
	if err != nil {
		h.t.Fatalf("gateway: %v", err)
	}
	h.run("gateway", gw.Run)
	return gw
}

type harnessOptions struct {
	rateLimit float64
	rateBurst int
	// inMemoryCases replaces the case service by an in-memory one (same authentication), to measure the gateway
	// without the database work of the case service.
	inMemoryCases bool
}

func newHarness(t testing.TB, ho harnessOptions) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, kc: testinfra.KeycloakURL(t), kcCalls: &atomic.Int64{}, clock: &offsetClock{}}
	h.tokens = tokenSource{kc: h.kc}
	ns := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	log := logging.Discard()
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}

	if ho.inMemoryCases {
		h.caseAddr = startMemCases(t, h.kc, run)
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
		cs, err := casesvc.New(ctx, caseCfg, log)
		if err != nil {
			t.Fatalf("case service: %v", err)
		}
		h.caseAddr = cs.GRPCAddr()
		run("case service", cs.Run)
	}

	_, js, err := natsbus.Connect(ns.URL(), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	h.js = js
	if _, err := natsbus.EnsureStream(ctx, js, events.StreamConfig(time.Hour, 1)); err != nil {
		t.Fatal(err)
	}

	h.webhooks = startFakeWebhooks(t, ctx, h.kc, run)

	h.natsURL, h.mongoURI, h.db = ns.URL(), uri, db
	h.ctx, h.run = ctx, run
	h.gw = h.startGateway(func(c *gatewaysvc.Config) { c.RateLimit, c.RateBurst = ho.rateLimit, max(1, ho.rateBurst) })
	h.base = "http://" + h.gw.HTTPAddr()
	return h
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

// tokenSource fetches real tokens from Keycloak.
type tokenSource struct{ kc string }

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

func (ts tokenSource) request(t testing.TB, realmName string, form url.Values) tokenResponse {
	t.Helper()
	resp, err := http.PostForm(ts.kc+"/realms/"+realmName+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token for %v: %v %s", form.Get("client_id"), err, tr.Error)
	}
	return tr
}

// client returns a service-account access token.
func (ts tokenSource) client(t testing.TB, id, secret string) string {
	return ts.request(t, realm, url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}).AccessToken
}

// Clients of the realm file (secrets from the contract).
func (h *harness) acme() string { return h.tokens.client(h.t, "acme-backend", "acmeBackendDevSecret") }
func (h *harness) globex() string {
	return h.tokens.client(h.t, "globex-backend", "globexBackendDevSecret")
}
func (h *harness) acmeProvider() string {
	return h.tokens.client(h.t, "acme-provider", "acmeProviderDevSecret")
}
func (h *harness) globexProvider() string {
	return h.tokens.client(h.t, "globex-provider", "globexProviderDevSecret")
}

// user logs a realm user in through the test client (password grant), returning access and ID tokens.
func (h *harness) user(t testing.TB, username, password string) tokenResponse {
	ensureTestClients(t, h.kc)
	return h.tokens.request(t, realm, url.Values{"grant_type": {"password"}, "client_id": {testUserClient},
		"client_secret": {testUserSecret}, "username": {username}, "password": {password}, "scope": {"openid"}})
}

// createCase writes a case through the real case service with a provider's token.
func (h *harness) createCase(t testing.TB, token, ref string) *casekeeperv1.Case {
	t.Helper()
	conn, err := grpc.NewClient(h.caseAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	resp, err := casekeeperv1.NewCaseServiceClient(conn).CreateCase(ctx, &casekeeperv1.CreateCaseRequest{
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
func (h *harness) grpcConn(t testing.TB) *grpc.ClientConn {
	conn, err := grpc.NewClient(h.gw.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func bearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// get performs an HTTP GET with a token and extra headers ("Name: value").
func (h *harness) get(t testing.TB, path, token string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.base+path, nil)
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

func startFakeWebhooks(t testing.TB, ctx context.Context, kc string, run func(string, func(context.Context) error)) *fakeWebhooks {
	v, err := auth.NewVerifier(auth.VerifierConfig{KeycloakURL: kc, Realm: realm, Audience: "casekeeper-api"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, m := range casekeeperv1.WebhookService_ServiceDesc.Methods {
		roles["/casekeeper.v1.WebhookService/"+m.MethodName] = auth.RoleWebhooksManage
	}
	srv := grpcserver.New(grpcserver.Options{Log: logging.Discard(), Verifier: v, Policy: auth.Policy{Roles: roles}})
	f := &fakeWebhooks{}
	casekeeperv1.RegisterWebhookServiceServer(srv, f)
	lis, err := lifecycle.Listen("test", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	run("fake webhook service", lifecycle.GRPCServer("webhooks", srv.Server, lis, time.Second).Run)
	return f
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

func startMemCases(t testing.TB, kc string, run func(string, func(context.Context) error)) string {
	v, err := auth.NewVerifier(auth.VerifierConfig{KeycloakURL: kc, Realm: realm, Audience: "casekeeper-api"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, m := range casekeeperv1.CaseService_ServiceDesc.Methods {
		roles["/casekeeper.v1.CaseService/"+m.MethodName] = auth.RoleCasesRead
	}
	srv := grpcserver.New(grpcserver.Options{Log: logging.Discard(), Verifier: v, Policy: auth.Policy{Roles: roles}})
	casekeeperv1.RegisterCaseServiceServer(srv, memCases{})
	lis, err := lifecycle.Listen("test", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	run("in-memory case service", lifecycle.GRPCServer("cases", srv.Server, lis, time.Second).Run)
	return lis.Addr().String()
}

func (memCases) GetCase(ctx context.Context, r *casekeeperv1.GetCaseRequest) (*casekeeperv1.GetCaseResponse, error) {
	p, _ := auth.FromContext(ctx)
	return &casekeeperv1.GetCaseResponse{Case: &casekeeperv1.Case{Id: r.GetId(), Tenant: p.Tenant, Version: 3,
		Status: casekeeperv1.CaseStatus_CASE_STATUS_IN_REVIEW, ExternalRef: "ref-1",
		Applicant: &casekeeperv1.Applicant{FullName: "Test Person", Email: "person@example.test", Nationality: "DE"}}}, nil
}
