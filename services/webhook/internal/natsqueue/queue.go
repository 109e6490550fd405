// Package natsqueue carries deliveries on JetStream. Each delivery attempt is a message on
// webhooks.deliver.<tenant>.<endpoint> in the WEBHOOK_DELIVERIES work-queue stream, and every endpoint has its own
// durable consumer whose MaxAckPending is the endpoint's concurrency: a slow or failing endpoint fills only its own
// consumer, never a slot another endpoint needs. A retry does not wait in the consumer (a NakWithDelay would hold an
// ack-pending slot for hours): it is a scheduled message (nats-server ≥ 2.12, Nats-Schedule "@at …") on
// webhooks.retry.<tenant>.<endpoint>.<delivery>, which the server itself publishes to the deliver subject when due.
// One schedule subject per delivery makes rescheduling idempotent: a newer schedule on the subject replaces the older.
package natsqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/casekeeper/core/pkg/tracing"
)

// Stream holds the delivery work and the retry schedules.
const Stream = "WEBHOOK_DELIVERIES"

// ChangesSubject carries endpoint-change notifications (core NATS, not stored): every instance reloads its routing
// table when one arrives.
const ChangesSubject = "webhooks.endpoints.changed"

// Headers of a delivery message; the body is the event (binary protobuf CaseEvent).
const (
	HeaderDelivery = "Ck-Delivery-Id"
	HeaderAttempt  = "Ck-Attempt"
	HeaderTenant   = "Ck-Tenant"
	HeaderEndpoint = "Ck-Endpoint-Id"
	// HeaderEventSeq is the event's position on the CASES stream and HeaderEventID its id (absent in jobs queued by
	// earlier versions): a retry carries no event, and is sent what the stream holds there when it is due.
	HeaderEventSeq = "Ck-Event-Seq"
	HeaderEventID  = "Ck-Event-Id"
	// HeaderResend marks an attempt asked for by a resend: it is made even when the delivery is closed.
	HeaderResend = "Ck-Resend"
)

// DeliverSubject is where the attempts of one endpoint wait.
func DeliverSubject(tenant, endpointID string) string {
	return "webhooks.deliver." + tenant + "." + endpointID
}

func retrySubject(tenant, endpointID, deliveryID string) string {
	return "webhooks.retry." + tenant + "." + endpointID + "." + deliveryID
}

// ConsumerName is the durable consumer of one endpoint.
func ConsumerName(endpointID string) string { return "ep_" + endpointID }

// MaxAge bounds how long the queue keeps a message that no consumer takes (an endpoint's consumer lost, or paused
// for good). A retry waits here as a schedule until it is due, so every wait of the retry schedule must be well
// below it: the service refuses a WEBHOOK_RETRY_SCHEDULE with a wait (jitter included) longer than half of it.
const MaxAge = 14 * 24 * time.Hour

// StreamConfig is the work-queue stream: a message leaves once acknowledged.
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Stream,
		Description: "Webhook delivery attempts, one subject per endpoint, and their retry schedules.",
		Subjects:    []string{"webhooks.deliver.>", "webhooks.retry.>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		MaxAge:      MaxAge,
		// Deduplicates the fan-out re-publishing after a crash (message id = delivery id + attempt).
		Duplicates:        10 * time.Minute,
		AllowMsgSchedules: true,
		AllowRollup:       true,
	}
}

// Job is one attempt to make.
type Job struct {
	DeliveryID string
	Tenant     string
	EndpointID string
	Attempt    int
	Event      []byte
	EventSeq   uint64
	EventID    string
	// Resend is an attempt asked for by an administrator, made whatever the delivery's state (once: a resend is
	// still attempt AttemptCount+1, and the attempt check drops a second message for it).
	Resend bool
	// Redelivered is set when JetStream delivers the message again (it was not acknowledged in time).
	Redelivered bool
	// Seq is the message's position in the queue's stream (0 for a job not read from it): what claims an attempt
	// (AttemptClaims).
	Seq uint64
	// Trace is the span the job was made in (the event's fan-out), carried in the message headers: every attempt,
	// retries included, is a span of the event's trace.
	Trace trace.SpanContext
}

func (j Job) msg(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = j.Event
	m.Header.Set(HeaderDelivery, j.DeliveryID)
	m.Header.Set(HeaderAttempt, strconv.Itoa(j.Attempt))
	m.Header.Set(HeaderTenant, j.Tenant)
	m.Header.Set(HeaderEndpoint, j.EndpointID)
	if j.EventSeq != 0 {
		m.Header.Set(HeaderEventSeq, strconv.FormatUint(j.EventSeq, 10))
		m.Header.Set(HeaderEventID, j.EventID)
	}
	if j.Resend {
		m.Header.Set(HeaderResend, "1")
	}
	if j.Trace.IsValid() {
		tracing.Inject(trace.ContextWithSpanContext(context.Background(), j.Trace), tracing.Headers(m.Header))
	}
	return m
}

// ErrBadMessage is a message that is not a delivery job; it is terminated, never retried.
var ErrBadMessage = errors.New("natsqueue: not a delivery message")

// ParseJob reads a job from a message.
func ParseJob(m jetstream.Msg) (Job, error) {
	j, err := parseJob(m.Headers(), m.Data())
	if err != nil {
		return Job{}, err
	}
	if md, err := m.Metadata(); err == nil {
		j.Redelivered, j.Seq = md.NumDelivered > 1, md.Sequence.Stream
	}
	return j, nil
}

