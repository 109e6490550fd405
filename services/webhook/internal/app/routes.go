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
// for it. Every reload first reads the registry's newest revision; Fresh compares that revision with the registry's
// current one, so a caller that needs the table to hold every change made so far (the fan-out, before it judges a
// batch) reloads only when some instance changed an endpoint since. Announcements of a change and a reload every
// RefreshEvery keep idle instances (whose endpoint loops follow the table) current.
type Routes struct {
	store    EndpointLister
	registry Registry
	log      *slog.Logger

	// applied is the registry revision the table is known to include; freshMu lets one reload serve every caller
	// of Fresh that waits meanwhile.
	applied atomic.Uint64
	freshMu sync.Mutex

	mu       sync.RWMutex
	byTenant map[string][]*Route
	byID     map[string]*Route
	limiters map[string]*rate.Limiter
	loaded   chan struct{}
	onChange []func(map[string]*Route)
}

// NewRoutes returns an empty table; Reload fills it.
func NewRoutes(store EndpointLister, registry Registry, log *slog.Logger) *Routes {
	return &Routes{store: store, registry: registry, log: log, byTenant: map[string][]*Route{}, byID: map[string]*Route{},
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

// Fresh returns once the table holds every endpoint change the registry had recorded when it was called.
func (r *Routes) Fresh(ctx context.Context) error {
	latest, err := r.registry.Latest(ctx)
	if err != nil {
		return err
	}
	if latest <= r.applied.Load() {
		return nil
	}
	r.freshMu.Lock()
	defer r.freshMu.Unlock()
	if latest <= r.applied.Load() {
		return nil // reloaded by another caller meanwhile
	}
	return r.Reload(ctx)
}

// Reload reads every endpoint and swaps the table. The registry's revision is read first: every change recorded
// by then was stored before, so the table read afterwards includes it.
func (r *Routes) Reload(ctx context.Context) error {
	rev, err := r.registry.Latest(ctx)
	if err != nil {
		return err
	}
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
	if rev > r.applied.Load() {
		r.applied.Store(rev) // under mu: reloads swap the table one at a time
	}
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

// ForEvent returns the enabled endpoints of the tenant that want this event type and existed when it was stored (a
// new endpoint does not receive the tenant's history when the fan-out replays older events). stored is the CASES
// stream's time of the event and an endpoint's CreatedAt the registry's time of its creation: both the NATS
// servers' clock. Call Fresh first.
func (r *Routes) ForEvent(tenant, eventType string, stored time.Time) []*Route {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Route
	for _, rt := range r.byTenant[tenant] {
		if !rt.Disabled && rt.Matches(eventType) && !stored.Before(rt.CreatedAt) {
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
