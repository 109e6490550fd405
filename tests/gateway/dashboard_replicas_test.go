package gateway_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
)

// The claim that any gateway replica can serve any step of a dashboard session is proven with separate OS
// processes of the real binary behind a load balancer, sharing one NATS, one database and the real Keycloak, as two
// pods behind the ingress would: the sign-in starts on one and its callback lands on the other, pages then load
// alternately through both, and a restarted gateway still knows the session.

// gatewayProcess is one gateway process; a restart keeps its ports.
type gatewayProcess struct {
	bin, http, grpc string
	env             []string
	p               *testinfra.Process
}

func startGatewayProcess(t *testing.T, bin string, env []string) *gatewayProcess {
	t.Helper()
	g := &gatewayProcess{bin: bin, http: testinfra.FreeAddr(t), grpc: testinfra.FreeAddr(t), env: env}
	g.start(t)
	return g
}

func (g *gatewayProcess) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(g.bin)
	cmd.Env = append(append(os.Environ(), g.env...), "GATEWAY_HTTP_ADDR="+g.http, "GATEWAY_GRPC_ADDR="+g.grpc)
	g.p = testinfra.StartProcess(t, cmd)
	g.p.WaitReady(t, "http://"+g.http+"/readyz", 60*time.Second)
}

// stop sends SIGTERM and waits for the process to drain and exit.
func (g *gatewayProcess) stop(t *testing.T) {
	t.Helper()
	g.p.Stop(t)
	if strings.Contains(g.p.Output.String(), "panic:") {
		t.Errorf("gateway process panicked:\n%s", g.p.Output.String())
	}
}

// balancer stands in for the ingress: it forwards every request to the replica the test chose, adding
// X-Forwarded-For as ingress-nginx does.
type balancer struct {
	srv      *httptest.Server
	target   atomic.Int32
	replicas []*gatewayProcess
	served   []atomic.Int64
}

func newBalancer(t *testing.T) *balancer {
	b := &balancer{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(b.target.Load())
		b.served[i].Add(1)
		u, _ := url.Parse("http://" + b.replicas[i].http)
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *balancer) via(i int) *balancer { b.target.Store(int32(i)); return b }

// browser is a cookie jar that follows no redirect by itself, so the test decides where each hop goes.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

var loginFormAction = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

func TestDashboardSignInAcrossGatewayProcesses(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	bin := testinfra.Build(t, "github.com/casekeeper/core/services/gateway/cmd/gateway")
	lb := newBalancer(t)
	env := []string{
		"LOG_LEVEL=warn", "NATS_URL=" + h.natsURL, "MONGODB_URI=" + h.mongoURI, "MONGODB_DATABASE=" + h.db,
		"KEYCLOAK_URL=" + h.kc, "KEYCLOAK_CLIENT_ID=casekeeper-gateway", "KEYCLOAK_CLIENT_SECRET=gatewayDevSecret",
		"CASE_SERVICE_ADDR=" + h.caseAddr, "WEBHOOK_SERVICE_ADDR=" + h.webhooks.addr, "GATEWAY_PUBLIC_URL=" + lb.srv.URL,
		"DASHBOARD_CLIENT_SECRET=dashboardDevSecret", "DASHBOARD_COOKIE_SECURE=false",
		"GATEWAY_SESSION_KEY=cmVwbGljYXMgc2hhcmUgdGhpcyBzZXNzaW9uIGtleSE=", "GATEWAY_TRUSTED_PROXIES=127.0.0.1/32",
		"GATEWAY_RATE_LIMIT=0", "SHUTDOWN_DRAIN_TIMEOUT=2s",
	}
	lb.replicas = []*gatewayProcess{startGatewayProcess(t, bin, env), startGatewayProcess(t, bin, env)}
	lb.served = make([]atomic.Int64, len(lb.replicas))
	br := newBrowser(t)

	// 1. The sign-in starts on gateway 0: the login cookie (state, nonce, PKCE verifier) and the redirect to Keycloak.
	resp, _ := br.get(lb.via(0).srv.URL + "/dashboard/login?next=/dashboard/webhooks")
	authURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(authURL, h.kc+"/realms/"+testinfra.Realm+"/protocol/openid-connect/auth") {
		t.Fatalf("login on gateway 0: %d to %q", resp.StatusCode, authURL)
	}
	// 2. Keycloak's real login page, and the form posted as a browser would.
	resp, page := br.get(authURL)
	m := loginFormAction.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("Keycloak login page: %d\n%s", resp.StatusCode, page)
	}
	req, _ := http.NewRequest(http.MethodPost, html.UnescapeString(m[1]),
		strings.NewReader(url.Values{"username": {"admin@acme.test"}, "password": {"admin"}, "credentialId": {""}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, page = br.do(req)
	callback := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(callback, lb.srv.URL+"/dashboard/callback?") {
		t.Fatalf("Keycloak after the password: %d to %q\n%s", resp.StatusCode, callback, page)
	}
	// 3. The callback lands on gateway 1, which never saw the login.
	resp, page = br.get(lb.via(1).srv.URL + strings.TrimPrefix(callback, lb.srv.URL))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/webhooks" {
		t.Fatalf("callback on gateway 1: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	if lb.served[0].Load() != 1 || lb.served[1].Load() != 1 {
		t.Fatalf("the sign-in went %d / %d requests to the gateways, want 1 / 1", lb.served[0].Load(), lb.served[1].Load())
	}

	// 4. Pages alternately through both.
	signedIn := func(i int, path string) {
		t.Helper()
		resp, page := br.get(lb.via(i).srv.URL + path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "admin@acme.test") {
			t.Fatalf("%s via gateway %d: %d to %q\n%s", path, i, resp.StatusCode, resp.Header.Get("Location"), page)
		}
	}
	for i := range 6 {
		signedIn(i%2, []string{"/dashboard/webhooks", "/dashboard/cases"}[i/2%2])
	}

	// 5. Gateway 0 restarts (SIGTERM, then a new process on the same ports): the session is still there, on both.
	lb.replicas[0].stop(t)
	lb.replicas[0].start(t)
	for i := range 4 {
		signedIn(i%2, "/dashboard/webhooks")
	}
	// 6. A form of a page from gateway 1, posted to gateway 0 (the CSRF token is the session's, wherever it is
	// checked): signing out there ends the session on both.
	_, page = br.get(lb.via(1).srv.URL + "/dashboard/webhooks")
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	req, _ = http.NewRequest(http.MethodPost, lb.via(0).srv.URL+"/dashboard/logout", strings.NewReader(url.Values{"csrf_token": {csrf[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", lb.srv.URL)
	if resp, page := br.do(req); resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/protocol/openid-connect/logout") {
		t.Fatalf("logout on gateway 0: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	for i := range 2 {
		if resp, _ := br.get(lb.via(i).srv.URL + "/dashboard/webhooks"); resp.StatusCode != http.StatusSeeOther ||
			!strings.HasPrefix(resp.Header.Get("Location"), "/dashboard/login") {
			t.Fatalf("after the logout, gateway %d: %d to %q", i, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for i, g := range lb.replicas {
		if out := g.p.Output.String(); strings.Contains(out, `"level":"ERROR"`) {
			t.Errorf("gateway %d logged errors:\n%s", i, out)
		}
	}
	t.Logf("requests served: gateway 0 %d, gateway 1 %d", lb.served[0].Load(), lb.served[1].Load())
}
