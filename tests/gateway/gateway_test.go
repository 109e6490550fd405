package gateway_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
)

// TestGateway runs every integration check against one stack (real Keycloak, real case service, embedded NATS
// and FerretDB), so the 2-core machine starts the infrastructure once.
func TestGateway(t *testing.T) {
	h := newHarness(t, harnessOptions{rateLimit: 100, rateBurst: 150})

	t.Run("TenantIsolation", func(t *testing.T) { testTenantIsolation(t, h) })
	t.Run("RejectsUntrustedTokens", func(t *testing.T) { testRejectsUntrustedTokens(t, h) })
	t.Run("MissingRoleIsForbidden", func(t *testing.T) { testMissingRole(t, h) })
	t.Run("KeyRotationWithoutRestart", func(t *testing.T) { testKeyRotation(t, h) })
	t.Run("BadParametersNameTheParameter", func(t *testing.T) { testBadParameters(t, h) })
	t.Run("ConditionalGET", func(t *testing.T) { testConditionalGET(t, h) })
	t.Run("LongPollWakesWithin100ms", func(t *testing.T) { testLongPoll(t, h) })
	t.Run("WatchResumesWithoutGapOrDuplicate", func(t *testing.T) { testWatchResume(t, h) })
	t.Run("SSEResumesWithLastEventID", func(t *testing.T) { testSSEResume(t, h) })
	t.Run("StreamsEndWhenTheTokenExpires", func(t *testing.T) { testStreamsEndAtTokenExpiry(t, h) })
	t.Run("StreamsAreCappedPerClient", func(t *testing.T) { testStreamCap(t, h) })
	t.Run("FeedThroughRealCaseService", func(t *testing.T) { testFeedFromCaseService(t, h) })
	t.Run("AccessAuditForAdmins", func(t *testing.T) { testAudit(t, h) })
	t.Run("WebhookRoutesDelegate", func(t *testing.T) { testWebhookRoutes(t, h) })
	t.Run("RateLimit429", func(t *testing.T) { testRateLimit(t, h) })
	t.Run("FailedAuthBudgetPerClientBehindProxy", func(t *testing.T) { testFailedAuthBehindProxy(t, h) })
	t.Run("SecondInstanceWakesOnOtherInstancesWrites", func(t *testing.T) { testSecondInstance(t, h) })
	t.Run("OpsAndOpenAPI", func(t *testing.T) { testOps(t, h) })
	t.Run("SteadyStateMakesNoKeycloakCalls", func(t *testing.T) { testSteadyState(t, h) })
	t.Run("IntrospectionSeesRevocation", func(t *testing.T) { testIntrospection(t, h) })
}

