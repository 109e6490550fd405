package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/proto/webhookbody"
	casesvc "github.com/casekeeper/core/services/case"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// dashboardStack is the whole system the dashboard runs in: the real case, webhook and gateway services in-process
// on embedded NATS and FerretDB, the gateway serving the dashboard as it does in production, the real Keycloak, and
// a local webhook receiver. Every service is configured through its environment variables, as deployed.
type dashboardStack struct {
	kc       string
	base     string // the gateway, http://127.0.0.1:port
	cases    casekeeperv1.CaseServiceClient
	receiver *hookReceiver
}

func startDashboardStack(t *testing.T) *dashboardStack {
	t.Helper()
	kc := testinfra.KeycloakURL(t)
	nats := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	log := testinfra.Logger(t)
	configured := func(what string, err error) {
		if err != nil {
			t.Fatalf("%s configuration: %v", what, err)
		}
	}
	shared := func(database string, more map[string]string) map[string]string {
		m := map[string]string{"NATS_URL": nats.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": database, "KEYCLOAK_URL": kc,
			"LOG_LEVEL": "warn"}
		for k, v := range more {
			m[k] = v
		}
		return m
	}
	caseCfg, err := config.Load[casesvc.Config](shared(db+"_case", map[string]string{
		"CASE_GRPC_ADDR": "127.0.0.1:0", "CASE_HTTP_ADDR": "127.0.0.1:0"}))
	configured("case service", err)
	whCfg, err := config.Load[webhooksvc.Config](shared(db+"_webhook", map[string]string{
		"WEBHOOK_GRPC_ADDR": "127.0.0.1:0", "WEBHOOK_HTTP_ADDR": "127.0.0.1:0", "WEBHOOK_ALLOW_LOOPBACK_HTTP": "true",
		"WEBHOOK_REQUEST_TIMEOUT": "5s", "WEBHOOK_RETRY_SCHEDULE": "0s,1s,2s", "WEBHOOK_RETRY_JITTER": "0",
		"GATEWAY_PUBLIC_URL":       "http://127.0.0.1:8080",
		"WEBHOOK_ENDPOINT_REFRESH": "1s", "WEBHOOK_FANOUT_BATCH": "64",
		"WEBHOOK_SECRETS_KEY": "1tA/2S5CnLmUq2z4yQxT0bqSLy0Qv6h8dbsV6lY5H3Y="}))
	configured("webhook service", err)

	svcs := testinfra.StartServices(t)
	cs, err := casesvc.New(svcs.Context(), caseCfg, log.With("service", "case"))
	if err != nil {
		t.Fatalf("case service: %v", err)
	}
	svcs.Run("case service", cs.Run)
	ws, err := webhooksvc.New(svcs.Context(), whCfg, log.With("service", "webhook"))
	if err != nil {
		t.Fatalf("webhook service: %v", err)
	}
	svcs.Run("webhook service", ws.Run)

	// The dashboard's callback URL is the gateway's public URL, which must be known before the gateway listens.
	base := "http://127.0.0.1:" + strconv.Itoa(testinfra.FreePort(t))
	gwCfg, err := config.Load[gatewaysvc.Config](shared(db+"_gateway", map[string]string{
		"GATEWAY_HTTP_ADDR": strings.TrimPrefix(base, "http://"), "GATEWAY_GRPC_ADDR": "127.0.0.1:0",
		"GATEWAY_PUBLIC_URL": base, "CASE_SERVICE_ADDR": cs.GRPCAddr(), "WEBHOOK_SERVICE_ADDR": ws.GRPCAddr(),
		"KEYCLOAK_CLIENT_ID": "casekeeper-gateway", "KEYCLOAK_CLIENT_SECRET": "gatewayDevSecret",
		"DASHBOARD_CLIENT_SECRET": "dashboardDevSecret", "DASHBOARD_COOKIE_SECURE": "false",
		"GATEWAY_CREDENTIALS_CLIENT_SECRET": "credentialsDevSecret",
		"GATEWAY_SESSION_KEY":               "ZGV2ZWxvcG1lbnQgb25seSBzZXNzaW9uIGtleSEhISE=", "GATEWAY_RATE_LIMIT": "0",
		"GATEWAY_FAILED_AUTH_LIMIT": "0", "SHUTDOWN_DRAIN_TIMEOUT": "2s"}))
	configured("gateway", err)
	gw, err := gatewaysvc.New(svcs.Context(), gwCfg, log)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	svcs.Run("gateway", gw.Run)

	return &dashboardStack{kc: kc, base: base, cases: casekeeperv1.NewCaseServiceClient(testinfra.Dial(t, cs.GRPCAddr())),
		receiver: newHookReceiver(t)}
}

// hookReceiver is the customer's webhook endpoint.
type hookReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []hookRequest
	// failing makes requests to /flaky… answer 503, as a receiver that is down.
	failing atomic.Bool
}

