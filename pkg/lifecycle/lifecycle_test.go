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