func parseJob(h nats.Header, data []byte) (Job, error) {
	n, err := strconv.Atoi(h.Get(HeaderAttempt))
	j := Job{DeliveryID: h.Get(HeaderDelivery), Tenant: h.Get(HeaderTenant), EndpointID: h.Get(HeaderEndpoint), Attempt: n, Event: data}
	if err != nil || n < 1 || j.DeliveryID == "" || j.EndpointID == "" || j.Tenant == "" {
		return Job{}, ErrBadMessage
	}
	if seq := h.Get(HeaderEventSeq); seq != "" {
		if j.EventSeq, err = strconv.ParseUint(seq, 10, 64); err != nil {
			return Job{}, ErrBadMessage
		}
	}
	j.Resend, j.EventID = h.Get(HeaderResend) == "1", h.Get(HeaderEventID)
	j.Trace = tracing.Extract(tracing.Headers(h))
	if len(j.Event) == 0 && (j.EventSeq == 0 || j.EventID == "") {
		return Job{}, ErrBadMessage
	}
	return j, nil
}

// Queue publishes jobs.
type Queue struct {
	js jetstream.JetStream
}

// New returns a queue on js; the stream must exist (StreamConfig, declared by the service at start-up).
func New(js jetstream.JetStream) *Queue { return &Queue{js: js} }

// Enqueue publishes jobs for now and waits until JetStream stored all of them. The message id makes a repeated
// enqueue of the same attempt (a redelivered event after a crash) a no-op within the duplicate window.
func (q *Queue) Enqueue(ctx context.Context, jobs []Job) error {
	if len(jobs) == 0 {
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(jobs))
	for _, j := range jobs {
		m := j.msg(DeliverSubject(j.Tenant, j.EndpointID))
		m.Header.Set(jetstream.MsgIDHeader, j.DeliveryID+"."+strconv.Itoa(j.Attempt))
		f, err := q.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("enqueue %s: %w", j.DeliveryID, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("enqueue %s: %w", f.Msg().Header.Get(HeaderDelivery), err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Schedule publishes a job for later: the server delivers it to the endpoint's subject at `at` (whole seconds,
// rounded up). A later Schedule of the same delivery replaces this one.
//
// A job that knows its event's position on CASES is scheduled without the event: a retry may wait for days, and the
// queue should not keep a copy of the case for that long. When it is due it is sent what CASES holds there, and
// only the thin form (ids, type, version) once the event was erased with its redacted case.
func (q *Queue) Schedule(ctx context.Context, j Job, at time.Time) error {
	if j.EventSeq != 0 && j.EventID != "" {
		j.Event = nil
	}
	m := j.msg(retrySubject(j.Tenant, j.EndpointID, j.DeliveryID))
	if r := at.Truncate(time.Second); r.Before(at) {
		at = r.Add(time.Second)
	}
	m.Header.Set("Nats-Schedule", "@at "+at.UTC().Format(time.RFC3339))
	m.Header.Set("Nats-Schedule-Target", DeliverSubject(j.Tenant, j.EndpointID))
	if _, err := q.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("schedule %s: %w", j.DeliveryID, err)
	}
	return nil
}

// Wake queues a job now that may already wait in the stream as a schedule: a per-case delivery whose turn came.
// Its message id is its own, so that the queue's deduplication by attempt does not drop it; the copy that comes
// due later loses the attempt's claim and sends nothing.
func (q *Queue) Wake(ctx context.Context, j Job) error {
	m := j.msg(DeliverSubject(j.Tenant, j.EndpointID))
	m.Header.Set(jetstream.MsgIDHeader, j.DeliveryID+"."+strconv.Itoa(j.Attempt)+".wake."+strconv.FormatInt(time.Now().UnixNano(), 36))
	if _, err := q.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("wake %s: %w", j.DeliveryID, err)
	}
	return nil
}

// HasSchedule reports whether a retry of the delivery is waiting in the stream.
func (q *Queue) HasSchedule(ctx context.Context, j Job) (bool, error) {
	s, err := q.js.Stream(ctx, Stream)
	if err != nil {
		return false, err
	}
	_, err = s.GetLastMsgForSubject(ctx, retrySubject(j.Tenant, j.EndpointID, j.DeliveryID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Depth is the number of messages in the delivery queue: attempts waiting or held, and scheduled retries.
func (q *Queue) Depth(ctx context.Context) (uint64, error) {
	s, err := q.js.Stream(ctx, Stream)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.Msgs, nil
}

// Pause stops the endpoint's consumer from handing out attempts until `until` (on every instance: the pause is the
// server's); attempts keep waiting in the stream, retries join them when due.
func (q *Queue) Pause(ctx context.Context, endpointID string, until time.Time) error {
	if _, err := q.js.PauseConsumer(ctx, Stream, ConsumerName(endpointID), until); err != nil {
		return fmt.Errorf("pausing the consumer of %s: %w", endpointID, err)
	}
	return nil
}

// Resume ends a pause of the endpoint's consumer (nothing when it has no consumer or no pause).
func (q *Queue) Resume(ctx context.Context, endpointID string) error {
	_, err := q.js.ResumeConsumer(ctx, Stream, ConsumerName(endpointID))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resuming the consumer of %s: %w", endpointID, err)
	}
	return nil
}

// Backlog is the number of messages waiting for or held by an endpoint's consumer.
func (q *Queue) Backlog(ctx context.Context, endpointID string) (uint64, error) {
	c, err := q.js.Consumer(ctx, Stream, ConsumerName(endpointID))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// RemoveEndpoint deletes an endpoint's consumer and purges its waiting messages and schedules.
func (q *Queue) RemoveEndpoint(ctx context.Context, tenant, endpointID string) error {
	if err := q.js.DeleteConsumer(ctx, Stream, ConsumerName(endpointID)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	s, err := q.js.Stream(ctx, Stream)
	if err != nil {
		return err
	}
	for _, subj := range []string{DeliverSubject(tenant, endpointID), "webhooks.retry." + tenant + "." + endpointID + ".>"} {
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return err
		}
	}
	return nil
}
