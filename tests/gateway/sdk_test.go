package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/proto/webhookbody"
	casekeeper "github.com/casekeeper/core/sdk/go"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
)

// TestSDK runs the Go SDK (sdk/go) and the casekeeper CLI against one real stack: the real Keycloak, case
// service, webhook service and gateway on embedded NATS and FerretDB.
func TestSDK(t *testing.T) {
	h := newHarness(t, harnessOptions{realWebhooks: true})
	cli := testinfra.Build(t, "github.com/casekeeper/core/sdk/go/cmd/casekeeper")

	t.Run("ListenForwardsSignedWebhooks", func(t *testing.T) { testListenForwards(t, h, cli) })
	t.Run("CLICommands", func(t *testing.T) { testCLICommands(t, h, cli) })
	t.Run("EndpointsByClientCredentials", func(t *testing.T) { testEndpointsByClientCredentials(t, h, cli) })
	t.Run("ResumesAfterRestartWithoutGapOrDuplicate", func(t *testing.T) { testSDKResume(t, h) })
	t.Run("CLIKilledResumesWithoutGap", func(t *testing.T) { testCLIKilledResumes(t, h, cli) })
	t.Run("TokenRenewedBeforeExpiry", func(t *testing.T) { testSDKTokenRefresh(t, h) })
	t.Run("StreamsReconnectWithAFreshToken", func(t *testing.T) { testSDKStreamTokenExpiry(t, h) })
	t.Run("BookmarksAdvanceTheCursor", func(t *testing.T) { testSDKBookmarks(t, h) })
	// Last: it deletes feed entries, as the retention would.
	t.Run("ExpiredCursorIsResyncRequired", func(t *testing.T) { testSDKResync(t, h, cli) })
}

func (h *harness) issuer() string { return h.kc + "/realms/" + testinfra.Realm }

