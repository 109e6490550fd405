// Package caselog is the case's record on JetStream: the last event on the case's subject cases.<tenant>.<id> is the
// case, and appending the next event is a compare-and-set on that subject's last sequence
// (Nats-Expected-Last-Subject-Sequence), which the stream's leader decides for every replica at once.
package caselog

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/tracing"
	"github.com/casekeeper/core/services/case/internal/app"
	"github.com/casekeeper/core/services/case/internal/kyc"
	"github.com/casekeeper/core/services/case/internal/protoconv"
)

// Connection reports whether NATS is reachable now.
type Connection interface {
	IsConnected() bool
}

// Log implements app.Log on the CASES stream. The stream must allow direct gets, so that reads are served by any
// replica of the stream without going through its leader.
type Log struct {
	stream  declared[jetstream.Stream]
	js      jetstream.JetStream
	conn    Connection
	timeout time.Duration
}

// New returns the log; it serves once Use hands it the declared stream. timeout bounds one read or append.
func New(js jetstream.JetStream, conn Connection, timeout time.Duration) *Log {
	return &Log{js: js, conn: conn, timeout: timeout, stream: newDeclared[jetstream.Stream]()}
}

// Use hands the log the declared CASES stream.
func (l *Log) Use(s jetstream.Stream) { l.stream.set(s) }

// Ready is a readiness check: the stream is declared and NATS reachable.
func (l *Log) Ready(context.Context) error {
	if _, ok := l.stream.get(); !ok {
		return fmt.Errorf("%w: the CASES stream is not declared yet", app.ErrUnavailable)
	}
	if !l.conn.IsConnected() {
		return fmt.Errorf("%w: not connected to NATS", app.ErrUnavailable)
	}
	return nil
}

func (l *Log) ready(ctx context.Context) (jetstream.Stream, error) {
	if !l.conn.IsConnected() {
		return nil, fmt.Errorf("%w: not connected to NATS", app.ErrUnavailable)
	}
	return l.stream.wait(ctx, l.timeout, "the CASES stream")
}

// declared holds what the service declares on JetStream at start-up. Until then, callers wait (within their time
// bound): with NATS reachable, the declaration takes moments, and a write in those moments should not fail.
type declared[T any] struct {
	value atomic.Pointer[T]
	done  chan struct{}
	once  *sync.Once
}

func newDeclared[T any]() declared[T] {
	return declared[T]{done: make(chan struct{}), once: &sync.Once{}}
}

func (d *declared[T]) set(v T) {
	d.value.Store(&v)
	d.once.Do(func() { close(d.done) })
}

func (d *declared[T]) get() (T, bool) {
	if p := d.value.Load(); p != nil {
		return *p, true
	}
	var zero T
	return zero, false
}

func (d *declared[T]) wait(ctx context.Context, bound time.Duration, what string) (T, error) {
	if v, ok := d.get(); ok {
		return v, nil
	}
	timer := time.NewTimer(bound)
	defer timer.Stop()
	var zero T
	select {
	case <-d.done:
		v, _ := d.get()
		return v, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-timer.C:
		return zero, fmt.Errorf("%w: %s is not declared yet", app.ErrUnavailable, what)
	}
}

