package webhooks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// DefaultMaxBodyBytes bounds the body the middleware reads; a case with its documents and checks is a few KiB.
const DefaultMaxBodyBytes = 1 << 20

type eventKey struct{}

// FromContext returns the event the middleware verified, or nil outside it.
func FromContext(ctx context.Context) *Event {
	e, _ := ctx.Value(eventKey{}).(*Event)
	return e
}

// MiddlewareOption changes the middleware.
type MiddlewareOption func(*middleware)

// WithMaxBodyBytes changes DefaultMaxBodyBytes; larger bodies get 413.
func WithMaxBodyBytes(n int64) MiddlewareOption {
	return func(m *middleware) {
		if n > 0 {
			m.maxBody = n
		}
	}
}

// WithRejectHook is called with every refused request and why, to log it. Do not log the body: it may hold
// personal data.
func WithRejectHook(f func(r *http.Request, status int, err error)) MiddlewareOption {
	return func(m *middleware) { m.onReject = f }
}

type middleware struct {
	v        *Verifier
	format   Format
	maxBody  int64
	onReject func(*http.Request, int, error)
	next     http.Handler
}

// Middleware verifies every request with v, decodes its body as format and calls next with the *Event in the
// request's context (FromContext). It answers itself, without calling next:
//
//	405 to anything but POST;
//	413 to a body over the limit;
//	400 to missing or malformed webhook headers, and to a verified body that is not of the expected format
//	    (fix the endpoint's payload format: we retry, and every retry fails the same way);
//	401 to a signature made with another secret and to a timestamp outside the tolerance (a replay, or a clock
//	    that is off: we retry later with a fresh timestamp and signature).
//
// next answers 2xx once the event is stored (or was seen before), anything else to be sent it again later.
func Middleware(v *Verifier, format Format, next http.Handler, opts ...MiddlewareOption) http.Handler {
	m := &middleware{v: v, format: format, maxBody: DefaultMaxBodyBytes, next: next}
	for _, o := range opts {
		o(m)
	}
	return m
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		m.reject(w, r, http.StatusMethodNotAllowed, errors.New("webhooks: method is not POST"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, m.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			m.reject(w, r, http.StatusRequestEntityTooLarge, err)
			return
		}
		m.reject(w, r, http.StatusBadRequest, err)
		return
	}
	if err := m.v.Verify(r.Header, body); err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, ErrMissingHeaders) || errors.Is(err, ErrBadTimestamp) {
			status = http.StatusBadRequest
		}
		m.reject(w, r, status, err)
		return
	}
	e, err := Decode(m.format, body)
	if err != nil {
		m.reject(w, r, http.StatusBadRequest, err)
		return
	}
	e.ID = r.Header.Get(HeaderID)
	// Verify accepted the timestamp, so it parses.
	e.SignedAt, _ = parseTimestamp(r.Header.Get(HeaderTimestamp))
	m.next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), eventKey{}, e)))
}

// reject answers with a short, fixed reason: the sender records the first KiB of the answer with the attempt,
// which is what the endpoint's owner sees in the delivery log.
func (m *middleware) reject(w http.ResponseWriter, r *http.Request, status int, err error) {
	if m.onReject != nil {
		m.onReject(r, status, err)
	}
	msg := http.StatusText(status)
	switch {
	case errors.Is(err, ErrNoMatchingSignature):
		msg = "no signature matches the secret"
	case errors.Is(err, ErrTimestampOutOfTolerance):
		msg = "webhook-timestamp is outside the tolerance of " + m.v.tolerance.String()
	case errors.Is(err, ErrMissingHeaders), errors.Is(err, ErrBadTimestamp):
		msg = err.Error()
	case errors.Is(err, ErrBadPayload):
		// Not err itself: decoder messages may quote the body, which may hold personal data.
		msg = "the body is not a " + m.format.String() + " payload"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(msg)+1))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}
