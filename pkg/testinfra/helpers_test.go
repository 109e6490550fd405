package testinfra_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/testinfra"
)

func TestRestartableNATS_KeepsItsURLAndStreams(t *testing.T) {
	t.Parallel()
	srv := testinfra.StartRestartableNATS(t)
	js := testinfra.JetStream(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	url := srv.URL()
	srv.Restart(100 * time.Millisecond)
	if srv.URL() != url {
		t.Fatalf("URL %s after the restart, was %s", srv.URL(), url)
	}
	testinfra.WaitStream(t, js, "S", 10*time.Second)
	if _, err := js.Publish(ctx, "s.1", nil); err != nil {
		t.Fatalf("publish after the restart: %v", err)
	}
}

func TestServices_StopReturnsOnceEveryServiceHasReturned(t *testing.T) {
	t.Parallel()
	svcs := testinfra.StartServices(t)
	stopped := make(chan struct{})
	svcs.Run("waiter", func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return nil
	})
	svcs.Stop()
	select {
	case <-stopped:
	default:
		t.Fatal("Stop returned before the service did")
	}
	svcs.Stop() // again, as the cleanup does
}

func TestServices_AnErrorFailsTheTest(t *testing.T) {
	t.Parallel()
	rec := &errorRecorder{TB: t}
	svcs := testinfra.StartServices(rec)
	svcs.Run("broken", func(context.Context) error { return errors.New("boom") })
	svcs.Stop()
	if !strings.Contains(rec.msg, "broken stopped with boom") {
		t.Fatalf("reported %q", rec.msg)
	}
}

type errorRecorder struct {
	testing.TB
	msg string
}

func (r *errorRecorder) Error(args ...any) { r.msg += fmt.Sprint(args...) }

func TestProcess_WaitReadyThenKill(t *testing.T) {
	t.Parallel()
	ready := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ready.Close()
	p := testinfra.StartProcess(t, exec.Command("sh", "-c", "echo started; exec sleep 60"))
	p.WaitReady(t, ready.URL, 5*time.Second)
	// The ready URL answers at once, so the shell may not have printed yet: killing it first (as this test did)
	// sometimes left nothing to collect on a loaded machine.
	testinfra.Eventually(t, 5*time.Second, "the output collected", func() bool {
		return strings.Contains(p.Output.String(), "started")
	})
	p.Kill()
	select {
	case <-p.Exited():
	default:
		t.Fatal("not exited after Kill")
	}
}

func TestRecorder_AnswersAsToldAndKeepsEveryRequest(t *testing.T) {
	t.Parallel()
	rc := testinfra.NewRecorder(t, func(n int, _ *http.Request) int { return 200 + n })
	for range 2 {
		resp, err := http.Post(rc.URL, "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	got := rc.Requests()
	if len(got) != 2 || got[0].Status != 201 || got[1].Status != 202 || string(got[1].Body) != "hello" {
		t.Fatalf("requests: %+v", got)
	}
}

func TestMetricAndHistogram(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# TYPE up gauge\nup 1\nd_bucket{le=\"0.5\"} 3\nd_bucket{le=\"+Inf\"} 4\nd_count 4\n")
	}))
	defer srv.Close()
	if v := testinfra.Metric(t, srv.URL, "up"); v != 1 {
		t.Fatalf("up = %v", v)
	}
	h := testinfra.Histogram(t, srv.URL, "d")
	if len(h) != 2 || h[0.5] != 3 {
		t.Fatalf("histogram = %v", h)
	}
}