func testTenantIsolation(t *testing.T, h *harness) {
	a := h.createCase(t, h.acmeProvider(), "iso-acme")
	g := h.createCase(t, h.globexProvider(), "iso-globex")
	acme, globex := h.acme(), h.globex()

	resp, body := h.get(t, "/v1/cases/"+a.GetId(), acme)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"tenant":"acme"`) {
		t.Fatalf("acme reading its case: %d %s", resp.StatusCode, body)
	}
	for _, c := range []struct{ token, id string }{{acme, g.GetId()}, {globex, a.GetId()}} {
		resp, body = h.get(t, "/v1/cases/"+c.id, c.token)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("cross-tenant read: %d %s", resp.StatusCode, body)
		}
	}
	client := casekeeperv1.NewCaseQueryServiceClient(h.grpcConn(t))
	if _, err := client.GetCase(testinfra.Bearer(t.Context(), acme), &casekeeperv1.GetCaseRequest{Id: g.GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("gRPC cross-tenant read: %v", err)
	}
	// The list is the case service's projection of its stream, which follows a write by a moment.
	var list *casekeeperv1.ListCasesResponse
	testinfra.Eventually(t, 10*time.Second, "acme's new case in acme's list", func() bool {
		var err error
		list, err = client.ListCases(testinfra.Bearer(t.Context(), acme), &casekeeperv1.ListCasesRequest{})
		return err == nil && slices.ContainsFunc(list.GetCases(), func(c *casekeeperv1.Case) bool { return c.GetId() == a.GetId() })
	})
	for _, c := range list.GetCases() {
		if c.GetTenant() != "acme" {
			t.Fatalf("acme's list holds a case of %s", c.GetTenant())
		}
	}
	// Over HTTP, newest first and by a part of the applicant's name; a bad search names its field.
	b := h.createCase(t, h.acmeProvider(), "iso-acme-newest")
	type page struct {
		Cases []struct{ ID string } `json:"cases"`
	}
	testinfra.Eventually(t, 10*time.Second, "the newest case first over HTTP", func() bool {
		resp, body = h.get(t, "/v1/cases?newest_first=true&page_size=500", acme)
		var got page
		return resp.StatusCode == http.StatusOK && json.Unmarshal(body, &got) == nil && len(got.Cases) >= 2 &&
			got.Cases[0].ID == b.GetId() &&
			slices.IsSortedFunc(got.Cases, func(x, y struct{ ID string }) int { return strings.Compare(y.ID, x.ID) })
	})
	resp, body = h.get(t, "/v1/cases?applicant_name=person+ISO-ACME-NEW", acme)
	var named page
	if err := json.Unmarshal(body, &named); resp.StatusCode != http.StatusOK || err != nil || len(named.Cases) != 1 || named.Cases[0].ID != b.GetId() {
		t.Fatalf("the applicant-name search: %d %s", resp.StatusCode, body)
	}
	resp, body = h.get(t, "/v1/cases?applicant_name="+strings.Repeat("x", 201), acme)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "applicant_name") {
		t.Fatalf("a 201-character applicant search: %d %s", resp.StatusCode, body)
	}
	// A caller cannot smuggle another tenant in through metadata headers.
	resp, _ = h.get(t, "/v1/cases/"+g.GetId(), acme, "Grpc-Metadata-X-Casekeeper-Tenant: globex", "X-Casekeeper-Tenant: globex")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("tenant header smuggling: %d", resp.StatusCode)
	}
}

func testRejectsUntrustedTokens(t *testing.T, h *harness) {
	c := h.createCase(t, h.acmeProvider(), "tokens-acme")
	good := h.acme()
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"acme"`, `"globex"`, 1))) + "." + parts[2]
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	ensureTestClients(t, h.kc)
	user := h.user(t, "viewer@acme.test", "viewer")
	master := testinfra.PasswordLogin(t, "master", "admin-cli", "", "admin", "admin").AccessToken
	noAud := testinfra.ClientToken(t, testNoAudClient, testNoAudSecret)

	tokens := map[string]string{
		"no token":                  "",
		"garbage":                   "garbage",
		"tampered":                  tampered,
		"unsigned alg none":         unsigned,
		"ID token":                  user.IDToken,
		"refresh token":             user.RefreshToken,
		"wrong issuer (master)":     master,
		"wrong audience":            noAud,
		"signature of another user": parts[0] + "." + parts[1] + "." + strings.Split(user.AccessToken, ".")[2],
	}
	client := casekeeperv1.NewCaseQueryServiceClient(h.grpcConn(t))
	for name, tok := range tokens {
		resp, body := h.get(t, "/v1/cases/"+c.GetId(), tok)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: HTTP %d %s", name, resp.StatusCode, body)
		}
		ctx := t.Context()
		if tok != "" {
			ctx = testinfra.Bearer(ctx, tok)
		}
		if _, err := client.GetCase(ctx, &casekeeperv1.GetCaseRequest{Id: c.GetId()}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: gRPC %v", name, err)
		}
	}
	// Expired: the same genuine token, presented after its exp (the gateway's clock moved past exp + leeway).
	h.clock.offset.Store(int64(6 * time.Minute))
	resp, body := h.get(t, "/v1/cases/"+c.GetId(), good)
	h.clock.offset.Store(0)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired: HTTP %d %s", resp.StatusCode, body)
	}
	if resp, body := h.get(t, "/v1/cases/"+c.GetId(), good); resp.StatusCode != http.StatusOK {
		t.Fatalf("good token after the bad ones: %d %s", resp.StatusCode, body)
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	_, body = h.get(t, "/v1/cases/"+c.GetId(), "garbage")
	if err := json.Unmarshal(body, &e); err != nil || e.Code != int(codes.Unauthenticated) || e.Message == "" {
		t.Fatalf("401 body: %s", body)
	}
}

