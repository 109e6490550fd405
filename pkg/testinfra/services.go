package testinfra

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// StopWithin bounds how long a test waits for what it started (an in-process service, a process) to stop before
// it reports the hang and moves on.
const StopWithin = 30 * time.Second

// Services runs in-process services for one test, each in its own goroutine, until Stop or the end of the test.
//
//	svcs := testinfra.StartServices(t)
//	svc, err := casesvc.New(svcs.Context(), cfg, log)
//	...
//	svcs.Run("case service", svc.Run)
type Services struct {
	t      testing.TB
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	once   sync.Once
}

// StartServices returns an empty group whose services are stopped when t finishes.
func StartServices(t testing.TB) *Services {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Services{t: t, ctx: ctx, cancel: cancel}
	t.Cleanup(s.Stop)
	return s
}

// Context is the context to build the services with and that Run hands them; Stop cancels it.
func (s *Services) Context() context.Context { return s.ctx }

// Run runs run(Context()) in its own goroutine; an error it returns fails the test when the group stops.
func (s *Services) Run(name string, run func(context.Context) error) {
	s.wg.Go(func() {
		if err := run(s.ctx); err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, fmt.Errorf("%s stopped with %w", name, err))
			s.mu.Unlock()
		}
	})
}

// Stop cancels the services' context and waits for all of them to return, up to StopWithin. Calling it again
// does nothing.
func (s *Services) Stop() {
	s.once.Do(func() {
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(StopWithin):
			s.t.Errorf("testinfra: the services did not stop within %s", StopWithin)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, err := range s.errs {
			s.t.Error(err)
		}
	})
}
