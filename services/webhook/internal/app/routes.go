package app

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/payload"
)

// Route is an endpoint ready to deliver to: whether its jq program compiles, checked once, and its rate limiter.
type Route struct {
	delivery.Endpoint
	// Compiles is false for FormatJQ when the stored program no longer compiles; programs run in jqsandbox.
	Compiles bool
	Limiter  *rate.Limiter // nil without a rate limit; per instance
	// failing caches FailingSince between a write and the next reload, so that a run of failures costs one write.
	failing atomic.Int64
	// disabling makes this instance disable the endpoint once, whatever the number of attempts that ask for it.
	disabling atomic.Bool
}

// EndpointLister is what the routing table needs of the store.
type EndpointLister interface {
	AllEndpoints(ctx context.Context) ([]delivery.Endpoint, error)
}

// Routes is the in-memory table of every endpoint, so that neither the fan-out nor an attempt reads the database
// for it. It is reloaded when any instance announces a change and, as a safety net against a lost notification,
// every RefreshEvery.
type Routes struct {
	store EndpointLister
	log   *slog.Logger

	mu       sync.RWMutex
	byTenant map[string][]*Route
	byID     map[string]*Route
	limiters map[string]*rate.Limiter
	loaded   chan struct{}
	onChange []func(map[string]*Route)
}

// NewRoutes returns an empty table; Reload fills it.
func NewRoutes(store EndpointLister, log *slog.Logger) *Routes {
	return &Routes{store: store, log: log, byTenant: map[string][]*Route{}, byID: map[string]*Route{},
		limiters: map[string]*rate.Limiter{}, loaded: make(chan struct{})}
}

// OnChange registers a function called with the new table after every reload.
func (r *Routes) OnChange(f func(map[string]*Route)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onChange = append(r.onChange, f)
}

// Loaded is closed after the first successful reload.
func (r *Routes) Loaded() <-chan struct{} { return r.loaded }

// Reload reads every endpoint and swaps the table.
func (r *Routes) Reload(ctx context.Context) error {
	eps, err := r.store.AllEndpoints(ctx)
	if err != nil {
		return err
	}
	byTenant := map[string][]*Route{}
	byID := make(map[string]*Route, len(eps))
	r.mu.Lock()
	limiters := make(map[string]*rate.Limiter, len(eps))
	for _, e := range eps {
		rt := &Route{Endpoint: e}
		rt.failing.Store(unixNano(e.FailingSince))
		if e.Format == delivery.FormatJQ {
			if _, err := payload.Compile(e.JQ); err == nil {
				rt.Compiles = true
			} else {
				r.log.Warn("stored jq transform does not compile", "endpoint", e.ID, "error", err)
			}
		}
		if e.RateLimit > 0 {
			// Keep the limiter across reloads, so that a reload does not hand out a fresh burst.
			l := r.limiters[e.ID]
			if l == nil {
				l = rate.NewLimiter(rate.Limit(e.RateLimit), e.RateLimit)
			} else if l.Limit() != rate.Limit(e.RateLimit) {
				l.SetLimit(rate.Limit(e.RateLimit))
				l.SetBurst(e.RateLimit)
			}
			limiters[e.ID] = l
			rt.Limiter = l
		}
		byID[e.ID] = rt
		byTenant[e.Tenant] = append(byTenant[e.Tenant], rt)
	}
	r.byTenant, r.byID, r.limiters = byTenant, byID, limiters
	listeners := append([]func(map[string]*Route){}, r.onChange...)
	r.mu.Unlock()
	select {
	case <-r.loaded:
	default:
		close(r.loaded)
	}
	for _, f := range listeners {
		f(byID)
	}
	return nil
}

// ForEvent returns the enabled endpoints of the tenant that want this event type and existed when it occurred (a
// new endpoint does not receive the tenant's history when the fan-out replays older events).
func (r *Routes) ForEvent(tenant, eventType string, occurred time.Time) []*Route {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Route
	for _, rt := range r.byTenant[tenant] {
		if !rt.Disabled && rt.Matches(eventType) && !occurred.Before(rt.CreatedAt) {
			out = append(out, rt)
		}
	}
	return out
}

// Get returns one endpoint's route.
func (r *Routes) Get(id string) (*Route, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rt, ok := r.byID[id]
	return rt, ok
}

// All returns every route.
func (r *Routes) All() []*Route {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Route, 0, len(r.byID))
	for _, rt := range r.byID {
		out = append(out, rt)
	}
	return out
}

// Subscriber delivers change notifications.
type Subscriber interface {
	Subscribe(subject string, handler func()) (unsubscribe func(), err error)
}

// Watch reloads on every notification (coalescing bursts) and every refreshEvery until ctx ends.
func (r *Routes) Watch(ctx context.Context, sub Subscriber, subject string, refreshEvery time.Duration) error {
	kick := make(chan struct{}, 1)
	unsub, err := sub.Subscribe(subject, func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}
	defer unsub()
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-t.C:
		}
		if err := r.Reload(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reloading endpoints failed", "error", err)
		}
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