func testMissingRole(t *testing.T, h *harness) {
	// casekeeper-webhook has no cases:read; the gateway's own token holds only service:delegate; a viewer has no
	// webhooks:manage for the audit.
	for _, tok := range []string{testinfra.ClientToken(t, "casekeeper-webhook", "webhookDevSecret"), testinfra.ClientToken(t, "casekeeper-gateway", "gatewayDevSecret")} {
		if resp, body := h.get(t, "/v1/cases/any", tok); resp.StatusCode != http.StatusForbidden {
			t.Errorf("no cases:read: HTTP %d %s", resp.StatusCode, body)
		}
	}
	viewer := h.user(t, "viewer@acme.test", "viewer").AccessToken
	if resp, body := h.get(t, "/v1/audit", viewer); resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer reading the audit: HTTP %d %s", resp.StatusCode, body)
	}
	if resp, body := h.get(t, "/v1/events", viewer); resp.StatusCode != http.StatusOK {
		t.Errorf("viewer reading the feed: HTTP %d %s", resp.StatusCode, body)
	}
}

func testKeyRotation(t *testing.T, h *harness) {
	c := h.createCase(t, h.acmeProvider(), "rotation-acme")
	before := h.acme()
	kid, demote := kcAdmin{t: t, kc: h.kc}.rotateKey()
	defer demote()
	after := h.acme()
	if headerKid(t, after) != kid {
		t.Fatalf("Keycloak did not sign with the new key: %s vs %s", headerKid(t, after), kid)
	}
	if headerKid(t, before) == kid {
		t.Fatal("the token before the rotation already has the new key")
	}
	for name, tok := range map[string]string{"old key": before, "new key": after} {
		if resp, body := h.get(t, "/v1/cases/"+c.GetId(), tok); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s token after rotation: HTTP %d %s", name, resp.StatusCode, body)
		}
	}
}

func headerKid(t *testing.T, tok string) string {
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var hd struct{ Kid string }
	_ = json.Unmarshal(b, &hd)
	return hd.Kid
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type            string `json:"@type"`
		FieldViolations []struct {
			Field string `json:"field"`
		} `json:"field_violations"`
	} `json:"details"`
}

func testBadParameters(t *testing.T, h *harness) {
	acme := h.acme()
	cases := map[string]string{
		"/v1/events?after=not-a-cursor":                        "after",
		"/v1/events?after=AAAAAAAAAAAAAAAAAA":                  "after",
		"/v1/events?types=case.nope":                           "types",
		"/v1/events?page_size=501":                             "page_size",
		"/v1/events?page_size=-1":                              "page_size",
		"/v1/events?wait=61s":                                  "wait",
		"/v1/events?wait=soon":                                 "wait",
		"/v1/events?page_size=ten":                             "page_size",
		"/v1/cases/" + strings.Repeat("x", 129):                "id",
		"/v1/events:stream?after=garbage":                      "after",
		"/v1/events?after=" + url.QueryEscape("Zm9vYmFy+/==="): "after",
	}
	for path, field := range cases {
		resp, body := h.get(t, path, acme)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d %s", path, resp.StatusCode, body)
			continue
		}
		var e apiError
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("%s: body %s", path, body)
			continue
		}
		named := strings.Contains(e.Message, field)
		for _, d := range e.Details {
			for _, v := range d.FieldViolations {
				named = named || v.Field == field
			}
		}
		if !named || e.Code != int(codes.InvalidArgument) {
			t.Errorf("%s: error does not name %s: %s", path, field, body)
		}
	}
	admin := h.user(t, "admin@acme.test", "admin").AccessToken
	for path, field := range map[string]string{"/v1/audit?page_token=nonsense": "page_token", "/v1/audit?page_size=1001": "page_size"} {
		resp, body := h.get(t, path, admin)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), field) {
			t.Errorf("%s: HTTP %d %s", path, resp.StatusCode, body)
		}
	}
	// Last-Event-ID is the same parameter as after.
	resp, body := h.get(t, "/v1/events:stream", acme, "Last-Event-ID: bogus")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "after") {
		t.Errorf("bad Last-Event-ID: %d %s", resp.StatusCode, body)
	}
	// A body over the limit is refused before it is read.
	req, _ := http.NewRequest(http.MethodPost, h.base+"/v1/webhooks/endpoints", strings.NewReader(strings.Repeat("x", 70<<10)))
	req.Header.Set("Authorization", "Bearer "+acme)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: HTTP %d", r.StatusCode)
	}
}

