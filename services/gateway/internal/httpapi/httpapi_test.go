package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/services/gateway/internal/clientaddr"
	"github.com/casekeeper/core/services/gateway/internal/ratelimit"
)

func TestErrorsAreJSONWithTheRightStatusAndHeaders(t *testing.T) {
	cases := []struct {
		err    error
		status int
		header string
	}{
		{RateLimited(1500 * time.Millisecond), http.StatusTooManyRequests, "Retry-After"},
		{status.Error(codes.Unauthenticated, "x"), http.StatusUnauthorized, "WWW-Authenticate"},
		{status.Error(codes.PermissionDenied, "x"), http.StatusForbidden, ""},
		{status.Error(codes.NotFound, "x"), http.StatusNotFound, ""},
		{statusError(http.StatusRequestEntityTooLarge, codes.InvalidArgument, "big"), http.StatusRequestEntityTooLarge, ""},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		writeError(w, c.err)
		var body struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if w.Code != c.status || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Message == "" {
			t.Errorf("%v: %d %s", c.err, w.Code, w.Body)
		}
		if c.header != "" && w.Header().Get(c.header) == "" {
			t.Errorf("%v: no %s", c.err, c.header)
		}
	}
	w := httptest.NewRecorder()
	writeError(w, RateLimited(1500*time.Millisecond))
	if w.Header().Get("Retry-After") != "2" {
		t.Fatalf("Retry-After = %q", w.Header().Get("Retry-After"))
	}
}

func TestETagComparison(t *testing.T) {
	if !etagMatches(`W/"abc"`, `W/"abc"`) || !etagMatches(`"x", W/"abc"`, `W/"abc"`) || !etagMatches(`*`, `"a"`) {
		t.Fatal("matching tags refused")
	}
	if etagMatches(`W/"abd"`, `W/"abc"`) || etagMatches(`W/"abc"`, "") {
		t.Fatal("different tags matched")
	}
}

func TestFailedAuthBudgetPerAddress(t *testing.T) {
	lim := ratelimit.New(1, 2)
	h := failedAuth{lim: lim, addr: &clientaddr.Resolver{}}.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	codes := []int{}
	for range 4 {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/v1/cases/x", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		h.ServeHTTP(w, r)
		codes = append(codes, w.Code)
	}
	if codes[0] != 401 || codes[1] != 401 || codes[2] != 429 {
		t.Fatalf("codes = %v", codes)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/v1/cases/x", nil)
	r.RemoteAddr = "192.0.2.2:1234"
	h.ServeHTTP(w, r)
	if w.Code != 401 {
		t.Fatalf("another address limited: %d", w.Code)
	}
}

type tokenIs string

func (v tokenIs) Verify(_ context.Context, raw string) (auth.Principal, error) {
	if raw == string(v) {
		return auth.Principal{Subject: "s"}, nil
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

// Behind a trusted proxy, the budget is the client's (X-Forwarded-For), not the proxy's; and a token that verifies
// passes while its address's budget is spent.
func TestFailedAuthBudgetBehindATrustedProxy(t *testing.T) {
	proxies, err := clientaddr.New([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	h := failedAuth{lim: ratelimit.New(1, 2), addr: proxies, verify: tokenIs("good")}.wrap(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "Bearer good" {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(http.StatusUnauthorized)
		}))
	call := func(client, token string) int {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/v1/cases/x", nil)
		r.RemoteAddr = "10.0.0.2:1234" // the ingress
		r.Header.Set("X-Forwarded-For", client)
		r.Header.Set("Authorization", "Bearer "+token)
		h.ServeHTTP(w, r)
		return w.Code
	}
	for range 3 {
		call("203.0.113.7", "garbage")
	}
	if got := call("203.0.113.7", "garbage"); got != http.StatusTooManyRequests {
		t.Fatalf("garbage after the budget: %d, want 429", got)
	}
	if got := call("198.51.100.9", "garbage"); got != http.StatusUnauthorized {
		t.Fatalf("another client behind the same proxy: %d, want 401 (its own budget)", got)
	}
	if got := call("203.0.113.7", "good"); got != http.StatusOK {
		t.Fatalf("a valid token from the exhausted address: %d, want 200", got)
	}
}