type hookRequest struct {
	Path    string
	Header  http.Header
	Type    string
	CaseID  string
	Payload map[string]any
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		var p map[string]any
		_ = json.Unmarshal(body, &p)
		rec := hookRequest{Path: req.URL.Path, Header: req.Header.Clone(), Payload: p}
		rec.Type, _ = p["type"].(string)
		if data, ok := p["data"].(map[string]any); ok {
			rec.CaseID, _ = data["id"].(string)
		}
		r.mu.Lock()
		r.got = append(r.got, rec)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(req.URL.Path, "/flaky") && r.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"down for maintenance"}`)
			return
		}
		_, _ = io.WriteString(w, `{"received":true}`)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// wait returns the first request that matches, waiting up to 30s.
func (r *hookReceiver) wait(t *testing.T, match func(hookRequest) bool) hookRequest {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, rec := range r.got {
			if match(rec) {
				r.mu.Unlock()
				return rec
			}
		}
		r.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the receiver got no matching webhook within 30s")
	return hookRequest{}
}

// chromium finds Debian's chromium (`make test` installs it when missing).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "/usr/bin/chromium"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run `make test`, which installs it (apt-get install chromium)")
	return ""
}

// browser starts a fresh headless chromium with its own profile, so no cookie — the dashboard's or Keycloak's —
// leaks from one user to the next.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser and must not carry a timeout: the timeout would stop the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

const stepTimeout = 45 * time.Second

// do performs browser steps with a bound, failing the test with the page's URL and text on error.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(stepCtx, steps...); err != nil {
		t.Fatalf("browser: %v\n%s", err, pageState(ctx))
	}
}

// get runs one browser action that returns a value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(stepCtx, a)
	if err != nil {
		t.Fatalf("browser: %v\n%s", err, pageState(ctx))
	}
	return v
}

func pageState(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(c, chromedp.Location())
	body, _ := chromedp.Run(c, chromedp.Text(chromedp.CSS("body")))
	if len(body) > 2000 {
		body = body[:2000]
	}
	return "page " + loc + ":\n" + body
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, chromedp.Text(chromedp.CSS(sel)))
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	return get(t, ctx, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	return get(t, ctx, chromedp.Location())
}

func exists(t *testing.T, ctx context.Context, js string) bool {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[bool]("!!("+js+")"))
}

// eventuallyInPage reloads the page until cond holds (up to 30s).
func eventuallyInPage(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if exists(t, ctx, cond) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 30s\n%s", what, pageState(ctx))
		}
		time.Sleep(500 * time.Millisecond)
		do(t, ctx, chromedp.Reload(), chromedp.WaitReady(chromedp.CSS("footer")))
	}
}

// screenshot saves the page under docs/screenshots when UPDATE_SCREENSHOTS is set, so that ordinary test runs
// leave the committed images alone.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("UPDATE_SCREENSHOTS") == "" {
		return
	}
	png := get(t, ctx, chromedp.FullScreenshot(100))
	dir := filepath.Join(repoRoot(t), "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// login signs in on the real Keycloak login page, starting from the dashboard.
func login(t *testing.T, ctx context.Context, s *dashboardStack, user, password, shot string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(s.base+"/dashboard/"), chromedp.WaitVisible(chromedp.ID("username")))
	loc := location(t, ctx)
	if !strings.HasPrefix(loc, s.kc+"/realms/"+testinfra.Realm+"/protocol/openid-connect/auth") {
		t.Fatalf("the dashboard did not send the browser to Keycloak's login page: %s", loc)
	}
	u, _ := url.Parse(loc)
	if q := u.Query(); q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" {
		t.Fatalf("authorization request without PKCE S256, state or nonce: %s", loc)
	}
	do(t, ctx, chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), password))
	if shot != "" {
		screenshot(t, ctx, shot)
	}
	do(t, ctx, chromedp.Click(chromedp.ID("kc-login")), chromedp.WaitVisible(chromedp.ID("current-user")))
	if got := text(t, ctx, "#current-user"); got != user {
		t.Fatalf("signed in as %q, want %q", got, user)
	}
}

// addEndpoint fills in the Webhook Settings form and saves; it returns the new endpoint's id.
func addEndpoint(t *testing.T, ctx context.Context, s *dashboardStack, hookURL string) string {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(s.base+"/dashboard/webhooks"),
		chromedp.Click(chromedp.ID("add-endpoint")),
		chromedp.WaitVisible(chromedp.ID("url")),
		chromedp.SendKeys(chromedp.ID("url"), hookURL),
		chromedp.SendKeys(chromedp.ID("description"), "Acme CRM"),
		chromedp.SendKeys(chromedp.ID("headers"), "X-Env: dashboard-test"),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.ID("endpoint-url")),
	)
	if got := text(t, ctx, "#flash"); !strings.Contains(got, "Saved") || !strings.Contains(got, "whsec_") {
		t.Fatalf("after saving: flash %q, want the confirmation and the signing secret", got)
	}
	if got := text(t, ctx, "#endpoint-url"); got != hookURL {
		t.Fatalf("endpoint page shows %q, want %q", got, hookURL)
	}
	return strings.TrimPrefix(location(t, ctx), s.base+"/dashboard/webhooks/")
}

// createCase creates a case as the KYC provider acme-provider, through the case service.
func createCase(t *testing.T, s *dashboardStack, ref string) (context.Context, string) {
	t.Helper()
	return createCaseOf(t, s, ref, "Jane Roe")
}

// createCaseOf creates a case for the applicant of the given name.
func createCaseOf(t *testing.T, s *dashboardStack, ref, applicant string) (context.Context, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testinfra.Bearer(context.Background(),
		testinfra.ClientToken(t, "acme-provider", "acmeProviderDevSecret")), 30*time.Second)
	t.Cleanup(cancel)
	created, err := s.cases.CreateCase(ctx, &casekeeperv1.CreateCaseRequest{
		RequestId: fmt.Sprintf("dash-%d", time.Now().UnixNano()), ExternalRef: ref,
		Level:     casekeeperv1.VerificationLevel_VERIFICATION_LEVEL_ENHANCED,
		Applicant: &casekeeperv1.Applicant{FullName: applicant, Nationality: "DE"},
	})
	if err != nil {
		t.Fatalf("CreateCase: %v", err)
	}
	return ctx, created.GetCase().GetId()
}

// TestDashboardInBrowser drives the dashboard in Debian's chromium against the real services and Keycloak. The
// subtests share one stack (starting it is the slow part) but each uses a fresh browser.
func TestDashboardInBrowser(t *testing.T) {
	s := startDashboardStack(t)

	t.Run("acme admin adds an endpoint and sees the delivery of a case update", func(t *testing.T) {
		ctx := browser(t)
		login(t, ctx, s, "admin@acme.test", "admin", "login")

		hookURL := s.receiver.srv.URL + "/hooks/casekeeper"
		id := addEndpoint(t, ctx, s, hookURL)

		// The provider changes a case through the case service; the webhook must reach the receiver.
		pctx, caseID := createCase(t, s, "cust-1042")
		if _, err := s.cases.UpdateCase(pctx, &casekeeperv1.UpdateCaseRequest{Id: caseID, Labels: []string{"priority"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}}); err != nil {
			t.Fatalf("UpdateCase: %v", err)
		}
		got := s.receiver.wait(t, func(r hookRequest) bool { return r.Type == events.TypeUpdated && r.CaseID == caseID })
		if got.Path != "/hooks/casekeeper" || got.Header.Get("Webhook-Id") == "" || !strings.HasPrefix(got.Header.Get("Webhook-Signature"), "v1,") {
			t.Fatalf("webhook without Standard Webhooks headers: path %s, headers %v", got.Path, got.Header)
		}
		if got.Header.Get("X-Env") != "dashboard-test" {
			t.Fatalf("custom header X-Env = %q, want dashboard-test", got.Header.Get("X-Env"))
		}

		// The delivery appears in the endpoint's log with its status, attempts, latency and response.
		row := `document.querySelector('#delivery-log tr[data-event-type="case.updated"][data-status="succeeded"]')`
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks/"+id))
		eventuallyInPage(t, ctx, "the case.updated delivery in the log", row)
		cells := text(t, ctx, `#delivery-log tr[data-event-type="case.updated"]`)
		for _, want := range []string{"succeeded", "200", "ms", `{"received":true}`, caseID} {
			if !strings.Contains(cells, want) {
				t.Errorf("delivery row %q lacks %q", cells, want)
			}
		}

		// A test event of a chosen type: its answer inline, then a row of its own in the log, marked test, without
		// a case link or a resend; the receiver got a case.review_completed body about the sample case.
		do(t, ctx, chromedp.SetValue(chromedp.ID("test-event-type"), events.TypeReviewCompleted),
			chromedp.Click(chromedp.ID("send-test")), chromedp.WaitVisible(chromedp.ID("test-result")))
		if got := text(t, ctx, "#test-result"); !strings.Contains(got, "answered 200") || !strings.Contains(got, events.TypeReviewCompleted) {
			t.Errorf("send test event: %q, want the endpoint's 200 for the case.review_completed sample shown inline", got)
		}
		s.receiver.wait(t, func(r hookRequest) bool { return r.Type == events.TypeReviewCompleted && r.CaseID == "case_test" })
		testRow := `#delivery-log tr[data-test="true"][data-event-type="case.review_completed"][data-status="succeeded"]`
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks/"+id))
		eventuallyInPage(t, ctx, "the test delivery in the log", fmt.Sprintf("document.querySelector('%s')", testRow))
		if cells := text(t, ctx, testRow); !strings.Contains(cells, "test") || !strings.Contains(cells, "case_test") {
			t.Errorf("test delivery row %q, want the test badge and the sample case", cells)
		}
		if exists(t, ctx, fmt.Sprintf("document.querySelector('%s .resend, %s a[href^=\"/dashboard/cases/\"]')", testRow, testRow)) {
			t.Error("the test delivery's row offers a resend or links a case page")
		}
		screenshot(t, ctx, "endpoint-delivery-log")

		do(t, ctx, chromedp.Click(chromedp.ID("reveal-secret")), chromedp.WaitVisible(chromedp.ID("secret-result")))
		if got := text(t, ctx, "#secret-result"); !strings.Contains(got, "whsec_") {
			t.Errorf("reveal secret: %q, want a whsec_ secret", got)
		}
		// The delivery's page shows the request as it was sent: the Standard Webhooks headers, the custom header
		// with its value masked, and the body the receiver got.
		href := attr(t, ctx, `#delivery-log tr[data-event-type="case.updated"] a[href*="/deliveries/"]`, "href")
		do(t, ctx, chromedp.Navigate(s.base+href), chromedp.WaitVisible(chromedp.ID("attempts")),
			chromedp.Click(chromedp.CSS(`#attempts tr[data-attempt="1"] details.request summary`)))
		// Header names are compared as HTTP compares them: the page's style capitalises them.
		request := text(t, ctx, `#attempts tr[data-attempt="1"] details.request`)
		for _, want := range []string{"Webhook-Id", got.Header.Get("Webhook-Id"), "Webhook-Signature", "X-Env", "••••••", `"case.updated"`, caseID} {
			if !strings.Contains(strings.ToLower(request), strings.ToLower(want)) {
				t.Errorf("the attempt's request %q lacks %q", request, want)
			}
		}
		if strings.Contains(request, "dashboard-test") {
			t.Error("the attempt's request shows the custom header's value")
		}
		screenshot(t, ctx, "delivery-request")
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks"), chromedp.WaitVisible(chromedp.ID("endpoints")))
		if !strings.Contains(text(t, ctx, "#endpoints"), hookURL) {
			t.Fatalf("the endpoint list does not show %s", hookURL)
		}
		screenshot(t, ctx, "webhook-settings")

		// Cases: the list (filtered) and the case page with its timeline.
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/cases?status=draft"), chromedp.WaitVisible(chromedp.ID("cases")))
		if !exists(t, ctx, fmt.Sprintf(`document.querySelector('#cases tr[data-case-id="%s"]')`, caseID)) {
			t.Fatalf("the case list filtered by draft does not show case %s\n%s", caseID, pageState(ctx))
		}
		screenshot(t, ctx, "cases")
		// Searching by the tenant's own reference finds that case and no other.
		_, other := createCaseOf(t, s, "cust-2099", "Émile Zola-Okafor")
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/cases"))
		eventuallyInPage(t, ctx, "the second case listed", fmt.Sprintf(`document.querySelector('#cases tr[data-case-id="%s"]')`, other))
		// Newest first: the case just created heads the list.
		if first := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#cases tbody tr').dataset.caseId`)); first != other {
			t.Errorf("the first row is case %s, want the newest, %s\n%s", first, other, pageState(ctx))
		}
		// Searching by a part of the applicant's name, in another case, through the form.
		do(t, ctx, chromedp.SendKeys(chromedp.ID("name"), "zola-OK"), chromedp.Click(chromedp.ID("apply-filter")))
		eventuallyInPage(t, ctx, "the page of the search", `location.search.includes('name=') && document.getElementById('cases') !== null`)
		if rows := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#cases tbody tr').length`)); rows != 1 ||
			!strings.Contains(text(t, ctx, fmt.Sprintf(`#cases tr[data-case-id="%s"] .applicant`, other)), "Émile Zola-Okafor") {
			t.Errorf("searching the name zola-OK shows %d rows, want only case %s of Émile Zola-Okafor\n%s", rows, other, pageState(ctx))
		}
		if v := attr(t, ctx, "#name", "value"); v != "zola-OK" {
			t.Errorf("the name field holds %q after the search, want zola-OK", v)
		}
		screenshot(t, ctx, "cases-search")
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/cases?ref=cust-1042"), chromedp.WaitVisible(chromedp.ID("cases")))
		if v := attr(t, ctx, "#ref", "value"); v != "cust-1042" {
			t.Errorf("the reference field holds %q after the search, want cust-1042", v)
		}
		if rows := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#cases tbody tr').length`)); rows != 1 ||
			!exists(t, ctx, fmt.Sprintf(`document.querySelector('#cases tr[data-case-id="%s"]')`, caseID)) {
			t.Errorf("searching the reference cust-1042 shows %d rows, want only case %s\n%s", rows, caseID, pageState(ctx))
		}
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/cases?status=approved"), chromedp.WaitVisible(chromedp.ID("case-filter")))
		if exists(t, ctx, fmt.Sprintf(`document.querySelector('#cases tr[data-case-id="%s"]')`, caseID)) {
			t.Fatal("the case list filtered by approved shows a draft case")
		}
		// The case page lists its documents and checks, dates in UTC ISO form like everywhere.
		if _, err := s.cases.AddDocument(pctx, &casekeeperv1.AddDocumentRequest{Id: caseID, Document: &casekeeperv1.Document{
			Type: casekeeperv1.DocumentType_DOCUMENT_TYPE_PASSPORT, IssuingCountry: "DE", MaskedNumber: "*****4711",
			Decision: casekeeperv1.DocumentDecision_DOCUMENT_DECISION_ACCEPTED}}); err != nil {
			t.Fatalf("AddDocument: %v", err)
		}
		if _, err := s.cases.RecordCheck(pctx, &casekeeperv1.RecordCheckRequest{Id: caseID, Check: &casekeeperv1.Check{
			Type: casekeeperv1.CheckType_CHECK_TYPE_AML_SCREENING, Result: casekeeperv1.CheckResult_CHECK_RESULT_CLEAR,
			Provider: "screening-co", Reference: "scr-77"}}); err != nil {
			t.Fatalf("RecordCheck: %v", err)
		}
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/cases/"+caseID), chromedp.WaitVisible(chromedp.ID("timeline")))
		eventuallyInPage(t, ctx, "case.created, case.updated and the check in the timeline",
			`document.querySelector('#timeline li[data-event-type="case.created"]') && document.querySelector('#timeline li[data-event-type="case.updated"]') && document.querySelector('#timeline li[data-event-type="case.check_recorded"]')`)
		docs, checks := text(t, ctx, "#documents"), text(t, ctx, "#checks")
		for _, want := range []string{"passport", "DE", "*****4711", "accepted", " UTC"} {
			if !strings.Contains(strings.ToLower(docs), strings.ToLower(want)) {
				t.Errorf("documents %q lack %q", docs, want)
			}
		}
		for _, want := range []string{"aml screening", "clear", "screening-co", "scr-77", " UTC"} {
			if !strings.Contains(strings.ToLower(checks), strings.ToLower(want)) {
				t.Errorf("checks %q lack %q", checks, want)
			}
		}
		screenshot(t, ctx, "case")

		// Signing out ends the Keycloak session too: the next visit meets the login page again, not single sign-on.
		do(t, ctx, chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("signed-out")))
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks"), chromedp.WaitVisible(chromedp.ID("username")))
	})

	t.Run("failed deliveries are resent, and recovered since a time", func(t *testing.T) {
		ctx := browser(t)
		login(t, ctx, s, "admin@acme.test", "admin", "")
		// Operational notices go to a URL of the admin's, set on Webhook Settings.
		notices := testinfra.NewRecorder(t, nil)
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks"), chromedp.WaitVisible(chromedp.ID("notices-form")),
			chromedp.SetValue(chromedp.ID("notice-url"), notices.URL+"/notices"), chromedp.Click(chromedp.ID("save-notices")),
			chromedp.WaitVisible(chromedp.ID("notices-result")))
		if !strings.HasPrefix(get(t, ctx, chromedp.Evaluate[string](`document.getElementById('notice-secret').textContent`)), "whsec_") {
			t.Errorf("no notice secret after saving the notice URL\n%s", pageState(ctx))
		}
		s.receiver.failing.Store(true)
		id := addEndpoint(t, ctx, s, s.receiver.srv.URL+"/flaky")
		failed := `document.querySelector('#delivery-log tr[data-status="failed"]')`
		banner := fmt.Sprintf(`document.querySelector('[data-banner="failing"][data-endpoint-id="%s"]')`, id)

		// The receiver is down: the delivery runs out of attempts and shows as failed, with the answer it got.
		createCase(t, s, "cust-flaky-1")
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks/"+id))
		eventuallyInPage(t, ctx, "a failed delivery in the log", failed)
		if row := text(t, ctx, `#delivery-log tr[data-status="failed"]`); !strings.Contains(row, "503") || !strings.Contains(row, "down for maintenance") {
			t.Errorf("failed delivery row %q, want the 503 and the receiver's answer", row)
		}
		screenshot(t, ctx, "endpoint-failed-delivery")
		// Failing since its first failure: a banner on the endpoint's page and on Webhook Settings.
		if !exists(t, ctx, banner) {
			t.Errorf("the failing endpoint's page has no banner\n%s", pageState(ctx))
		}
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks"), chromedp.WaitVisible(chromedp.ID("endpoints")))
		if !exists(t, ctx, banner) {
			t.Errorf("Webhook Settings has no banner for the failing endpoint\n%s", pageState(ctx))
		}
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks/"+id), chromedp.WaitVisible(chromedp.ID("delivery-log")))

		// Back up: resend that one delivery from the log.
		s.receiver.failing.Store(false)
		do(t, ctx, chromedp.Click(chromedp.CSS(`#delivery-log tr[data-status="failed"] button.resend`)),
			chromedp.WaitVisible(chromedp.ID("deliveries-result")))
		if got := text(t, ctx, "#deliveries-result"); !strings.Contains(got, "queued again") {
			t.Errorf("resend: %q", got)
		}
		eventuallyInPage(t, ctx, "the resent delivery succeeded",
			`!document.querySelector('#delivery-log tr[data-status="failed"]') && document.querySelectorAll('#delivery-log tr[data-status="succeeded"]').length === 1`)
		// Recovered: the banner is gone, and Webhook Settings lists both notices, which reached the notice URL too.
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks"), chromedp.WaitVisible(chromedp.ID("notices")))
		eventuallyInPage(t, ctx, "the failing and recovered notices listed, no banner", fmt.Sprintf(
			`!%s && document.querySelector('#recent-notices tr[data-type="endpoint.failing"][data-endpoint-id="%s"]') && document.querySelector('#recent-notices tr[data-type="endpoint.recovered"][data-endpoint-id="%s"]')`,
			banner, id, id))
		screenshot(t, ctx, "webhook-notices")
		testinfra.Eventually(t, 30*time.Second, "both notices at the notice URL", func() bool {
			var kinds []string
			for _, r := range notices.Requests() {
				var n struct{ Type string }
				if json.Unmarshal(r.Body, &n) == nil && strings.Contains(string(r.Body), id) {
					kinds = append(kinds, n.Type)
				}
			}
			return slices.Contains(kinds, "endpoint.failing") && slices.Contains(kinds, "endpoint.recovered")
		})
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks/"+id), chromedp.WaitVisible(chromedp.ID("delivery-log")))

		// Down again, then "recover failed since…" queues every failed delivery of the endpoint at once.
		s.receiver.failing.Store(true)
		createCase(t, s, "cust-flaky-2")
		eventuallyInPage(t, ctx, "a second failed delivery", failed)
		s.receiver.failing.Store(false)
		do(t, ctx, chromedp.Click(chromedp.ID("recover-failed")), chromedp.WaitVisible(chromedp.ID("recover-result")))
		if got := text(t, ctx, "#recover-result"); !strings.Contains(got, "1 failed deliveries") {
			t.Errorf("recover failed since: %q, want one delivery queued again", got)
		}
		eventuallyInPage(t, ctx, "the recovered delivery succeeded",
			`!document.querySelector('#delivery-log tr[data-status="failed"]') && document.querySelectorAll('#delivery-log tr[data-status="succeeded"]').length === 2`)

		// The health chart counts every attempt: two deliveries, each failed three times (the schedule's three
		// attempts) and then succeeded once.
		day := `#health [data-period="last 24 hours"]`
		eventuallyInPage(t, ctx, "the health chart with every attempt", fmt.Sprintf(`document.querySelector('%s .attempts') && document.querySelector('%s .attempts').textContent === '8'`, day, day))
		if rate := text(t, ctx, day+" .rate"); rate != "25.0 %" {
			t.Errorf("the last 24 hours' success rate is %q, want 25.0 %% (2 of 8)", rate)
		}
		if !exists(t, ctx, fmt.Sprintf(`document.querySelector('%s svg.chart rect.bar.bad[data-attempts]')`, day)) ||
			!exists(t, ctx, fmt.Sprintf(`document.querySelector('%s svg.chart polyline.line.p99, %s svg.chart circle.dot.p99')`, day, day)) {
			t.Errorf("the charts lack a failing bar or the p99 latency\n%s", pageState(ctx))
		}
		screenshot(t, ctx, "endpoint-health")
	})

	t.Run("globex admin never sees acme's endpoints", func(t *testing.T) {
		acme := browser(t)
		login(t, acme, s, "admin@acme.test", "admin", "")
		acmeURL := s.receiver.srv.URL + "/acme-only"
		acmeID := addEndpoint(t, acme, s, acmeURL)

		globex := browser(t)
		login(t, globex, s, "admin@globex.test", "admin", "")
		do(t, globex, chromedp.Navigate(s.base+"/dashboard/webhooks"), chromedp.WaitVisible(chromedp.CSS("h1")))
		if body := text(t, globex, "main"); strings.Contains(body, acmeURL) || strings.Contains(body, acmeID) {
			t.Fatalf("globex's Webhook Settings show acme's endpoint:\n%s", body)
		}
		// Not even by its id.
		do(t, globex, chromedp.Navigate(s.base+"/dashboard/webhooks/"+acmeID), chromedp.WaitVisible(chromedp.ID("error")))
		code := attr(t, globex, "#error", "data-status")
		if code != "404" || strings.Contains(text(t, globex, "main"), acmeURL) {
			t.Fatalf("globex opening acme's endpoint: status %s, page %s", code, text(t, globex, "main"))
		}
	})

	t.Run("a form post without the CSRF token is refused", func(t *testing.T) {
		ctx := browser(t)
		login(t, ctx, s, "admin@acme.test", "admin", "")
		forged := s.receiver.srv.URL + "/forged"
		do(t, ctx,
			chromedp.Navigate(s.base+"/dashboard/webhooks/new"),
			chromedp.WaitVisible(chromedp.ID("url")),
			chromedp.SendKeys(chromedp.ID("url"), forged),
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := chromedp.Evaluate[bool](`(document.querySelector('#endpoint-form input[name="csrf_token"]').remove(), true)`)(ctx, tg)
				return err
			}),
			chromedp.Click(chromedp.ID("save")),
			chromedp.WaitVisible(chromedp.ID("error")),
		)
		code := attr(t, ctx, "#error", "data-status")
		if msg := text(t, ctx, "#error-message"); code != "403" || !strings.Contains(msg, "Nothing was changed") {
			t.Fatalf("post without CSRF token: status %s, message %q", code, msg)
		}
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks"), chromedp.WaitVisible(chromedp.CSS("h1")))
		if strings.Contains(text(t, ctx, "main"), forged) {
			t.Fatal("the endpoint of the refused form was created")
		}
	})

	t.Run("API credentials: a created one fetches the feed, a rotated secret and a revoked one get 401", func(t *testing.T) {
		ctx := browser(t)
		login(t, ctx, s, "admin@acme.test", "admin", "")
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/credentials"), chromedp.WaitVisible(chromedp.ID("new-credential")),
			chromedp.SendKeys(chromedp.ID("credential-name"), "Nightly CRM sync"), chromedp.Click(chromedp.ID("create-credential")),
			chromedp.WaitVisible(chromedp.ID("issued")))
		clientID, secret := text(t, ctx, "#issued-client-id"), text(t, ctx, "#issued-secret")
		if !strings.HasPrefix(clientID, "acme-api-") || secret == "" {
			t.Fatalf("issued client %q secret %q", clientID, secret)
		}
		example := text(t, ctx, "#issued-example")
		for _, want := range []string{clientID, secret, s.kc + "/realms/casekeeper/protocol/openid-connect/token", s.base + "/v1/events"} {
			if !strings.Contains(example, want) {
				t.Errorf("the copy-paste example lacks %q:\n%s", want, example)
			}
		}
		screenshot(t, ctx, "api-credentials")
		// fetch runs what the example runs: a token for the credential, then the feed.
		fetch := func(secret string) (tokenStatus, feedStatus int) {
			resp, err := http.PostForm(s.kc+"/realms/casekeeper/protocol/openid-connect/token", url.Values{
				"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}})
			if err != nil {
				t.Fatal(err)
			}
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&tok)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return resp.StatusCode, 0
			}
			req, _ := http.NewRequest(http.MethodGet, s.base+"/v1/events?page_size=100", nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			feed, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			feed.Body.Close()
			return http.StatusOK, feed.StatusCode
		}
		if tok, feed := fetch(secret); tok != 200 || feed != 200 {
			t.Fatalf("the new credential: token %d, feed %d, want 200 and 200", tok, feed)
		}
		row := fmt.Sprintf(`#credentials tr[data-client-id="%s"]`, clientID)
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/credentials"), chromedp.WaitVisible(chromedp.ID("credentials")))
		if got := text(t, ctx, row); !strings.Contains(got, "Nightly CRM sync") {
			t.Fatalf("the list's row %q lacks the name", got)
		}
		if strings.Contains(text(t, ctx, "main"), secret) {
			t.Error("the list shows the secret again")
		}
		// The buttons ask first; the test answers yes.
		answerYes := func() { get(t, ctx, chromedp.Evaluate[bool](`(window.confirm = () => true, true)`)) }
		answerYes()
		do(t, ctx, chromedp.Click(chromedp.CSS(row+" button.rotate")), chromedp.WaitVisible(chromedp.ID("issued")))
		rotated := text(t, ctx, "#issued-secret")
		if tok, _ := fetch(secret); tok != http.StatusUnauthorized {
			t.Errorf("the secret before the rotation: token %d, want 401", tok)
		}
		if tok, feed := fetch(rotated); tok != 200 || feed != 200 {
			t.Errorf("the rotated secret: token %d, feed %d", tok, feed)
		}
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/credentials"), chromedp.WaitVisible(chromedp.ID("new-credential")))
		answerYes()
		do(t, ctx, chromedp.Click(chromedp.CSS(row+" button.revoke")), chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
		if exists(t, ctx, fmt.Sprintf(`document.querySelector('%s')`, row)) {
			t.Error("the revoked credential is still listed")
		}
		if tok, _ := fetch(rotated); tok != http.StatusUnauthorized {
			t.Errorf("the revoked credential: token %d, want 401", tok)
		}
	})

	t.Run("per-case ordering is chosen in the endpoint form and shown on its page", func(t *testing.T) {
		ctx := browser(t)
		login(t, ctx, s, "admin@acme.test", "admin", "")
		id := addEndpoint(t, ctx, s, s.receiver.srv.URL+"/ordered")
		if got := text(t, ctx, "#endpoint-ordering"); !strings.Contains(got, "in parallel") {
			t.Errorf("a new endpoint's order %q, want in parallel", got)
		}
		if got := text(t, ctx, "#payload-version"); !strings.Contains(got, webhookbody.CurrentVersion) {
			t.Errorf("a new endpoint's payload version shows %q, want %s", got, webhookbody.CurrentVersion)
		}
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks/"+id+"/edit"), chromedp.WaitVisible(chromedp.ID("ordering-per-case")),
			chromedp.Click(chromedp.ID("ordering-per-case")), chromedp.Click(chromedp.ID("save")),
			chromedp.WaitVisible(chromedp.ID("endpoint-ordering")))
		if got := text(t, ctx, "#endpoint-ordering"); !strings.Contains(got, "in version order") {
			t.Errorf("after choosing per-case order the page says %q", got)
		}
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks/"+id+"/edit"), chromedp.WaitVisible(chromedp.ID("ordering-per-case")))
		if !get(t, ctx, chromedp.Evaluate[bool](`document.getElementById('ordering-per-case').checked`)) {
			t.Error("the edit form does not show the per-case order chosen")
		}

		// An Ed25519 endpoint: the admin gets the whpk_ public key, and can switch the scheme by rotating.
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks/new"), chromedp.WaitVisible(chromedp.ID("url")),
			chromedp.SendKeys(chromedp.ID("url"), s.receiver.srv.URL+"/ed25519"), chromedp.Click(chromedp.ID("scheme-ed25519")),
			chromedp.Click(chromedp.ID("save")), chromedp.WaitVisible(chromedp.ID("endpoint-signature")))
		if got := text(t, ctx, "#flash"); !strings.Contains(got, "whpk_") || strings.Contains(got, "whsk_") || strings.Contains(got, "whsec_") {
			t.Errorf("after saving an Ed25519 endpoint the flash says %q, want its whpk_ public key only", got)
		}
		if got := text(t, ctx, "#endpoint-signature"); !strings.Contains(got, "Ed25519") {
			t.Errorf("the endpoint's signature scheme shows %q", got)
		}
		get(t, ctx, chromedp.Evaluate[bool](`(window.confirm = () => true, true)`))
		do(t, ctx, chromedp.Click(chromedp.ID("switch-scheme")), chromedp.WaitVisible(chromedp.ID("secret-result")))
		if got := text(t, ctx, "#secret-result"); !strings.Contains(got, "whsec_") {
			t.Errorf("switching to HMAC showed %q, want the new whsec_ secret", got)
		}
		if got := text(t, ctx, "#endpoint-signature"); !strings.Contains(got, "HMAC") {
			t.Errorf("after the switch the scheme shows %q", got)
		}
	})

	t.Run("viewer without webhooks:manage gets a clear message", func(t *testing.T) {
		ctx := browser(t)
		login(t, ctx, s, "viewer@acme.test", "viewer", "")
		// Home takes a viewer to the cases, the part their role opens.
		do(t, ctx, chromedp.WaitVisible(chromedp.ID("case-filter")))
		if exists(t, ctx, `document.querySelector('a[href="/dashboard/webhooks"]')`) {
			t.Error("the navigation offers Webhook Settings to a viewer")
		}
		do(t, ctx, chromedp.Navigate(s.base+"/dashboard/webhooks"), chromedp.WaitVisible(chromedp.ID("error")))
		code := attr(t, ctx, "#error", "data-status")
		msg := text(t, ctx, "#error")
		if code != "403" || !strings.Contains(msg, "You need the webhooks:manage role") || !strings.Contains(msg, "viewer@acme.test") {
			t.Fatalf("viewer on Webhook Settings: status %s, page %q", code, msg)
		}
		screenshot(t, ctx, "viewer-forbidden")
	})

	t.Run("a bad Webhook URL is reported next to the field, and jq is previewed", func(t *testing.T) {
		ctx := browser(t)
		login(t, ctx, s, "admin@acme.test", "admin", "")
		do(t, ctx,
			chromedp.Navigate(s.base+"/dashboard/webhooks/new"),
			chromedp.WaitVisible(chromedp.ID("url")),
			chromedp.SendKeys(chromedp.ID("url"), "ftp://files.example.com/hook"),
			chromedp.Click(chromedp.ID("save")),
			chromedp.WaitVisible(chromedp.ID("url-error")),
		)
		if msg := text(t, ctx, "#url-error"); !strings.Contains(msg, "https") {
			t.Errorf("error next to the Webhook URL: %q, want it to ask for https", msg)
		}
		invalid, described := attr(t, ctx, "#url", "aria-invalid"), attr(t, ctx, "#url", "aria-describedby")
		value := get(t, ctx, chromedp.Value(chromedp.ID("url")))
		if invalid != "true" || !strings.Contains(described, "url-error") || value != "ftp://files.example.com/hook" {
			t.Errorf("Webhook URL field: aria-invalid %q, aria-describedby %q, value %q", invalid, described, value)
		}
		// The error sits inside the Webhook URL's own field, not in a banner.
		if !exists(t, ctx, `document.getElementById("url").closest(".field").contains(document.getElementById("url-error"))`) {
			t.Error("the URL error is not next to the Webhook URL field")
		}
		screenshot(t, ctx, "endpoint-form-validation")

		do(t, ctx,
			chromedp.Click(chromedp.CSS(`input[name="payload_format"][value="jq"]`)),
			chromedp.SendKeys(chromedp.ID("jq_transform"), "{kind: .type, case: .data.id}"),
			chromedp.Click(chromedp.ID("preview")),
			chromedp.WaitVisible(chromedp.ID("jq-preview")),
		)
		if out := text(t, ctx, "#preview-output"); !strings.Contains(out, `"kind"`) || !strings.Contains(out, `"case"`) {
			t.Errorf("jq preview output %q, want the transformed sample event\n%s", out, pageState(ctx))
		}
		screenshot(t, ctx, "endpoint-form-jq-preview")
	})
}