// sdkClient is an SDK client of the harness's gateway, short reconnect waits, with the given credentials.
func (h *harness) sdkClient(t testing.TB, opts ...casekeeper.Option) *casekeeper.Client {
	t.Helper()
	c, err := casekeeper.New(append([]casekeeper.Option{casekeeper.WithAPI(h.base), casekeeper.WithGRPC(h.gw.GRPCAddr()),
		casekeeper.WithCaseService(h.caseAddr), casekeeper.WithIssuer(h.issuer()),
		casekeeper.WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func acmeBackend() casekeeper.Option {
	return casekeeper.WithClientCredentials("acme-backend", "acmeBackendDevSecret")
}

// cliEnv is the environment of a casekeeper process talking to the harness.
func (h *harness) cliEnv(clientID, secret string) []string {
	return append(os.Environ(), "CASEKEEPER_API="+h.base, "CASEKEEPER_GRPC="+h.gw.GRPCAddr(),
		"CASEKEEPER_CASE_ADDR="+h.caseAddr, "CASEKEEPER_ISSUER="+h.issuer(),
		"CASEKEEPER_CLIENT_ID="+clientID, "CASEKEEPER_CLIENT_SECRET="+secret, "CASEKEEPER_TOKEN=")
}

// runCLI runs one casekeeper command to its end.
func runCLI(t *testing.T, cli string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Env = env
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("casekeeper %v: %v", args, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// A receiver verifies with pkg/webhooks what `casekeeper webhooks listen` forwards: the body the webhook service
// would send in the full format, signed with the secret listen printed, retried with the same webhook-id when the
// receiver fails the first attempt.
func testListenForwards(t *testing.T, h *harness, cli string) {
	var (
		verifier atomic.Pointer[webhooks.Verifier]
		mu       sync.Mutex
		received []*http.Request
		bodies   [][]byte
		verified []error
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v := verifier.Load()
		err := errors.New("no verifier yet")
		if v != nil {
			err = v.Verify(r.Header, body)
		}
		mu.Lock()
		received, bodies, verified = append(received, r), append(bodies, body), append(verified, err)
		n := len(received)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // the first attempt fails: listen tries again
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	acme := h.acme()
	from := h.head(t, acme)
	cmd := exec.Command(cli, "webhooks", "listen", "--forward-to", recv.URL+"/webhooks", "--after", from)
	cmd.Env = h.cliEnv("acme-backend", "acmeBackendDevSecret")
	listen := testinfra.StartProcess(t, cmd)
	secretLine := regexp.MustCompile(`Signing secret: (whsec_[A-Za-z0-9+/=]+)`)
	testinfra.Eventually(t, 15*time.Second, "listen prints its signing secret", func() bool {
		return secretLine.MatchString(listen.Output.String())
	})
	v, err := webhooks.NewVerifier([]string{secretLine.FindStringSubmatch(listen.Output.String())[1]})
	if err != nil {
		t.Fatalf("the printed secret: %v", err)
	}
	verifier.Store(v)

	// A case written by the KYC provider through the CLI.
	out, stderr, code := runCLI(t, cli, h.cliEnv("acme-provider", "acmeProviderDevSecret"), "cases", "create",
		"--request-id", "sdk-listen-1", "--ref", "sdk-listen-1", "--name", "Jane Listen", "--nationality", "DE")
	var created casekeeperv1.Case
	if code != 0 || protojson.Unmarshal([]byte(out), &created) != nil || created.GetId() == "" {
		t.Fatalf("cases create: exit %d, %s %s", code, out, stderr)
	}

	testinfra.Eventually(t, 20*time.Second, "the forward retried after a 503 and delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(received) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	if len(received) != 2 {
		t.Fatalf("%d requests for one event, want 2 (a failed attempt and its retry)", len(received))
	}
	for i, r := range received {
		if verified[i] != nil {
			t.Fatalf("attempt %d does not verify: %v", i+1, verified[i])
		}
		if r.Method != http.MethodPost || r.URL.Path != "/webhooks" || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("attempt %d: %s %s %v", i+1, r.Method, r.URL, r.Header)
		}
	}
	id := received[0].Header.Get(webhooks.HeaderID)
	if !strings.HasPrefix(id, "msg_") || received[1].Header.Get(webhooks.HeaderID) != id {
		t.Fatalf("webhook-ids %q and %q: want one msg_ id for both attempts", id, received[1].Header.Get(webhooks.HeaderID))
	}
	ev, err := webhooks.Decode(webhooks.FormatFull, bodies[1])
	if err != nil {
		t.Fatalf("the body is not a full payload: %v\n%s", err, bodies[1])
	}
	if caseID, version, _ := ev.CaseVersion(); ev.Type != events.TypeCreated || caseID != created.GetId() || version != 1 {
		t.Fatalf("forwarded %s of %s v%d, want the creation of %s", ev.Type, caseID, version, created.GetId())
	}
	// Byte for byte what the webhook service builds for that event.
	page, err := h.sdkClient(t, acmeBackend()).ListEvents(t.Context(), &casekeeperv1.ListCaseEventsRequest{After: from})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("the feed after %s: %v %v", from, page, err)
	}
	want, _ := webhookbody.Full(page.Events[0])
	if string(bodies[1]) != string(want) || string(bodies[0]) != string(want) {
		t.Fatalf("forwarded body\n%s\nwant the full payload\n%s", bodies[1], want)
	}
	testinfra.Eventually(t, 5*time.Second, "listen prints each status", func() bool {
		o := listen.Output.String()
		return strings.Contains(o, "503 Service Unavailable") && strings.Contains(o, "204 No Content")
	})
}

// The CLI's read commands and its errors: one line on stderr, exit status 1 (2 for a wrong command line).
func testCLICommands(t *testing.T, h *harness, cli string) {
	env := h.cliEnv("acme-backend", "acmeBackendDevSecret")
	tok, _, code := runCLI(t, cli, env, "token")
	if code != 0 || strings.Count(strings.TrimSpace(tok), ".") != 2 {
		t.Fatalf("token: exit %d, %q", code, tok)
	}
	c := h.createCase(t, h.acmeProvider(), "sdk-cli-1")
	out, stderr, code := runCLI(t, cli, env, "cases", "get", c.GetId())
	if code != 0 || !strings.Contains(out, `"id":"`+c.GetId()+`"`) || strings.Count(out, "\n") != 1 {
		t.Fatalf("cases get: exit %d, %s %s", code, out, stderr)
	}
	testinfra.Eventually(t, 10*time.Second, "the case in cases list", func() bool {
		out, _, code := runCLI(t, cli, env, "cases", "list")
		return code == 0 && strings.Contains(out, `"id":"`+c.GetId()+`"`)
	})
	// The feed from the start, until caught up: one JSON event per line, the case's creation among them.
	out, stderr, code = runCLI(t, cli, env, "events", "tail", "--types", events.TypeCreated)
	if code != 0 {
		t.Fatalf("events tail: exit %d, %s", code, stderr)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev casekeeperv1.CaseEvent
		if err := protojson.Unmarshal([]byte(line), &ev); err != nil || ev.GetType() != events.TypeCreated || ev.GetCursor() == "" {
			t.Fatalf("events tail line %q: %v", line, err)
		}
		found = found || ev.GetCaseId() == c.GetId()
	}
	if !found {
		t.Fatalf("events tail did not print the creation of %s:\n%s", c.GetId(), out)
	}
	for _, bad := range []struct {
		args []string
		env  []string
		code int
		msg  string
	}{
		{[]string{"cases", "get", "01a217c3-8edc-78c7-b208-5bf418d980cf"}, env, 1, "not found"},
		{[]string{"token"}, h.cliEnv("acme-backend", "wrong"), 1, "access token"},
		{[]string{"webhooks", "endpoints", "list"}, env, 1, "HTTP 403"},
		{[]string{"cases", "frobnicate"}, env, 2, "unknown command"},
		{[]string{"events", "tail", "--after"}, env, 2, "flag needs an argument"},
	} {
		_, stderr, code := runCLI(t, cli, bad.env, bad.args...)
		if code != bad.code || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "casekeeper: ") ||
			!strings.Contains(strings.ToLower(stderr), strings.ToLower(bad.msg)) {
			t.Errorf("casekeeper %v: exit %d, stderr %q; want exit %d and one line saying %q", bad.args, code, stderr, bad.code, bad.msg)
		}
	}
}

// The realm's acme-ops client (client credentials, webhooks:manage, tenant acme) manages acme's endpoints through
// the gateway's routes and the real webhook service.
func testEndpointsByClientCredentials(t *testing.T, h *harness, cli string) {
	ensureRealmClient(t, h.kc, "acme-ops")
	env := h.cliEnv("acme-ops", "acmeOpsDevSecret")
	out, stderr, code := runCLI(t, cli, env, "webhooks", "endpoints", "create", "--url", "https://hooks.acme.example/sdk",
		"--types", events.TypeStatusChanged+","+events.TypeRedacted)
	m := regexp.MustCompile(`endpoint (\S+)\nsecret\s+(whsec_\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("endpoints create: exit %d, %s %s", code, out, stderr)
	}
	id := m[1]
	out, stderr, code = runCLI(t, cli, env, "webhooks", "endpoints", "list")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "https://hooks.acme.example/sdk") ||
		!strings.Contains(out, events.TypeStatusChanged+","+events.TypeRedacted) {
		t.Fatalf("endpoints list: exit %d, %s %s", code, out, stderr)
	}
	// Another tenant's operations client does not see it.
	ensureRealmClient(t, h.kc, "globex-ops")
	if out, _, _ := runCLI(t, cli, h.cliEnv("globex-ops", "globexOpsDevSecret"), "webhooks", "endpoints", "list"); strings.Contains(out, id) {
		t.Fatalf("globex lists acme's endpoint:\n%s", out)
	}
	if out, stderr, code = runCLI(t, cli, env, "webhooks", "endpoints", "delete", id); code != 0 || !strings.Contains(out, "deleted "+id) {
		t.Fatalf("endpoints delete: exit %d, %s %s", code, out, stderr)
	}
	if out, _, _ = runCLI(t, cli, env, "webhooks", "endpoints", "list"); strings.Contains(out, id) {
		t.Fatalf("the deleted endpoint is still listed:\n%s", out)
	}
}

// follow runs Follow until the handler has taken n events, then stops it as a process that is shut down would
// (its context ends). It returns the ids handled.
func follow(t *testing.T, c *casekeeper.Client, o casekeeper.FollowOptions, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stop, stopNow := context.WithCancel(ctx)
	defer stopNow()
	var got []string
	err := c.Follow(stop, o, func(ctx context.Context, ev *casekeeperv1.CaseEvent) error {
		if err := ctx.Err(); err != nil {
			return err // shutting down: this event is not processed
		}
		got = append(got, ev.GetId())
		if len(got) == n {
			stopNow()
		}
		return nil
	})
	if ctx.Err() != nil {
		t.Fatalf("after %d of %d events the follower is still waiting: %v", len(got), n, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("follow: %v after %d events", err, len(got))
	}
	return got
}

// A follower stopped halfway and a new client on the same cursor file together see every event exactly once, in
// order, over each transport.
func testSDKResume(t *testing.T, h *harness) {
	for _, via := range []casekeeper.Transport{casekeeper.ViaPoll, casekeeper.ViaSSE, casekeeper.ViaGRPC} {
		t.Run(via.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "acme.cursor")
			store := casekeeper.NewFileCursorStore(path)
			if err := store.Save(t.Context(), h.head(t, h.acme())); err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range 6 {
				want = append(want, h.publish(t, "acme", fmt.Sprintf("resume-%s-%d", via, i), events.TypeCreated, 1).GetId())
			}
			o := casekeeper.FollowOptions{Via: via, Cursor: store}
			first := follow(t, h.sdkClient(t, acmeBackend()), o, 3)
			// A restart: a new client, a new store value on the same file.
			o.Cursor = casekeeper.NewFileCursorStore(path)
			second := follow(t, h.sdkClient(t, acmeBackend()), o, 3)
			if got := append(first, second...); !slices.Equal(got, want) {
				t.Fatalf("before the restart %v, after it %v; want %v", first, second, want)
			}
		})
	}
}

// recordingTransport notes the bearer token of every gateway request and counts the calls to Keycloak's token
// endpoint.
type recordingTransport struct {
	mu      sync.Mutex
	tokens  []string
	fetches int
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	if strings.HasSuffix(req.URL.Path, "/protocol/openid-connect/token") {
		r.fetches++
	} else {
		r.tokens = append(r.tokens, strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
	}
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recordingTransport) seen() (distinct, calls, fetches int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(slices.Compact(slices.Clone(r.tokens))), len(r.tokens), r.fetches
}

// A token is reused while it is fresh and replaced RefreshBefore ahead of its expiry: with the realm's 5-minute
// tokens and RefreshBefore 4m57s, each one serves about 3 s of calls.
func testSDKTokenRefresh(t *testing.T, h *harness) {
	rec := &recordingTransport{}
	c := h.sdkClient(t, acmeBackend(), casekeeper.WithHTTPClient(&http.Client{Transport: rec}),
		casekeeper.WithRefreshBefore(5*time.Minute-3*time.Second))
	deadline := time.Now().Add(7 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.ListEvents(t.Context(), &casekeeperv1.ListCaseEventsRequest{After: casekeeper.Latest}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	distinct, calls, fetches := rec.seen()
	if distinct < 2 || distinct > 4 || fetches != distinct || calls < 20 {
		t.Fatalf("%d calls with %d distinct tokens from %d fetches; want each token renewed after ~3 s (2 to 4 of them)",
			calls, distinct, fetches)
	}
}

// countingSource is a token source that counts the tokens it hands out.
type countingSource struct {
	src oauth2.TokenSource
	n   atomic.Int64
	at  atomic.Pointer[time.Time]
}

func (s *countingSource) Token() (*oauth2.Token, error) {
	tok, err := s.src.Token()
	if err == nil {
		now := time.Now()
		s.at.Store(&now)
		s.n.Add(1)
	}
	return tok, err
}

// A stream ends when its token expires; the SDK reconnects at once with a new token and resumes from its cursor.
// The gateway's clock is moved so that the stream's token has expired while a token issued now has not.
func testSDKStreamTokenExpiry(t *testing.T, h *harness) {
	defer h.clock.offset.Store(0)
	for _, via := range []casekeeper.Transport{casekeeper.ViaSSE, casekeeper.ViaGRPC} {
		t.Run(via.String(), func(t *testing.T) {
			h.clock.offset.Store(0)
			src := &countingSource{src: (&clientcredentialsConfig{h: h}).source()}
			c := h.sdkClient(t, casekeeper.WithTokenSource(src))
			store := &casekeeper.MemoryCursorStore{}
			_ = store.Save(t.Context(), h.head(t, h.acme()))
			ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
			defer cancel()
			got := make(chan string, 10)
			done := make(chan error, 1)
			go func() {
				done <- c.Follow(ctx, casekeeper.FollowOptions{Via: via, Cursor: store}, func(_ context.Context, ev *casekeeperv1.CaseEvent) error {
					got <- ev.GetId()
					return nil
				})
			}()
			first := h.publish(t, "acme", "expiry-"+via.String()+"-1", events.TypeCreated, 1).GetId()
			if id := receive(t, got, done); id != first {
				t.Fatalf("first event %s, want %s", id, first)
			}
			// The token is valid for exp + 30 s leeway = 330 s after it was issued. At issue + 11 s, a clock 320 s
			// ahead puts the stream's token past that, and leaves a new one 10 s.
			issued := *src.at.Load()
			time.Sleep(time.Until(issued.Add(11 * time.Second)))
			h.clock.offset.Store(int64(320 * time.Second))
			testinfra.Eventually(t, 8*time.Second, "a second token, for the reconnect", func() bool { return src.n.Load() >= 2 })
			second := h.publish(t, "acme", "expiry-"+via.String()+"-2", events.TypeCreated, 1).GetId()
			if id := receive(t, got, done); id != second {
				t.Fatalf("after the reconnect: %s, want %s", id, second)
			}
			h.clock.offset.Store(0)
			if n := src.n.Load(); n != 2 {
				t.Fatalf("%d tokens fetched, want 2 (the first, and one for the reconnect)", n)
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("follow ended with %v", err)
			}
			select {
			case id := <-got:
				t.Fatalf("event %s handed over twice or out of turn", id)
			default:
			}
		})
	}
}

func receive(t *testing.T, got <-chan string, done <-chan error) string {
	t.Helper()
	select {
	case id := <-got:
		return id
	case err := <-done:
		t.Fatalf("follow ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("no event within 15 s")
	}
	return ""
}

// clientcredentialsConfig is acme-backend's token source at the harness's Keycloak.
type clientcredentialsConfig struct{ h *harness }

func (c *clientcredentialsConfig) source() oauth2.TokenSource {
	return tokenSourceFunc(func() (*oauth2.Token, error) {
		tok := c.h.acme()
		return &oauth2.Token{AccessToken: tok, TokenType: "Bearer", Expiry: time.Now().Add(5 * time.Minute)}, nil
	})
}

type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

// An idle stream's bookmarks and an empty poll's renewed cursor move the stored position past events the filter
// leaves out, without calling the handler.
func testSDKBookmarks(t *testing.T, h *harness) {
	gw := h.startGateway(func(c *gatewaysvc.Config) { c.BookmarkInterval = 300 * time.Millisecond })
	acme := h.acme()
	from := h.head(t, acme)
	h.publish(t, "acme", "sdk-bookmark-1", events.TypeCreated, 1)
	h.publish(t, "acme", "sdk-bookmark-2", events.TypeCreated, 1)
	head := mustSeq(t, h.page(t, "/v1/events?after="+from, acme, 2).Events[1].Cursor)
	for _, via := range []casekeeper.Transport{casekeeper.ViaPoll, casekeeper.ViaSSE, casekeeper.ViaGRPC} {
		t.Run(via.String(), func(t *testing.T) {
			c := h.sdkClient(t, acmeBackend(), casekeeper.WithAPI("http://"+gw.HTTPAddr()), casekeeper.WithGRPC(gw.GRPCAddr()))
			store := &casekeeper.MemoryCursorStore{}
			_ = store.Save(t.Context(), from)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			handled := make(chan string, 10)
			done := make(chan error, 1)
			go func() {
				done <- c.Follow(ctx, casekeeper.FollowOptions{Via: via, Cursor: store, Types: []string{events.TypeRedacted},
					Wait: time.Second}, func(_ context.Context, ev *casekeeperv1.CaseEvent) error {
					handled <- ev.GetId()
					return nil
				})
			}()
			testinfra.Eventually(t, 10*time.Second, "the stored cursor at the head", func() bool {
				cur, _ := store.Load(t.Context())
				return cur != from && mustSeq(t, cur) == head
			})
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("follow ended with %v", err)
			}
			if len(handled) != 0 {
				t.Fatalf("the handler was called for %s", <-handled)
			}
		})
	}
}

// A stored cursor older than the retention, whose successors were deleted, stops every transport with
// ErrResyncRequired before the handler runs, leaving the store as it was; the CLI says to resync.
func testSDKResync(t *testing.T, h *harness, cli string) {
	acme := h.acme()
	from := h.head(t, acme)
	// A cursor at the head never expires: the one that does has an event after it.
	h.publish(t, "acme", "sdk-resync-1", events.TypeCreated, 1)
	h.publish(t, "acme", "sdk-resync-2", events.TypeCreated, 1)
	page := h.page(t, "/v1/events?after="+from, acme, 2)
	c1 := page.Events[0].Cursor
	aged := agedCursor(t, c1, 2*time.Hour) // the harness's retention is 1 h
	seq1, _ := cursorParts(t, c1)
	db := testinfra.ConnectMongo(t, h.mongoURI, h.db)
	if _, err := db.Collection("feed").DeleteMany(t.Context(), bson.D{{Key: "tenant", Value: "acme"},
		{Key: "seq", Value: bson.D{{Key: "$lte", Value: seq1}}}}); err != nil {
		t.Fatal(err)
	}
	for _, via := range []casekeeper.Transport{casekeeper.ViaPoll, casekeeper.ViaSSE, casekeeper.ViaGRPC} {
		t.Run(via.String(), func(t *testing.T) {
			store := &casekeeper.MemoryCursorStore{}
			_ = store.Save(t.Context(), aged)
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			err := h.sdkClient(t, acmeBackend()).Follow(ctx, casekeeper.FollowOptions{Via: via, Cursor: store},
				func(context.Context, *casekeeperv1.CaseEvent) error {
					t.Error("the handler ran on an expired cursor")
					return nil
				})
			if !errors.Is(err, casekeeper.ErrResyncRequired) {
				t.Fatalf("follow from an expired cursor: %v, want ErrResyncRequired", err)
			}
			if cur, _ := store.Load(t.Context()); cur != aged {
				t.Fatalf("the store holds %q, want the expired cursor left as it was", cur)
			}
		})
	}
	_, stderr, code := runCLI(t, cli, h.cliEnv("acme-backend", "acmeBackendDevSecret"), "events", "tail", "--after", aged)
	if code != 1 || !strings.Contains(stderr, "resync") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("events tail from an expired cursor: exit %d, %q", code, stderr)
	}
}

// ensureRealmClient creates a client of deploy/keycloak/casekeeper-realm.json, with its service account's realm
// roles, in the shared Keycloak when it is missing there: a Keycloak started before the client was added to the
// file does not import it again.
func ensureRealmClient(t *testing.T, kc, clientID string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "keycloak", "casekeeper-realm.json"))
	if err != nil {
		t.Fatal(err)
	}
	var realm struct {
		Clients []map[string]any `json:"clients"`
		Users   []struct {
			ServiceAccountClientID string   `json:"serviceAccountClientId"`
			RealmRoles             []string `json:"realmRoles"`
		} `json:"users"`
	}
	if err := json.Unmarshal(raw, &realm); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(realm.Clients, func(c map[string]any) bool { return c["clientId"] == clientID })
	if i < 0 {
		t.Fatalf("the realm file has no client %s", clientID)
	}
	a := kcAdmin{t: t, kc: kc}
	var found []struct {
		ID string `json:"id"`
	}
	a.do(http.MethodGet, "/clients?clientId="+clientID, nil, &found)
	if len(found) > 0 {
		return
	}
	a.ensureClient(realm.Clients[i])
	a.do(http.MethodGet, "/clients?clientId="+clientID, nil, &found)
	if len(found) != 1 {
		t.Fatalf("client %s not created", clientID)
	}
	var sa struct {
		ID string `json:"id"`
	}
	a.do(http.MethodGet, "/clients/"+found[0].ID+"/service-account-user", nil, &sa)
	for _, u := range realm.Users {
		if u.ServiceAccountClientID != clientID {
			continue
		}
		var roles []map[string]any
		for _, name := range u.RealmRoles {
			var role map[string]any
			a.do(http.MethodGet, "/roles/"+name, nil, &role)
			roles = append(roles, role)
		}
		if code := a.do(http.MethodPost, "/users/"+sa.ID+"/role-mappings/realm", roles, nil); code != http.StatusNoContent {
			t.Fatalf("roles of %s: HTTP %d", clientID, code)
		}
	}
}

// `casekeeper events tail --cursor-file` killed with SIGKILL while events keep arriving, then run again on the same
// file: the two runs together print every event in order, with at most the one event in flight at the kill
// printed twice (it was printed, its cursor not yet saved) and none missing — the file is never torn.
func testCLIKilledResumes(t *testing.T, h *harness, cli string) {
	env := h.cliEnv("acme-backend", "acmeBackendDevSecret")
	cursorFile := filepath.Join(t.TempDir(), "tail.cursor")
	if err := casekeeper.NewFileCursorStore(cursorFile).Save(t.Context(), h.head(t, h.acme())); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		want []string
	)
	stopPublishing := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stopPublishing:
				published <- nil
				return
			case <-time.After(5 * time.Millisecond):
			}
			ev := &casekeeperv1.CaseEvent{Id: fmt.Sprintf("acme-kill-%d", i), Type: events.TypeCreated, Tenant: "acme",
				CaseId: fmt.Sprintf("kill-%d", i), CaseVersion: 1, OccurredAt: timestamppb.Now(),
				Data: &casekeeperv1.Case{Id: fmt.Sprintf("kill-%d", i), Tenant: "acme", Version: 1}}
			msg, err := events.Message(ev)
			if err == nil {
				_, err = h.js.PublishMsg(context.Background(), msg)
			}
			if err != nil {
				published <- err
				return
			}
			mu.Lock()
			want = append(want, ev.GetId())
			mu.Unlock()
		}
	}()
	tail := exec.Command(cli, "events", "tail", "--cursor-file", cursorFile, "--types", events.TypeCreated, "--follow")
	tail.Env = env
	first := testinfra.StartProcess(t, tail)
	testinfra.Eventually(t, 20*time.Second, "the first run printing events", func() bool {
		return strings.Count(first.Output.String(), "\n") >= 30
	})
	first.Kill()
	time.Sleep(300 * time.Millisecond) // a few more events after the kill
	close(stopPublishing)
	if err := <-published; err != nil {
		t.Fatalf("publishing: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The second run reads until caught up, once the feed holds every event published.
	mustCursorOf(t, h, want[len(want)-1])
	out, stderr, code := runCLI(t, cli, env, "events", "tail", "--cursor-file", cursorFile, "--types", events.TypeCreated)
	if code != 0 {
		t.Fatalf("second run: exit %d, %s", code, stderr)
	}
	ids := func(s string) []string {
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
			var ev casekeeperv1.CaseEvent
			if line == "" || protojson.Unmarshal([]byte(line), &ev) != nil {
				continue // a line cut by the kill
			}
			got = append(got, ev.GetId())
		}
		return got
	}
	run1, run2 := ids(first.Output.String()), ids(out)
	if len(run1) == 0 || len(run2) == 0 || len(run1) >= len(want) {
		t.Fatalf("the kill did not fall mid-way: %d then %d of %d events", len(run1), len(run2), len(want))
	}
	t.Logf("%d events: %d printed before the kill, %d after the restart", len(want), len(run1), len(run2))
	if run1[len(run1)-1] == run2[0] {
		run2 = run2[1:] // the event in flight at the kill
	}
	if got := append(run1, run2...); !slices.Equal(got, want) {
		t.Fatalf("%d + %d events printed, want the %d published, in order, once each (the first run ended at %s, the second began at %s)",
			len(run1), len(run2), len(want), run1[len(run1)-1], run2[0])
	}
}

// mustCursorOf finds the cursor of the event with id in acme's feed.
func mustCursorOf(t *testing.T, h *harness, id string) string {
	t.Helper()
	var cursor string
	c := h.sdkClient(t, acmeBackend())
	testinfra.Eventually(t, 15*time.Second, "event "+id+" in the feed", func() bool {
		cursor = ""
		_ = c.Follow(t.Context(), casekeeper.FollowOptions{Cursor: &casekeeper.MemoryCursorStore{}, UntilCaughtUp: true, PageSize: 500},
			func(_ context.Context, ev *casekeeperv1.CaseEvent) error {
				if ev.GetId() == id {
					cursor = ev.GetCursor()
				}
				return nil
			})
		return cursor != ""
	})
	return cursor
}
