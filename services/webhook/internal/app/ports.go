package app

import (
	"context"
	"errors"
	"time"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/httpsender"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// Store is what the use cases need of storage (mongostore.Store implements it).
type Store interface {
	EndpointLister
	CreateEndpoint(ctx context.Context, e delivery.Endpoint) error
	GetEndpoint(ctx context.Context, tenant, id string) (delivery.Endpoint, error)
	ListEndpoints(ctx context.Context, tenant, after string, limit int) ([]delivery.Endpoint, error)
	ReplaceEndpoint(ctx context.Context, e delivery.Endpoint) error
	DeleteEndpoint(ctx context.Context, tenant, id string) error
	DisableEndpoint(ctx context.Context, id, reason string, now time.Time) (bool, error)
	SetFailingSince(ctx context.Context, id string, t time.Time) error
	// GetEvent reads an event stored by earlier versions, for records that lack the event's stream position.
	GetEvent(ctx context.Context, id string) (delivery.Event, error)
	GetDelivery(ctx context.Context, tenant, id string) (delivery.Delivery, error)
	DeadSince(ctx context.Context, tenant, endpointID string, since time.Time, limit int) ([]delivery.Delivery, error)
	Overdue(ctx context.Context, before time.Time, limit int) ([]delivery.Delivery, error)
	RecordOperation(ctx context.Context, op delivery.Operation) error
}

// Loader reads a delivery's record from the delivery log in the database (nil when it has none).
type Loader interface {
	Do(ctx context.Context, id string) (*delivery.Delivery, error)
}

// OutcomeLog is the record of attempts and resends (natsqueue.Outcomes): an outcome is on record once Record
// returned; the database's delivery log is fed from it in batches.
type OutcomeLog interface {
	Record(ctx context.Context, o delivery.Outcome) error
	// Last is the state left by the delivery's newest outcome not yet in the database (nil when none).
	Last(ctx context.Context, tenant, deliveryID string) (*delivery.Delivery, error)
}

// EventSource reads case events back from their stream (natsqueue.CaseEvents), for resends and the sweeper.
type EventSource interface {
	// Body returns the encoded event at seq, delivery.ErrEventGone when the stream no longer holds it.
	Body(ctx context.Context, seq uint64, eventID string) ([]byte, error)
}

// eventBody is what a delivery sends: its event read back from the case event stream or, for a record written
// before deliveries kept the event's position, from the event store of those versions.
func eventBody(ctx context.Context, src EventSource, store Store, d delivery.Delivery) ([]byte, error) {
	if d.EventSeq != 0 {
		return src.Body(ctx, d.EventSeq, d.EventID)
	}
	ev, err := store.GetEvent(ctx, d.EventID)
	if errors.Is(err, delivery.ErrNotFound) {
		return nil, delivery.ErrEventGone
	}
	return ev.Body, err
}

// attemptBody is the event a new attempt of d carries: read back from the stream, or none when the stream no
// longer holds it but the record knows the event well enough for the thin form, which the deliverer then sends
// (Deliverer.Handle). ErrEventGone only for a record too old for that.
func attemptBody(ctx context.Context, src EventSource, store Store, d delivery.Delivery) ([]byte, error) {
	body, err := eventBody(ctx, src, store, d)
	if errors.Is(err, delivery.ErrEventGone) && d.EventSeq != 0 && d.CaseVersion != 0 {
		return nil, nil
	}
	return body, err
}

// currentState is a delivery's state: the newer of the outcome log's and the database's. The log is read first: an
// outcome leaves the log only after the database has it, so whatever the log no longer holds, the database read
// that follows sees.
func currentState(ctx context.Context, log OutcomeLog, db Loader, tenant, id string) (*delivery.Delivery, error) {
	fromLog, err := log.Last(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	fromDB, err := db.Do(ctx, id)
	if err != nil {
		return nil, err
	}
	return delivery.Newer(fromLog, fromDB), nil
}

// Queue moves jobs (natsqueue.Queue implements it).
type Queue interface {
	Enqueue(ctx context.Context, jobs []natsqueue.Job) error
	Schedule(ctx context.Context, j natsqueue.Job, at time.Time) error
	Wake(ctx context.Context, j natsqueue.Job) error
	HasSchedule(ctx context.Context, j natsqueue.Job) (bool, error)
	Backlog(ctx context.Context, endpointID string) (uint64, error)
	RemoveEndpoint(ctx context.Context, tenant, endpointID string) error
	Pause(ctx context.Context, endpointID string, until time.Time) error
	Resume(ctx context.Context, endpointID string) error
}

// Sender posts one webhook.
type Sender interface {
	Send(ctx context.Context, r httpsender.Request) httpsender.Outcome
}

// Registry orders endpoint changes against case events across instances (natsqueue.Registry; docs/design.md,
// "Routing across replicas").
type Registry interface {
	// Created records a new endpoint and returns the time it is routed from, on the clock that stamps case events.
	Created(ctx context.Context, endpointID string) (time.Time, error)
	// Removed forgets what Created recorded, once the endpoint is deleted.
	Removed(ctx context.Context, endpointID string) error
	// Changed records, after the change is stored, that an endpoint of the tenant changed.
	Changed(ctx context.Context, tenant, endpointID string) error
	// Latest is the revision of the newest recorded change.
	Latest(ctx context.Context) (uint64, error)
}

// Transformer runs an endpoint's jq program on a full payload within the limits of a transform (jqsandbox.Pool
// implements it). Failures are payload.ErrTransform, and payload.ErrLimit when a limit was exceeded.
type Transformer interface {
	Run(ctx context.Context, tenant, program string, input []byte) ([]byte, error)
}

// Notifier tells every instance that endpoints changed.
type Notifier interface {
	EndpointsChanged()
}
