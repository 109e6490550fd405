package httpsender

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheckAddr(t *testing.T) {
	refused := []string{"10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "::1", "169.254.169.254",
		"fe80::1", "0.0.0.0", "100.64.0.1", "fd00:ec2::254", "::ffff:10.0.0.1", "224.0.0.1", "::"}
	for _, s := range refused {
		if err := CheckAddr(netip.MustParseAddr(s), false); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s allowed", s)
		}
	}
	for _, s := range []string{"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"} {
		if err := CheckAddr(netip.MustParseAddr(s), false); err != nil {
			t.Errorf("%s refused: %v", s, err)
		}
	}
	if err := CheckAddr(netip.MustParseAddr("127.0.0.1"), true); err != nil {
		t.Errorf("loopback refused in dev: %v", err)
	}
	if err := CheckAddr(netip.MustParseAddr("10.0.0.1"), true); err == nil {
		t.Error("private allowed in dev")
	}
}

// The check happens at dial time: "localhost" is a name, resolved only when connecting, and still refused.
func TestDialTimeRefusal(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits++ }))
	defer srv.Close()
	s, err := New(Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	out := s.Send(context.Background(), Request{URL: url, Body: []byte("{}")})
	if !errors.Is(out.Result.Err, ErrForbiddenAddress) || hits != 0 {
		t.Fatalf("outcome %+v, hits %d", out, hits)
	}
}

func TestSendRecordsStatusExcerptAndRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(strings.Repeat("x", 10000)))
	}))
	defer srv.Close()
	s, _ := New(Options{Timeout: 2 * time.Second, AllowLoopback: true})
	out := s.Send(context.Background(), Request{URL: srv.URL, Body: []byte("{}")})
	if out.Result.StatusCode != 429 || out.Result.RetryAfter != 7*time.Second || len(out.Response) != 4096 {
		t.Fatalf("outcome status %d retry %s excerpt %d", out.Result.StatusCode, out.Result.RetryAfter, len(out.Response))
	}
}

func TestTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer srv.Close()
	s, _ := New(Options{Timeout: 100 * time.Millisecond, AllowLoopback: true})
	out := s.Send(context.Background(), Request{URL: srv.URL, Body: []byte("{}")})
	if out.Result.Err == nil || out.Latency > time.Second {
		t.Fatalf("outcome %+v", out)
	}
}
