package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	h := withFailedAuthLimit(lim, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