func testConditionalGET(t *testing.T, h *harness) {
	acme := h.acme()
	c := h.createCase(t, h.acmeProvider(), "etag-acme")
	resp, _ := h.get(t, "/v1/cases/"+c.GetId(), acme)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || etag == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "private") {
		t.Fatalf("case read: %d etag=%q cache=%q", resp.StatusCode, etag, resp.Header.Get("Cache-Control"))
	}
	resp, body := h.get(t, "/v1/cases/"+c.GetId(), acme, "If-None-Match: "+etag)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("unchanged case: %d %q", resp.StatusCode, body)
	}
	resp, _ = h.get(t, "/v1/cases/"+c.GetId(), acme, `If-None-Match: W/"other"`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("other etag: %d", resp.StatusCode)
	}
	// An empty poll at the head of the feed: same answer, same ETag, 304.
	cursor := h.head(t, acme)
	path := "/v1/events?after=" + cursor
	resp, _ = h.get(t, path, acme)
	etag = resp.Header.Get("ETag")
	resp, _ = h.get(t, path, acme, "If-None-Match: "+etag)
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged feed page: %d", resp.StatusCode)
	}
}

// head pages through the feed to its end and returns the cursor there.
func (h *harness) head(t testing.TB, token string) string {
	t.Helper()
	cursor := ""
	for range 1000 {
		_, body := h.get(t, "/v1/events?page_size=500&after="+cursor, token)
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("feed page: %s", body)
		}
		cursor = page.NextCursor
		if len(page.Events) < 500 {
			return cursor
		}
	}
	t.Fatal("feed did not end")
	return ""
}

