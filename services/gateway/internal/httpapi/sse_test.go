package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/logging"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/audit"
	"github.com/casekeeper/core/services/gateway/internal/clientaddr"
	"github.com/casekeeper/core/services/gateway/internal/feed"
	"github.com/casekeeper/core/services/gateway/internal/grpcapi"
	"github.com/casekeeper/core/services/gateway/internal/notify"
)

// tokens is a verifier that knows a fixed set of tokens and the principals they stand for.
type tokens struct {
	mu sync.Mutex
	m  map[string]auth.Principal
}

func (v *tokens) Verify(_ context.Context, raw string) (auth.Principal, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p, ok := v.m[raw]; ok && time.Now().Before(p.ExpiresAt) {
		return p, nil
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

type emptyFeed struct{}

func (emptyFeed) Head(context.Context, string) (int64, error)             { return 0, nil }
func (emptyFeed) After(context.Context, feed.Query) ([]feed.Entry, error) { return nil, nil }
func (emptyFeed) Oldest(context.Context, string) (int64, bool, error)     { return 0, false, nil }

type noAudit struct{}

func (noAudit) Record(context.Context, audit.Record) error { return nil }

// sseServer is the SSE endpoint over the real query server and the real authentication interceptor, in process.
func sseServer(t *testing.T, v auth.TokenVerifier, maxStreams int) *httptest.Server {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.StreamInterceptor(auth.StreamServerInterceptor(v, auth.Policy{Roles: grpcapi.Roles})))
	casekeeperv1.RegisterCaseQueryServiceServer(srv, &grpcapi.Server{Feed: emptyFeed{}, Notifier: notify.NewHub(),
		Audit: noAudit{}, Log: logging.Discard(), Recheck: time.Hour, MaxStreamsPerClient: maxStreams})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///self", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	a := &API{query: casekeeperv1.NewCaseQueryServiceClient(conn), addr: &clientaddr.Resolver{}}
	hs := httptest.NewServer(http.HandlerFunc(a.streamEvents))
	t.Cleanup(hs.Close)
	return hs
}

func openSSE(t *testing.T, ctx context.Context, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func reader(subject string, expires time.Time) auth.Principal {
	return auth.Principal{Subject: subject, ClientID: "acme-backend", Tenant: "acme", Roles: []string{auth.RoleCasesRead}, ExpiresAt: expires}
}

func TestSSEEndsWhenTheTokenExpires(t *testing.T) {
	start := time.Now()
	v := &tokens{m: map[string]auth.Principal{"short": reader("s", start.Add(400*time.Millisecond))}}
	hs := sseServer(t, v, 8)
	resp := openSSE(t, t.Context(), hs.URL, "short")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The stream tells the client why it ends, then closes: reading reaches EOF.
	done := make(chan string)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		done <- b.String()
	}()
	var body string
	select {
	case body = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5 s after its token expired")
	}
	if time.Since(start) < 350*time.Millisecond {
		t.Fatalf("stream ended before the token expired: %q", body)
	}
	if !strings.Contains(body, "event: error\n") || !strings.Contains(body, "access token expired") ||
		!strings.Contains(body, "reconnect with a fresh token") || !strings.Contains(body, `"code":16`) {
		t.Fatalf("final event does not tell the client to reconnect with a fresh token:\n%s", body)
	}
}

func TestSSEStreamsAreCappedPerPrincipal(t *testing.T) {
	later := time.Now().Add(time.Hour)
	v := &tokens{m: map[string]auth.Principal{"a": reader("s", later), "b": reader("other", later)}}
	hs := sseServer(t, v, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range 2 {
		resp := openSSE(t, ctx, hs.URL, "a")
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream within the cap: %d", resp.StatusCode)
		}
	}
	resp := openSSE(t, ctx, hs.URL, "a")
	defer resp.Body.Close()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusTooManyRequests ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(e.Message, "at most 2") {
		t.Fatalf("stream over the cap: %d %s %+v %v", resp.StatusCode, resp.Header.Get("Content-Type"), e, err)
	}
	other := openSSE(t, ctx, hs.URL, "b")
	defer other.Body.Close()
	if other.StatusCode != http.StatusOK {
		t.Fatalf("another principal's stream: %d", other.StatusCode)
	}
}
