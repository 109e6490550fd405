package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/services/gateway/internal/clientaddr"
	"github.com/casekeeper/core/services/gateway/internal/ratelimit"
)

// RateLimited is the status of a refused call: ResourceExhausted with RetryInfo, which the HTTP side turns into
// 429 and Retry-After. The gRPC side (the policy's Admit) uses it too, so both answer alike.
func RateLimited(retry time.Duration) error {
	st := status.New(codes.ResourceExhausted, "rate limit exceeded; retry later")
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); err == nil {
		st = d
	}
	return st.Err()
}

// statusRecorder remembers the status written, for the failed-authentication budget.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// failedAuth is the budget of failed authentications per client address. Authenticated traffic is limited per
// client (azp) at the gRPC layer; an address is charged only for its 401s, so many good clients behind one proxy
// never share a budget, while a token-guessing loop from one address is answered with 429.
type failedAuth struct {
	lim *ratelimit.Limiter
	// addr is the client's address: the TCP peer, or X-Forwarded-For from a trusted proxy.
	addr *clientaddr.Resolver
	// verify checks a token when the budget is spent: a token that verifies is never refused by this budget,
	// whoever shares the client's address. Garbage costs no more than it did before (a malformed token fails before
	// any cryptography, a verified one is a cache hit), and unknown key ids fetch keys at most once per interval.
	verify auth.TokenVerifier
}

func (f failedAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := "ip:" + clientaddr.Key(f.addr.Of(r))
		if blocked, retry := f.lim.Exhausted(key); blocked && !f.verifies(r) {
			writeError(w, RateLimited(retry))
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized {
			f.lim.Allow(key)
		}
	})
}

func (f failedAuth) verifies(r *http.Request) bool {
	if f.verify == nil {
		return false
	}
	token, ok := bearerToken(r)
	if !ok {
		return false
	}
	_, err := f.verify.Verify(r.Context(), token)
	return err == nil
}

// bearerToken is the request's bearer token, if it has one.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

// withLimits bounds what one request may take: its body, and its time (long enough for the longest long-poll when
// it is one). Streams set their own write deadlines.
func withLimits(maxBody int64, timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			writeError(w, statusError(http.StatusRequestEntityTooLarge, codes.InvalidArgument,
				"request body larger than "+strconv.FormatInt(maxBody, 10)+" bytes"))
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		d := timeout
		if r.URL.Path == "/v1/events" {
			d += longPollMax
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + time.Second))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