func testLongPoll(t *testing.T, h *harness) {
	acme := h.acme()
	h.publish(t, "acme", "lp-warmup", events.TypeCreated, 1)
	waitFor(t, func() bool { return strings.Contains(h.feedAfter(t, acme, ""), "lp-warmup") })
	cursor := h.head(t, acme)

	// Five writes; the median wake-up must be within 100 ms and none may wait for the periodic re-check (so the
	// notification path, not polling, answered). The median keeps one scheduling hiccup of a loaded 2-core machine
	// (or the race detector) from failing the run.
	var latencies []time.Duration
	for i := range 5 {
		type result struct {
			at   time.Time
			body string
			code int
		}
		done := make(chan result, 1)
		go func() {
			resp, body := h.get(t, "/v1/events?wait=30s&after="+cursor, acme)
			done <- result{time.Now(), string(body), resp.StatusCode}
		}()
		time.Sleep(300 * time.Millisecond) // the poll is waiting
		select {
		case r := <-done:
			t.Fatalf("long-poll answered before any write: %d %s", r.code, r.body)
		default:
		}
		caseID := fmt.Sprintf("lp-%d", i)
		h.publish(t, "acme", caseID, events.TypeCreated, 1)
		written := time.Now()
		r := <-done
		latency := r.at.Sub(written)
		t.Logf("long-poll answered %v after the event was published", latency)
		if r.code != http.StatusOK || !strings.Contains(r.body, caseID) {
			t.Fatalf("long-poll answer: %d %s", r.code, r.body)
		}
		if latency > time.Second {
			t.Errorf("long-poll woke %v after the write: the notification did not wake it", latency)
		}
		latencies = append(latencies, latency)
		var page struct {
			NextCursor string `json:"next_cursor"`
		}
		_ = json.Unmarshal([]byte(r.body), &page)
		cursor = page.NextCursor
	}
	slices.Sort(latencies)
	if median := latencies[len(latencies)/2]; median > wakeBudget {
		t.Errorf("median long-poll wake-up %v after the write (all: %v), want ≤ %v", median, latencies, wakeBudget)
	}
	// With nothing written, the poll answers empty at its deadline, with the same cursor.
	start := time.Now()
	resp, body := h.get(t, "/v1/events?wait=1s&after="+cursor, acme)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"events"`) || time.Since(start) < time.Second {
		t.Fatalf("empty long-poll: %d %s after %v", resp.StatusCode, body, time.Since(start))
	}
	// globex's writes do not wake acme's poll early.
	go func() { time.Sleep(200 * time.Millisecond); h.publish(t, "globex", "lp-globex", events.TypeCreated, 1) }()
	start = time.Now()
	_, body = h.get(t, "/v1/events?wait=1s&after="+cursor, acme)
	if strings.Contains(string(body), "lp-globex") || time.Since(start) < time.Second {
		t.Fatalf("acme's poll saw globex: %s", body)
	}
}

func (h *harness) feedAfter(t testing.TB, token, cursor string) string {
	_, body := h.get(t, "/v1/events?page_size=500&after="+cursor, token)
	return string(body)
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testWatchResume(t *testing.T, h *harness) {
	acme := h.acme()
	cursor := h.head(t, acme)
	client := casekeeperv1.NewCaseQueryServiceClient(h.grpcConn(t))
	var want []string
	for i := range 5 {
		want = append(want, h.publish(t, "acme", fmt.Sprintf("watch-%d", i), events.TypeCreated, 1).GetId())
	}
	var got []string
	// First connection: take 3 events, then drop the connection.
	ctx, cancel := context.WithCancel(testinfra.Bearer(t.Context(), acme))
	stream, err := client.WatchCaseEvents(ctx, &casekeeperv1.WatchCaseEventsRequest{After: cursor})
	if err != nil {
		t.Fatal(err)
	}
	last := cursor
	for range 3 {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.GetEvent().GetId())
		last = m.GetEvent().GetCursor()
	}
	cancel()
	// Written while disconnected.
	for i := 5; i < 8; i++ {
		want = append(want, h.publish(t, "acme", fmt.Sprintf("watch-%d", i), events.TypeCreated, 1).GetId())
	}
	// globex's events never show up in acme's stream.
	h.publish(t, "globex", "watch-globex", events.TypeCreated, 1)
	ctx, cancel = context.WithTimeout(testinfra.Bearer(t.Context(), acme), 10*time.Second)
	defer cancel()
	stream, err = client.WatchCaseEvents(ctx, &casekeeperv1.WatchCaseEventsRequest{After: last})
	if err != nil {
		t.Fatal(err)
	}
	for len(got) < len(want) {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		got = append(got, m.GetEvent().GetId())
		if m.GetEvent().GetTenant() != "acme" {
			t.Fatalf("acme's stream carried %s's event", m.GetEvent().GetTenant())
		}
	}
	// A live event arrives on the open stream too.
	want = append(want, h.publish(t, "acme", "watch-live", events.TypeCreated, 1).GetId())
	m, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, m.GetEvent().GetId())
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("resumed stream:\n got %v\nwant %v", got, want)
	}
	// Filtered by type.
	ctx2, cancel2 := context.WithTimeout(testinfra.Bearer(t.Context(), acme), 5*time.Second)
	defer cancel2()
	h.publish(t, "acme", "watch-typed", events.TypeStatusChanged, 2)
	s2, err := client.WatchCaseEvents(ctx2, &casekeeperv1.WatchCaseEventsRequest{After: cursor, Types: []string{events.TypeStatusChanged}})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s2.Recv(); err != nil || m.GetEvent().GetCaseId() != "watch-typed" {
		t.Fatalf("typed stream: %v %v", m, err)
	}
}

type sseEvent struct{ id, typ, data string }

// readSSE reads n events from an SSE response.
func readSSE(t *testing.T, sc *bufio.Scanner, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.id != "" || cur.data != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	if len(out) < n {
		t.Fatalf("SSE ended after %d events: %v", len(out), sc.Err())
	}
	return out
}

func testSSEResume(t *testing.T, h *harness) {
	acme := h.acme()
	cursor := h.head(t, acme)
	var want []string
	for i := range 4 {
		want = append(want, h.publish(t, "acme", fmt.Sprintf("sse-%d", i), events.TypeCreated, 1).GetId())
	}
	open := func(lastID string) (*http.Response, *bufio.Scanner, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/v1/events:stream?after="+cursor, nil)
		req.Header.Set("Authorization", "Bearer "+acme)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("SSE: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return resp, bufio.NewScanner(resp.Body), cancel
	}
	resp, sc, cancel := open("")
	first := readSSE(t, sc, 2)
	cancel()
	resp.Body.Close()
	want = append(want, h.publish(t, "acme", "sse-offline", events.TypeCreated, 1).GetId())
	resp, sc, cancel = open(first[1].id)
	defer cancel()
	defer resp.Body.Close()
	rest := readSSE(t, sc, len(want)-2)
	var got []string
	for _, e := range append(first, rest...) {
		var ev struct {
			ID     string `json:"id"`
			Cursor string `json:"cursor"`
			CaseID string `json:"case_id"`
		}
		if err := json.Unmarshal([]byte(e.data), &ev); err != nil || ev.Cursor != e.id || e.typ != events.TypeCreated {
			t.Fatalf("SSE event %+v: %v", e, err)
		}
		got = append(got, ev.ID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("SSE after resume:\n got %v\nwant %v", got, want)
	}
	// Without a token: a JSON 401, not a stream.
	r, body := h.get(t, "/v1/events:stream", "")
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"code"`) {
		t.Fatalf("SSE without token: %d %s", r.StatusCode, body)
	}
}

