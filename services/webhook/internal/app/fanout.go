package app

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/tracing"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// Incoming is one case event read from the bus with its encoded body.
type Incoming struct {
	Event *casekeeperv1.CaseEvent
	Body  []byte
	// Stored is when the CASES stream stored the event (the NATS server's clock), and Seq where.
	Stored time.Time
	Seq    uint64
	// Trace is the span of the event's publish (from its message headers): its fan-out joins that trace.
	Trace trace.SpanContext
}

// Fanout turns case events into deliveries, one per (event, matching enabled endpoint).
type Fanout struct {
	Routes *Routes
	Queue  Queue
	// Redactions is told of every redacted case, so that the delivery log forgets what its attempts carried.
	Redactions RedactionLog
	// Erased is told of every redacted case too, so that no replica sends a queued first attempt of it in full.
	Erased ErasedMarker
	// Lanes orders the deliveries of endpoints that deliver per case (natsqueue.CaseLanes); nil: none does.
	Lanes Lanes
}

// Lanes keeps, per (endpoint, case), the open deliveries in version order (natsqueue.CaseLanes).
type Lanes interface {
	Lane(ctx context.Context, key string) ([]natsqueue.LaneEntry, error)
	Append(ctx context.Context, key string, add ...natsqueue.LaneEntry) error
	Remove(ctx context.Context, key, deliveryID string) ([]natsqueue.LaneEntry, error)
}

// ErasedMarker records a redacted case for every replica's deliverer (natsqueue.ErasedCases).
type ErasedMarker interface {
	Mark(ctx context.Context, tenant, caseID string) error
}

// RedactionLog records redactions of cases in the outcome log (natsqueue.Outcomes), where the delivery-log
// projector meets them in order with the attempts.
type RedactionLog interface {
	Redacted(ctx context.Context, r delivery.Redaction) error
}

// Handle processes a batch of events in one round trip to JetStream whatever its size: it enqueues the first
// attempts, whose message ids are deterministic in (event, endpoint). Nothing is written to the database: the job
// carries the event and its position on the CASES stream, from where a resend reads it again, and a delivery's
// record in the database is created from its first attempt's outcome (see mongostore.ApplyOutcomes); until then
// the delivery is the durable JetStream message. A redelivered batch enqueues nothing twice: the enqueue is
// deduplicated by message id and, past the duplicate window, by the attempt check of the deliverer.
func (f *Fanout) Handle(ctx context.Context, batch []Incoming) (err error) {
	// Every endpoint created or changed before these events were stored was recorded in the registry before they
	// were, so once the table holds the registry's current revision none of them is missing from it.
	if err := f.Routes.Fresh(ctx); err != nil {
		return fmt.Errorf("%w: checking the routing table: %v", ErrRetryLater, err)
	}
	var (
		jobs  []natsqueue.Job
		spans []trace.Span
	)
	// Every event's span ends with the round, failed or not.
	defer func() {
		for _, span := range spans {
			tracing.End(span, err)
		}
	}()
	for _, in := range batch {
		e := in.Event
		// One span per event, in the trace of its write, ended once its first attempts are enqueued; every attempt
		// of its deliveries is a child of it.
		_, span := tracing.Tracer().Start(trace.ContextWithRemoteSpanContext(ctx, in.Trace), "fan out case event",
			trace.WithSpanKind(trace.SpanKindConsumer))
		if span.IsRecording() {
			span.SetAttributes(attribute.String("casekeeper.event_id", e.GetId()), attribute.String("casekeeper.event_type", e.GetType()))
		}
		spans = append(spans, span)
		if e.GetType() == events.TypeRedacted {
			// Rare, and one publish: recorded whether or not the tenant has endpoints, since deliveries made to
			// endpoints deleted since are in the delivery log too.
			r := delivery.Redaction{Tenant: e.GetTenant(), CaseID: e.GetCaseId(), EventID: e.GetId(), At: in.Stored}
			if err := f.Redactions.Redacted(ctx, r); err != nil {
				return fmt.Errorf("%w: %v", ErrRetryLater, err)
			}
			if f.Erased != nil {
				if err := f.Erased.Mark(ctx, r.Tenant, r.CaseID); err != nil {
					return fmt.Errorf("%w: %v", ErrRetryLater, err)
				}
			}
		}
		for _, rt := range f.Routes.ForEvent(e.GetTenant(), e.GetType(), in.Stored) {
			id := delivery.DeliveryID(e.GetId(), rt.ID)
			jobs = append(jobs, natsqueue.Job{DeliveryID: id, Tenant: rt.Tenant, EndpointID: rt.ID, Attempt: 1, Event: in.Body,
				EventSeq: in.Seq, EventID: e.GetId(), Trace: span.SpanContext()})
			if rt.PerCase && f.Lanes != nil {
				// In its case's lane before it is queued, so that no replica sends it ahead of an earlier one.
				if err := f.Lanes.Append(ctx, natsqueue.LaneKey(rt.ID, e.GetCaseId()), natsqueue.LaneEntry{DeliveryID: id, EventSeq: in.Seq, Attempt: 1, EventID: e.GetId()}); err != nil {
					return fmt.Errorf("%w: %v", ErrRetryLater, err)
				}
			}
		}
	}
	if err := f.Queue.Enqueue(ctx, jobs); err != nil {
		return fmt.Errorf("%w: %v", ErrRetryLater, err)
	}
	return nil
}
