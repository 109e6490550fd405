package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// maxRecover bounds one RecoverFailed call; the caller repeats it for more.
const maxRecover = 10000

// Deliveries holds the use cases on deliveries: resend and recover (queries go straight to the store).
type Deliveries struct {
	Store    Store
	Events   EventSource
	Outcomes OutcomeLog
	Queue    Queue
	// Lanes orders the deliveries of per-case endpoints (natsqueue.CaseLanes); nil: none is.
	Lanes Lanes
	Now   func() time.Time
}

// ErrTestDelivery is a resend of a test event: a test asks what the endpoint answers now, so a new one is sent
// instead (SendTest).
var ErrTestDelivery = errors.New("a test event is not resent: send a new test event")

// Resend queues one more attempt of a delivery now, whatever its state; the webhook-id stays the same. Nothing is
// recorded before the attempt is made: the queued attempt is the resend's record, and its outcome follows it onto
// the outcome log. It returns the delivery as the resend leaves it: pending, due now.
func (u *Deliveries) Resend(ctx context.Context, tenant, id string) (delivery.Delivery, error) {
	// The record may not show an attempt whose outcome is still on its way to the database: the log is read first,
	// for the reason currentState gives.
	fromLog, err := u.Outcomes.Last(ctx, tenant, id)
	if err != nil {
		return delivery.Delivery{}, err
	}
	d, err := u.Store.GetDelivery(ctx, tenant, id)
	if err != nil {
		return delivery.Delivery{}, err
	}
	if d.Test {
		return delivery.Delivery{}, ErrTestDelivery
	}
	if cur := delivery.Newer(fromLog, &d); cur != &d {
		d.AttemptCount = cur.AttemptCount
	}
	body, err := attemptBody(ctx, u.Events, u.Store, d)
	if err != nil {
		return delivery.Delivery{}, fmt.Errorf("event of delivery %s: %w", id, err)
	}
	job := natsqueue.Job{DeliveryID: d.ID, Tenant: d.Tenant, EndpointID: d.EndpointID, Attempt: d.AttemptCount + 1,
		Event: body, EventSeq: d.EventSeq, EventID: d.EventID, Resend: true}
	if u.Lanes != nil {
		// On a per-case endpoint a resend takes its place at the end of its case's lane: it is sent after the
		// case's deliveries still open, one at a time like them.
		ep, err := u.Store.GetEndpoint(ctx, tenant, d.EndpointID)
		if err != nil && !errors.Is(err, delivery.ErrNotFound) {
			return delivery.Delivery{}, err
		}
		if err == nil && ep.PerCase {
			if err := u.Lanes.Append(ctx, natsqueue.LaneKey(d.EndpointID, d.CaseID),
				natsqueue.LaneEntry{DeliveryID: d.ID, EventSeq: d.EventSeq, Attempt: job.Attempt, EventID: d.EventID, Resend: true}); err != nil {
				return delivery.Delivery{}, err
			}
		}
	}
	if err := u.Queue.Enqueue(ctx, []natsqueue.Job{job}); err != nil {
		return delivery.Delivery{}, err
	}
	d.Status, d.NextAttemptAt = delivery.StatusPending, u.Now()
	return d, nil
}

// Recover resends every dead delivery of the endpoint that died since the time; it returns how many.
func (u *Deliveries) Recover(ctx context.Context, tenant, endpointID string, since time.Time) (int, error) {
	if _, err := u.Store.GetEndpoint(ctx, tenant, endpointID); err != nil {
		return 0, err
	}
	dead, err := u.Store.DeadSince(ctx, tenant, endpointID, since, maxRecover)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range dead {
		if d.Test {
			continue // a test is sent again by sending a new one
		}
		if _, err := u.Resend(ctx, tenant, d.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
