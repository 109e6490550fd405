package app

import (
	"context"
	"fmt"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// Incoming is one case event read from the bus with its encoded body.
type Incoming struct {
	Event *casekeeperv1.CaseEvent
	Body  []byte
	// Stored is when the CASES stream stored the event (the NATS server's clock).
	Stored time.Time
}

// Fanout turns case events into deliveries, one per (event, matching enabled endpoint).
type Fanout struct {
	Routes *Routes
	Store  Store
	Queue  Queue
	Now    func() time.Time
}

// Handle processes a batch of events in two round trips whatever its size: store the events (kept for resends;
// one stored before is left as it is) and enqueue the first attempts, whose message ids are deterministic in
// (event, endpoint). A delivery's record in the database is created by its first attempt (see
// mongostore.ApplyOutcomes for why); until then the delivery is the durable JetStream message. A redelivered batch
// repeats both steps without creating anything twice: the enqueue is deduplicated by message id and, past the
// duplicate window, by the attempt check of the deliverer.
func (f *Fanout) Handle(ctx context.Context, batch []Incoming) error {
	// Every endpoint created or changed before these events were stored was recorded in the registry before they
	// were, so once the table holds the registry's current revision none of them is missing from it.
	if err := f.Routes.Fresh(ctx); err != nil {
		return fmt.Errorf("%w: checking the routing table: %v", ErrRetryLater, err)
	}
	now := f.Now()
	var (
		evs  []delivery.Event
		jobs []natsqueue.Job
	)
	for _, in := range batch {
		e := in.Event
		routes := f.Routes.ForEvent(e.GetTenant(), e.GetType(), in.Stored)
		if len(routes) == 0 {
			continue
		}
		evs = append(evs, delivery.Event{ID: e.GetId(), Tenant: e.GetTenant(), Type: e.GetType(), CaseID: e.GetCaseId(),
			Version: e.GetCaseVersion(), OccurredAt: e.GetOccurredAt().AsTime(), Body: in.Body})
		for _, rt := range routes {
			id := delivery.DeliveryID(e.GetId(), rt.ID)
			jobs = append(jobs, natsqueue.Job{DeliveryID: id, Tenant: rt.Tenant, EndpointID: rt.ID, Attempt: 1, Event: in.Body})
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	// Both steps run at once, off each other's latency: the job carries the event, so the first attempt does not
	// need the stored copy, and the batch is acknowledged only when both are done (a crash repeats both).
	saved := make(chan error, 1)
	go func() { saved <- f.Store.SaveEvents(ctx, evs, now) }()
	errEnqueue := f.Queue.Enqueue(ctx, jobs)
	if err := <-saved; err != nil {
		return fmt.Errorf("%w: storing events: %v", ErrRetryLater, err)
	}
	if errEnqueue != nil {
		return fmt.Errorf("%w: %v", ErrRetryLater, errEnqueue)
	}
	return nil
}
