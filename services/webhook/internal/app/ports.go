package app

import (
	"context"
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
	SaveEvents(ctx context.Context, evs []delivery.Event, now time.Time) error
	GetEvent(ctx context.Context, id string) (delivery.Event, error)
	GetDelivery(ctx context.Context, tenant, id string) (delivery.Delivery, error)
	Requeue(ctx context.Context, tenant, id string, now time.Time) (delivery.Delivery, error)
	DeadSince(ctx context.Context, tenant, endpointID string, since time.Time, limit int) ([]delivery.Delivery, error)
	Overdue(ctx context.Context, before time.Time, limit int) ([]delivery.Delivery, error)
	CountStatus(ctx context.Context, st delivery.Status) (int64, error)
	RecordOperation(ctx context.Context, op delivery.Operation) error
}

// Loader reads delivery state (batched).
type Loader interface {
	Do(ctx context.Context, id string) (*delivery.Delivery, error)
}

// Recorder writes attempt outcomes (batched).
type Recorder interface {
	Do(ctx context.Context, o delivery.Outcome) (struct{}, error)
}

// Queue moves jobs (natsqueue.Queue implements it).
type Queue interface {
	Enqueue(ctx context.Context, jobs []natsqueue.Job) error
	Schedule(ctx context.Context, j natsqueue.Job, at time.Time) error
	HasSchedule(ctx context.Context, j natsqueue.Job) (bool, error)
	Backlog(ctx context.Context, endpointID string) (uint64, error)
	RemoveEndpoint(ctx context.Context, tenant, endpointID string) error
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
