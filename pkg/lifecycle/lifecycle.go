// Package lifecycle runs a service's long-lived loops (servers, consumers, relays) as workers under one supervisor:
// they start together, the first failure or the end of the context stops all of them, and each drains within a bound.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// Worker is one long-running loop. Run blocks until ctx ends (then drains and returns nil) or it fails.
type Worker struct {
	Name string
	Run  func(ctx context.Context) error
}

// Run starts every worker and waits for all of them. When the context ends or any worker returns, the others are
// told to stop. It returns the first failure, or nil for a clean stop.
func Run(ctx context.Context, log *slog.Logger, workers ...Worker) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.Run(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				once.Do(func() { firstErr = fmt.Errorf("%s: %w", w.Name, err) })
				log.Error("worker failed", "worker", w.Name, "error", err)
			} else {
				log.Debug("worker stopped", "worker", w.Name)
			}
			cancel()
		}()
	}
	wg.Wait()
	return firstErr
}

// Listen opens a TCP listener; a port in use fails with an error that names the address and its variable.
func Listen(variable, addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s (%s): %w — is another process using the port?", addr, variable, err)
	}
	return lis, nil
}

// HTTPServer serves srv on lis until ctx ends, then shuts down, waiting at most drain for requests in flight.
func HTTPServer(name string, srv *http.Server, lis net.Listener, drain time.Duration) Worker {
	return Worker{Name: name, Run: func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(lis) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		return nil
	}}
}

// GRPCServer serves srv on lis until ctx ends, then stops gracefully, forcing the stop after drain (streams such as
// watches never end by themselves).
func GRPCServer(name string, srv *grpc.Server, lis net.Listener, drain time.Duration) Worker {
	return Worker{Name: name, Run: func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(lis) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(drain):
			srv.Stop()
		}
		return nil
	}}
}

// Sleep waits for d or until ctx ends, and reports whether the full wait passed: loops that back off between tries
// stop at once on shutdown.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Repeat runs pass every interval until ctx ends. A pass that reports more work left (a bounded pass that stopped
// at its bound) runs again after backlog instead, so a backlog is worked off in steps of bounded cost; a failed
// pass goes to failed and is tried again after the interval. The periodic cleanups of the services share it.
func Repeat(ctx context.Context, every, backlog time.Duration, pass func(context.Context) (more bool, err error), failed func(error)) error {
	wait := every
	for Sleep(ctx, wait) {
		more, err := pass(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				failed(err)
			}
			wait = every
		case more:
			wait = backlog
		default:
			wait = every
		}
	}
	return nil
}
