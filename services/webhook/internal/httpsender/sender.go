package httpsender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// Options configure a Sender.
type Options struct {
	// Timeout bounds one request, from dial to the end of the response excerpt.
	Timeout time.Duration
	// AllowLoopback lets requests reach 127.0.0.0/8 and ::1 (the dev server and tests).
	AllowLoopback bool
	// UserAgent is sent with every request.
	UserAgent string
}

// Sender posts webhooks. Safe for concurrent use; it keeps connections alive per host.
type Sender struct {
	client  *http.Client
	timeout time.Duration
	ua      string
}

// New validates the options and builds the client.
func New(o Options) (*Sender, error) {
	if o.Timeout <= 0 {
		return nil, errors.New("httpsender: timeout must be positive")
	}
	if o.UserAgent == "" {
		o.UserAgent = "Casekeeper-Webhooks/1"
	}
	dialer := &net.Dialer{Timeout: min(o.Timeout, 10*time.Second), KeepAlive: 30 * time.Second, Control: control(o.AllowLoopback)}
	tr := &http.Transport{
		// No proxy: a proxy would dial on our behalf and bypass the address check.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &Sender{
		client: &http.Client{
			Transport: tr,
			// A redirect is a failed attempt: following it would send signed data to a URL nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: o.Timeout,
		ua:      o.UserAgent,
	}, nil
}

// Request is one POST.
type Request struct {
	URL    string
	Header http.Header // custom and signature headers
	Body   []byte
}

// Outcome is what the attempt recorded and what the policy needs.
type Outcome struct {
	Result   delivery.Result
	Latency  time.Duration
	Response string // the first delivery.ResponseExcerpt bytes of the body
	// Sent is the request's headers as they went out (nil when no request was made).
	Sent http.Header
}

// Send posts the request and never returns an error: failures are part of the outcome.
func (s *Sender) Send(ctx context.Context, r Request) Outcome {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Outcome{Result: delivery.Result{Err: fmt.Errorf("building request: %w", err)}}
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.ua)
	sent := req.Header.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		return Outcome{Result: delivery.Result{Err: simplify(err)}, Latency: time.Since(start), Sent: sent}
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, delivery.ResponseExcerpt))
	// Drain a little more so that the connection can be reused; give up on large bodies.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	out := Outcome{
		Result:   delivery.Result{StatusCode: resp.StatusCode},
		Latency:  time.Since(start),
		Response: string(excerpt),
		Sent:     sent,
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		out.Result.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return out
}

// retryAfter parses delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// simplify keeps the cause a receiver's owner can act on, without the Go-specific wrapping.
func simplify(err error) error {
	if errors.Is(err, ErrForbiddenAddress) {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			return op.Err
		}
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timed out waiting for the endpoint")
	}
	return err
}
