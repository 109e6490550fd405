package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// Sweeper is the recovery pass for a delivery queue that lost its messages: after MongoDB and NATS were restored
// from backups taken at different times, or the WEBHOOK_DELIVERIES stream was lost, an open delivery whose next
// attempt is overdue by more than Grace, with nothing waiting for it on the bus (no backlog on its endpoint, no
// schedule), is scheduled again. It is not part of normal operation: every attempt, retry and resend is a durable
// message, and a crash between two steps leaves the message unacknowledged, so JetStream hands it out again and
// the deliverer's attempt check completes the step. The pass reads the open deliveries that are due, which on
// FerretDB is a scan of every delivery stored: turn it on (WEBHOOK_SWEEP_INTERVAL) for the recovery only. Several
// instances may sweep at once: a schedule replaces an identical one, and a duplicate attempt message is dropped by
// the attempt check.
type Sweeper struct {
	Store  Store
	Events EventSource
	Queue  Queue
	Routes *Routes
	Log    *slog.Logger
	Every  time.Duration
	Grace  time.Duration
	Now    func() time.Time
}

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

// Sweep runs one pass.
func (s *Sweeper) Sweep(ctx context.Context) error {
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
		body, err := attemptBody(ctx, s.Events, s.Store, d)
		if err != nil {
			s.Log.Warn("overdue delivery without its event", "delivery", d.ID, "error", err)
			continue
		}
		job.Event, job.EventSeq, job.EventID = body, d.EventSeq, d.EventID
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