// Last reads the case from the last event on its subject.
func (l *Log) Last(ctx context.Context, tenant, id string) (app.Record, error) {
	stream, err := l.ready(ctx)
	if err != nil {
		return app.Record{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	msg, err := stream.GetLastMsgForSubject(ctx, events.Subject(tenant, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return app.Record{}, kyc.ErrNotFound
	}
	if err != nil {
		return app.Record{}, unavailable("reading the case's last event", err)
	}
	ev, err := protoconv.DecodeEvent(msg.Data)
	if err != nil {
		return app.Record{}, err
	}
	if ev.Case.Tenant != tenant || ev.Case.ID != id {
		return app.Record{}, fmt.Errorf("event %s on the subject of case %s belongs to another case", ev.ID, id)
	}
	return app.Record{Case: ev.Case, Seq: msg.Sequence, EventID: ev.ID}, nil
}

// Append publishes the event if the subject's last sequence is still prevSeq. The event's message carries the trace
// context of its publish span, so that what the event causes downstream (fan-out, deliveries) joins the write's
// trace.
func (l *Log) Append(ctx context.Context, ev app.Event, prevSeq uint64) (seq uint64, err error) {
	ctx, span := tracing.Tracer().Start(ctx, "publish case event", trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() { // with tracing off, the write builds no attributes
		span.SetAttributes(attribute.String("casekeeper.event_type", ev.Type), attribute.String("casekeeper.case_id", ev.Case.ID),
			attribute.Int64("casekeeper.case_version", ev.Case.Version))
	}
	defer func() { tracing.End(span, err) }()
	// Fail fast while NATS is away: a write is acknowledged only once the stream has it, so there is nothing to
	// wait for.
	stream, err := l.ready(ctx)
	if err != nil {
		return 0, err
	}
	body, err := protoconv.EncodeEvent(ev.ID, ev.Type, ev.Case, ev.At)
	if err != nil {
		return 0, err
	}
	c := ev.Case
	msg := events.RawMessage(c.Tenant, c.ID, ev.ID, ev.Type, c.Version, body)
	tracing.Inject(ctx, tracing.Headers(msg.Header))
	pctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	ack, err := l.js.PublishMsg(pctx, msg, jetstream.WithExpectLastSequencePerSubject(prevSeq))
	if err == nil {
		return ack.Sequence, nil
	}
	if isWrongLastSequence(err) {
		return 0, app.ErrConflict
	}
	// No answer does not mean no write: the stream may have stored the event and the acknowledgement been lost.
	// The subject tells.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer rcancel()
	if msg, rerr := stream.GetLastMsgForSubject(rctx, msg.Subject); rerr == nil && msg.Header.Get(jetstream.MsgIDHeader) == ev.ID {
		return msg.Sequence, nil
	}
	return 0, unavailable("appending the event", err)
}

// EraseHistory purges every event of a case from the stream but its last one, the redaction tombstone: the
// personal data in the earlier events must go too.
func (l *Log) EraseHistory(ctx context.Context, tenant, id string) error {
	stream, err := l.ready(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	err = stream.Purge(ctx, jetstream.WithPurgeSubject(events.Subject(tenant, id)), jetstream.WithPurgeKeep(1))
	if err != nil {
		return fmt.Errorf("purging the history of case %s: %w", id, err)
	}
	return nil
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// unavailable marks errors of reaching the stream (time-outs, no responders, a lost connection) as ErrUnavailable,
// so the caller is told to retry instead of seeing an internal error.
func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code != 503 {
		return fmt.Errorf("%s: %w", what, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) || apiErr != nil {
		return fmt.Errorf("%w: %s: %v", app.ErrUnavailable, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Requests implements app.Requests on a KV bucket: one key per (tenant, request id), created once.
type Requests struct {
	kv      declared[jetstream.KeyValue]
	conn    Connection
	timeout time.Duration
}

// RequestsBucket is the KV bucket of creation request ids.
const RequestsBucket = "CASE_REQUESTS"

// RequestsConfig is the bucket: a claim lives as long as the events of the case it made (the stream's max age),
// which is how long a retry of the creation returns the same case.
func RequestsConfig(maxAge time.Duration, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      RequestsBucket,
		Description: "Which case each CreateCase request id made, per tenant.",
		TTL:         maxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		History:     1,
	}
}

// NewRequests returns the claims; they serve once Use hands them the declared bucket. timeout bounds one claim.
func NewRequests(conn Connection, timeout time.Duration) *Requests {
	return &Requests{conn: conn, timeout: timeout, kv: newDeclared[jetstream.KeyValue]()}
}

// Use hands the claims the declared bucket.
func (r *Requests) Use(kv jetstream.KeyValue) { r.kv.set(kv) }

// Claim records caseID for the request unless another case was recorded first, and returns the recorded one.
func (r *Requests) Claim(ctx context.Context, tenant, requestID, caseID string) (string, error) {
	if !r.conn.IsConnected() {
		return "", fmt.Errorf("%w: not connected to NATS", app.ErrUnavailable)
	}
	kv, err := r.kv.wait(ctx, r.timeout, "the request-id bucket")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	key := RequestKey(tenant, requestID)
	_, err = kv.Create(ctx, key, []byte(caseID))
	if err == nil {
		return caseID, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", unavailable("claiming the request id", err)
	}
	entry, err := kv.Get(ctx, key)
	if err != nil {
		return "", unavailable("reading the request id's case", err)
	}
	return string(entry.Value()), nil
}

// RequestKey is the bucket key of a request id: the tenant, then the request id in hex, since a request id may hold
// any character and a key only a few.
func RequestKey(tenant, requestID string) string {
	return tenant + "." + hex.EncodeToString([]byte(requestID))
}
