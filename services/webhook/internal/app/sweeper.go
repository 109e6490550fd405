package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// Sweeper is the safety net of crash recovery: an open delivery whose next attempt is overdue by more than Grace,
// with nothing waiting for it on the bus (no backlog on its endpoint, no schedule), is scheduled again. This covers
// a crash between recording an attempt and scheduling its retry, a resend whose enqueue failed, and a stream lost
// with NATS. Several instances may sweep at once: a schedule replaces an identical one, and a duplicate attempt
// message is dropped by the deliverer's attempt check.
type Sweeper struct {
	Store    Store
	Events   EventSource
	Queue    Queue
	Routes   *Routes
	Metrics  *Metrics
	Log      *slog.Logger
	Every    time.Duration
	Grace    time.Duration
	Now      func() time.Time
	LagProbe func(ctx context.Context) (fanout, endpoints uint64, err error)

	sweeps int
}

// gaugeEvery: the backlog count scans the deliveries on FerretDB (no index use), so it is sampled every few sweeps.
const gaugeEvery = 5

// Run sweeps every Every until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.Log.Warn("sweep failed", "error", err)
		}
	}
}

// Sweep runs one pass and refreshes the backlog gauges.
func (s *Sweeper) Sweep(ctx context.Context) error {
	if s.sweeps%gaugeEvery == 0 {
		if n, err := s.Store.CountStatus(ctx, delivery.StatusRetrying); err == nil {
			s.Metrics.RetryBacklog.Set(float64(n))
		}
	}
	s.sweeps++
	if s.LagProbe != nil {
		if f, e, err := s.LagProbe(ctx); err == nil {
			s.Metrics.ConsumerLag.WithLabelValues("fanout").Set(float64(f))
			s.Metrics.ConsumerLag.WithLabelValues("endpoints").Set(float64(e))
		}
	}
	overdue, err := s.Store.Overdue(ctx, s.Now().Add(-s.Grace), 1000)
	if err != nil {
		return err
	}
	busy := map[string]bool{}
	requeued := 0
	for _, d := range overdue {
		if b, seen := busy[d.EndpointID]; seen && b {
			continue
		} else if !seen {
			n, err := s.Queue.Backlog(ctx, d.EndpointID)
			if err != nil {
				return err
			}
			// A backlog means the delivery is probably waiting in it: leave it; it is swept once the backlog drains.
			busy[d.EndpointID] = n > 0
			if n > 0 {
				continue
			}
		}
		if rt, ok := s.Routes.Get(d.EndpointID); !ok || rt.Disabled {
			continue // the deliverer dead-letters it when its message arrives; nothing arrives for a disabled endpoint
		}
		job := natsqueue.Job{DeliveryID: d.ID, Tenant: d.Tenant, EndpointID: d.EndpointID, Attempt: d.AttemptCount + 1}
		if has, err := s.Queue.HasSchedule(ctx, job); err != nil || has {
			continue
		}
		body, err := eventBody(ctx, s.Events, s.Store, d)
		if err != nil {
			s.Log.Warn("overdue delivery without its event", "delivery", d.ID, "error", err)
			continue
		}
		job.Event, job.EventSeq = body, d.EventSeq
		if err := s.Queue.Schedule(ctx, job, s.Now()); err != nil {
			return err
		}
		requeued++
	}
	if requeued > 0 {
		s.Log.Info("overdue deliveries scheduled again", "count", requeued)
	}
	return nil
}
