package lifecycle_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/lifecycle"
)

func TestFirstFailureStopsEveryWorker(t *testing.T) {
	stopped := make(chan string, 2)
	boom := errors.New("boom")
	err := lifecycle.Run(context.Background(), slog.New(slog.DiscardHandler),
		lifecycle.Worker{Name: "waits", Run: func(ctx context.Context) error { <-ctx.Done(); stopped <- "waits"; return nil }},
		lifecycle.Worker{Name: "fails", Run: func(ctx context.Context) error { return boom }},
	)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "fails") {
		t.Fatalf("got %v, want the failing worker's error named", err)
	}
	if got := <-stopped; got != "waits" {
		t.Fatal("the other worker was not stopped")
	}
}

func TestHTTPServerDrainsRequestsInFlight(t *testing.T) {
	lis, err := lifecycle.Listen("TEST_ADDR", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte("done"))
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lifecycle.Run(ctx, slog.New(slog.DiscardHandler), lifecycle.HTTPServer("http", srv, lis, 5*time.Second))
	}()
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + lis.Addr().String())
		if err != nil {
			result <- err.Error()
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 4)
		_, _ = resp.Body.Read(b)
		result <- string(b)
	}()
	<-started
	cancel()
	if got := <-result; got != "done" {
		t.Fatalf("request in flight got %q, want it drained", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestListenNamesThePortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = lifecycle.Listen("CASE_GRPC_ADDR", taken.Addr().String())
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) || !strings.Contains(err.Error(), "CASE_GRPC_ADDR") {
		t.Fatalf("got %v, want the address and its variable named", err)
	}
}

// A pass with more left comes back after the backlog pause, a finished or failed one after the interval; the loop
// ends with its context.
func TestRepeatPacesByWhatThePassSaid(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var at []time.Time
	var failures []error
	results := []struct {
		more bool
		err  error
	}{{more: true}, {more: true}, {err: errors.New("db down")}, {}}
	done := make(chan error, 1)
	go func() {
		done <- lifecycle.Repeat(ctx, 200*time.Millisecond, 10*time.Millisecond, func(context.Context) (bool, error) {
			at = append(at, time.Now())
			r := results[len(at)-1]
			if len(at) == len(results) {
				cancel()
			}
			return r.more, r.err
		}, func(err error) { failures = append(failures, err) })
	}()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Repeat did not end with its context")
	}
	if len(at) != 4 || len(failures) != 1 {
		t.Fatalf("%d passes, failures %v; want 4 passes and the one failure", len(at), failures)
	}
	// interval, then two backlog pauses, then the interval after the failure.
	if d := at[0].Sub(start); d < 150*time.Millisecond {
		t.Errorf("first pass after %v, want the interval", d)
	}
	if d := at[2].Sub(at[0]); d > 150*time.Millisecond {
		t.Errorf("passes with more left %v apart, want the backlog pause", d)
	}
	if d := at[3].Sub(at[2]); d < 150*time.Millisecond {
		t.Errorf("pass after a failure came %v later, want the interval", d)
	}
}
