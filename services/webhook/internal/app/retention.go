package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// RetentionStore deletes what the delivery log keeps past its retention (mongostore.Store implements it).
type RetentionStore interface {
	// ExpireDeliveries deletes at most limit finished deliveries last changed before cutoff, with their attempts.
	ExpireDeliveries(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	// ExpireEvents deletes the event bodies earlier versions stored, stored before cutoff.
	ExpireEvents(ctx context.Context, cutoff time.Time) (int64, error)
	// ExpireOperations deletes the operational events recorded before cutoff.
	ExpireOperations(ctx context.Context, cutoff time.Time) (int64, error)
	// ExpireRedactions forgets the redactions recorded before cutoff.
	ExpireRedactions(ctx context.Context, cutoff time.Time) (int64, error)
	// ExpireHealth deletes the endpoint health buckets of periods that started before cutoff.
	ExpireHealth(ctx context.Context, cutoff time.Time) (int64, error)
}

// redactionsKept is how long a redaction is remembered at least, whatever the retention: an outcome of one of its
// deliveries may wait on WEBHOOK_OUTCOMES that long (its MaxAge) and must still be written erased.
const redactionsKept = 15 * 24 * time.Hour

// Retention deletes the delivery log's history older than Keep (WEBHOOK_DELIVERY_RETENTION): finished deliveries
// and their attempts, the event bodies earlier versions stored, and operational events. Open deliveries stay,
// however old. Every instance runs it: each pass deletes by the same rule, so two instances at once only share
// the work. A pass deletes at most Batch × MaxBatches deliveries; when it stopped at that bound, the next pass
// comes after Backlog instead of Every, so a backlog (the first pass on an old database) is worked off in steps of
// bounded cost.
type Retention struct {
	Store      RetentionStore
	Keep       time.Duration
	Every      time.Duration
	Backlog    time.Duration
	Batch      int
	MaxBatches int
	Log        *slog.Logger
	Now        func() time.Time
	// Expired counts the records this instance deleted, by kind: deliveries, events, operations.
	Expired *prometheus.CounterVec
}

// NewExpiredCounter is the series Retention counts on, registered on reg (nil: unregistered).
func NewExpiredCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhook_retention_deleted_total",
		Help: "Records deleted by the delivery log's retention on this instance: deliveries (with their attempts), events, operations."},
		[]string{"kind"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// Run makes a pass every Every (Backlog while one stopped at its bound) until ctx ends.
func (r *Retention) Run(ctx context.Context) error {
	return lifecycle.Repeat(ctx, r.Every, r.Backlog, r.Pass, func(err error) {
		r.Log.Warn("delivery log retention failed", "error", err)
	})
}

// Pass deletes what is older than the retention, within its bound; more reports that it stopped at the bound.
func (r *Retention) Pass(ctx context.Context) (more bool, err error) {
	cutoff := r.Now().Add(-r.Keep)
	var deliveries int64
	for range r.MaxBatches {
		n, err := r.Store.ExpireDeliveries(ctx, cutoff, r.Batch)
		deliveries += n
		r.count("deliveries", n)
		if err != nil {
			return false, err
		}
		// Fewer than a batch: nothing older is left (or another instance took some of it).
		if more = n >= int64(r.Batch); !more {
			break
		}
	}
	if deliveries > 0 {
		r.Log.Info("expired deliveries deleted", "count", deliveries, "before", cutoff.UTC().Format(time.RFC3339), "more", more)
	}
	if more {
		// What is left is there for the next pass; the collections below are small and can wait for it.
		return true, nil
	}
	events, err := r.Store.ExpireEvents(ctx, cutoff)
	r.count("events", events)
	if err != nil {
		return false, err
	}
	ops, err := r.Store.ExpireOperations(ctx, cutoff)
	r.count("operations", ops)
	if err != nil {
		return false, err
	}
	redactionCutoff := cutoff
	if kept := r.Now().Add(-redactionsKept); kept.Before(redactionCutoff) {
		redactionCutoff = kept
	}
	redactions, err := r.Store.ExpireRedactions(ctx, redactionCutoff)
	r.count("redactions", redactions)
	if err != nil {
		return false, err
	}
	// The health chart shows 7 days whatever the retention of the log it was counted from.
	health, err := r.Store.ExpireHealth(ctx, r.Now().Add(-delivery.HealthKept))
	r.count("health", health)
	if err != nil {
		return false, err
	}
	if events > 0 || ops > 0 || redactions > 0 || health > 0 {
		r.Log.Info("expired delivery log entries deleted", "events", events, "operations", ops, "redactions", redactions,
			"health_buckets", health)
	}
	return false, nil
}

func (r *Retention) count(kind string, n int64) {
	if r.Expired != nil && n > 0 {
		r.Expired.WithLabelValues(kind).Add(float64(n))
	}
}