func testFeedFromCaseService(t *testing.T, h *harness) {
	acme := h.acme()
	cursor := h.head(t, acme)
	c := h.createCase(t, h.acmeProvider(), "feed-real")
	var body string
	waitFor(t, func() bool { body = h.feedAfter(t, acme, cursor); return strings.Contains(body, c.GetId()) })
	var page struct {
		Events []struct {
			ID     string `json:"id"`
			Type   string `json:"type"`
			Tenant string `json:"tenant"`
			CaseID string `json:"case_id"`
			Cursor string `json:"cursor"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Events {
		if e.Tenant != "acme" || e.Cursor == "" {
			t.Fatalf("feed event %+v", e)
		}
	}
	// globex's case is never in acme's feed.
	g := h.createCase(t, h.globexProvider(), "feed-real-globex")
	waitFor(t, func() bool { return strings.Contains(h.feedAfter(t, h.globex(), ""), g.GetId()) })
	if strings.Contains(h.feedAfter(t, acme, ""), g.GetId()) {
		t.Fatal("globex's case in acme's feed")
	}
}

func testAudit(t *testing.T, h *harness) {
	acme := h.acme()
	c := h.createCase(t, h.acmeProvider(), "audit-acme")
	since := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	if resp, _ := h.get(t, "/v1/cases/"+c.GetId(), acme); resp.StatusCode != http.StatusOK {
		t.Fatal("read failed")
	}
	admin := h.user(t, "admin@acme.test", "admin").AccessToken
	resp, body := h.get(t, "/v1/audit?since="+url.QueryEscape(since), admin)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("audit: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Records []struct {
			Tenant   string   `json:"tenant"`
			Subject  string   `json:"subject"`
			ClientID string   `json:"client_id"`
			API      string   `json:"api"`
			CaseIDs  []string `json:"case_ids"`
			At       string   `json:"at"`
		} `json:"records"`
	}
	_ = json.Unmarshal(body, &out)
	found := false
	for _, r := range out.Records {
		if r.Tenant != "acme" {
			t.Fatalf("acme's audit shows tenant %s", r.Tenant)
		}
		if r.API == "/casekeeper.v1.CaseQueryService/GetCase" && len(r.CaseIDs) == 1 && r.CaseIDs[0] == c.GetId() {
			found = found || (r.ClientID == "acme-backend" && r.Subject != "" && r.At != "")
		}
	}
	if !found {
		t.Fatalf("read of %s not in the audit: %s", c.GetId(), body)
	}
	// The record holds no personal data of the case.
	if strings.Contains(string(body), "Test Person") || strings.Contains(string(body), "@example.test") {
		t.Fatalf("audit holds personal data: %s", body)
	}
	// globex's admin sees none of acme's records.
	gAdmin := h.user(t, "admin@globex.test", "admin").AccessToken
	_, body = h.get(t, "/v1/audit", gAdmin)
	if strings.Contains(string(body), c.GetId()) {
		t.Fatal("globex's admin sees acme's audit")
	}
}

func testWebhookRoutes(t *testing.T, h *harness) {
	admin := h.user(t, "admin@acme.test", "admin").AccessToken
	resp, body := h.get(t, "/v1/webhooks/endpoints", admin, "Grpc-Metadata-X-Casekeeper-Tenant: globex")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "ep-acme") {
		t.Fatalf("webhook list: %d %s", resp.StatusCode, body)
	}
	p, md := h.webhooks.seen()
	if p.Tenant != "acme" || p.Via != "casekeeper-gateway" || p.ClientID != testUserClient {
		t.Fatalf("webhook service saw %+v", p)
	}
	if n := len(md.Get("authorization")); n != 1 || len(md.Get("x-casekeeper-tenant")) != 1 {
		t.Fatalf("webhook service metadata: %v", md)
	}
	if resp, body := h.get(t, "/v1/webhooks/endpoints", h.user(t, "viewer@acme.test", "viewer").AccessToken); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer: %d %s", resp.StatusCode, body)
	}
	if resp, _ := h.get(t, "/v1/webhooks/endpoints", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
}

func testRateLimit(t *testing.T, h *harness) {
	// A second instance with a tiny budget, so the check does not depend on how fast this machine is.
	gw := h.startGateway(func(c *gatewaysvc.Config) { c.RateLimit, c.RateBurst = 1, 3 })
	base := "http://" + gw.HTTPAddr()
	get := func(tok string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/events?page_size=1", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tok := h.globexProvider()
	var statuses []int
	var limited *http.Response
	for range 5 {
		resp := get(tok)
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests && limited == nil {
			limited = resp
		}
	}
	if statuses[0] != http.StatusOK || limited == nil {
		t.Fatalf("statuses with a burst of 3: %v", statuses)
	}
	if ra := limited.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After = %q", ra)
	}
	// Another client is not affected.
	if resp := get(h.globex()); resp.StatusCode != http.StatusOK {
		t.Fatalf("other client: %d", resp.StatusCode)
	}
	// gRPC callers share the budget: ResourceExhausted.
	conn := testinfra.Dial(t, gw.GRPCAddr())
	_, err := casekeeperv1.NewCaseQueryServiceClient(conn).ListCaseEvents(testinfra.Bearer(t.Context(), tok), &casekeeperv1.ListCaseEventsRequest{})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("gRPC over budget: %v", err)
	}
}

// testSecondInstance: a long-poll held by one gateway instance wakes when the event is projected by whichever
// instance got it from the shared consumer (the core NATS notification carries the wake-up across).
func testSecondInstance(t *testing.T, h *harness) {
	gw := h.startGateway(nil)
	base := "http://" + gw.HTTPAddr()
	acme := h.acme()
	cursor := h.head(t, acme)
	for i := range 4 {
		done := make(chan string, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/events?wait=20s&after="+cursor, nil)
			req.Header.Set("Authorization", "Bearer "+acme)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			done <- string(b)
		}()
		time.Sleep(200 * time.Millisecond)
		id := fmt.Sprintf("multi-%d", i)
		h.publish(t, "acme", id, events.TypeCreated, 1)
		written := time.Now()
		body := <-done
		if !strings.Contains(body, id) {
			t.Fatalf("second instance's long-poll: %s", body)
		}
		// Well under the 2 s re-check: the other instance's NATS announcement woke it.
		d := time.Since(written)
		t.Logf("second instance answered %v after the write", d)
		if d > time.Second {
			t.Errorf("second instance woke %v after the write", d)
		}
		var page struct {
			NextCursor string `json:"next_cursor"`
		}
		_ = json.Unmarshal([]byte(body), &page)
		cursor = page.NextCursor
	}
}

func testOps(t *testing.T, h *harness) {
	// gRPC health and reflection need no token.
	conn := h.grpcConn(t)
	hc, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{Service: "casekeeper.v1.CaseQueryService"})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v %v", hc, err)
	}
	rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if r, err := rc.Recv(); err != nil || !strings.Contains(r.String(), "casekeeper.v1.CaseQueryService") {
		t.Fatalf("reflection: %v %v", r, err)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, body := h.get(t, p, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	resp, body := h.get(t, "/openapi.json", "")
	var spec struct {
		Paths map[string]any `json:"paths"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &spec) != nil {
		t.Fatalf("openapi: %d", resp.StatusCode)
	}
	for _, p := range []string{"/v1/cases/{id}", "/v1/events", "/v1/events:stream", "/v1/audit", "/v1/webhooks/endpoints"} {
		if _, ok := spec.Paths[p]; !ok {
			t.Errorf("openapi lacks %s", p)
		}
	}
	if resp, body := h.get(t, "/v1/nope", h.acme()); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"code"`) {
		t.Errorf("unknown route: %d %s", resp.StatusCode, body)
	}
}

func testSteadyState(t *testing.T, h *harness) {
	acme := h.acme()
	c := h.createCase(t, h.acmeProvider(), "steady-acme")
	h.get(t, "/v1/cases/"+c.GetId(), acme) // warm: keys and the gateway's own token are there
	before := h.kcCalls.Load()
	for range 50 {
		if resp, body := h.get(t, "/v1/cases/"+c.GetId(), acme); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	if n := h.kcCalls.Load() - before; n != 0 {
		t.Fatalf("50 authenticated reads made %d calls to Keycloak", n)
	}
}

// testIntrospection: with AUTH_INTROSPECT on, a token revoked in Keycloak is refused by a verifier that has not
// seen it yet, and an active token costs one introspection however often it is used.
func testIntrospection(t *testing.T, h *harness) {
	v, err := auth.NewVerifier(auth.VerifierConfig{KeycloakURL: h.kc, Realm: testinfra.Realm, Audience: "casekeeper-api",
		Introspect: true, ClientID: "casekeeper-gateway", ClientSecret: "gatewayDevSecret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	active := h.acme()
	for range 5 {
		if _, err := v.Verify(t.Context(), active); err != nil {
			t.Fatalf("active token: %v", err)
		}
	}
	if n := v.Introspections(); n != 1 {
		t.Fatalf("introspections for one token used 5 times = %d", n)
	}
	revoked := h.acme()
	resp, err := http.PostForm(h.kc+"/realms/"+testinfra.Realm+"/protocol/openid-connect/revoke", url.Values{
		"token": {revoked}, "token_type_hint": {"access_token"}, "client_id": {"acme-backend"}, "client_secret": {"acmeBackendDevSecret"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: HTTP %d", resp.StatusCode)
	}
	if _, err := v.Verify(t.Context(), revoked); status.Code(auth.ToStatus(err)) != codes.Unauthenticated {
		t.Fatalf("revoked token: %v", err)
	}
}
