package gateway_test

import (
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
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

func TestDashboardSignInAcrossGatewayProcesses(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	bin := testinfra.Build(t, "github.com/casekeeper/core/services/gateway/cmd/gateway")
	lb := testinfra.NewBalancer(t)
	env := []string{
		"LOG_LEVEL=warn", "NATS_URL=" + h.natsURL, "MONGODB_URI=" + h.mongoURI, "MONGODB_DATABASE=" + h.db,
		"KEYCLOAK_URL=" + h.kc, "KEYCLOAK_CLIENT_ID=casekeeper-gateway", "KEYCLOAK_CLIENT_SECRET=gatewayDevSecret",
		"CASE_SERVICE_ADDR=" + h.caseAddr, "WEBHOOK_SERVICE_ADDR=" + h.webhooks.addr, "GATEWAY_PUBLIC_URL=" + lb.URL,
		"DASHBOARD_CLIENT_SECRET=dashboardDevSecret", "DASHBOARD_COOKIE_SECURE=false",
		"GATEWAY_SESSION_KEY=cmVwbGljYXMgc2hhcmUgdGhpcyBzZXNzaW9uIGtleSE=", "GATEWAY_TRUSTED_PROXIES=127.0.0.1/32",
		"GATEWAY_RATE_LIMIT=0", "SHUTDOWN_DRAIN_TIMEOUT=2s",
	}
	replicas := []*gatewayProcess{startGatewayProcess(t, bin, env), startGatewayProcess(t, bin, env)}
	lb.Route(replicas[0].http, replicas[1].http)
	br := testinfra.NewBrowser(t)

	// 1–3. The sign-in starts on gateway 0 (the login cookie: state, nonce, PKCE verifier), goes through Keycloak's
	// real login form, and its callback lands on gateway 1, which never saw the login.
	br.SignIn(func() string { return lb.Via(0) }, func() string { return lb.Via(1) }, h.kc, "admin@acme.test", "admin", "/dashboard/webhooks")
	if lb.Served(0) != 1 || lb.Served(1) != 1 {
		t.Fatalf("the sign-in went %d / %d requests to the gateways, want 1 / 1", lb.Served(0), lb.Served(1))
	}

	// 4. Pages alternately through both.
	signedIn := func(i int, path string) {
		t.Helper()
		resp, page := br.Get(lb.Via(i) + path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "admin@acme.test") {
			t.Fatalf("%s via gateway %d: %d to %q\n%s", path, i, resp.StatusCode, resp.Header.Get("Location"), page)
		}
	}
	for i := range 6 {
		signedIn(i%2, []string{"/dashboard/webhooks", "/dashboard/cases"}[i/2%2])
	}

	// 5. Gateway 0 restarts (SIGTERM, then a new process on the same ports): the session is still there, on both.
	replicas[0].stop(t)
	replicas[0].start(t)
	for i := range 4 {
		signedIn(i%2, "/dashboard/webhooks")
	}
	// 6. A form of a page from gateway 1, posted to gateway 0 (the CSRF token is the session's, wherever it is
	// checked): signing out there ends the session on both.
	_, page := br.Get(lb.Via(1) + "/dashboard/webhooks")
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	req, _ := http.NewRequest(http.MethodPost, lb.Via(0)+"/dashboard/logout", strings.NewReader(url.Values{"csrf_token": {csrf[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", lb.URL)
	if resp, page := br.Do(req); resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/protocol/openid-connect/logout") {
		t.Fatalf("logout on gateway 0: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	for i := range 2 {
		if resp, _ := br.Get(lb.Via(i) + "/dashboard/webhooks"); resp.StatusCode != http.StatusSeeOther ||
			!strings.HasPrefix(resp.Header.Get("Location"), "/dashboard/login") {
			t.Fatalf("after the logout, gateway %d: %d to %q", i, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for i, g := range replicas {
		if out := g.p.Output.String(); strings.Contains(out, `"level":"ERROR"`) {
			t.Errorf("gateway %d logged errors:\n%s", i, out)
		}
	}
	t.Logf("requests served: gateway 0 %d, gateway 1 %d", lb.Served(0), lb.Served(1))
}
