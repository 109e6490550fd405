package natsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// OutcomesStream is the delivery log's record: every attempt's outcome, one message each on
// webhooks.outcome.<tenant>.<delivery>. An attempt is on record once its message is stored (a JetStream publish,
// not a database write), and the delivery-log projector writes the messages to MongoDB in batches and
// acknowledges them there: the stream is a work queue, so it holds only what the database does not have yet.
const OutcomesStream = "WEBHOOK_OUTCOMES"

func outcomeSubject(tenant, deliveryID string) string {
	return "webhooks.outcome." + tenant + "." + deliveryID
}

// redactionSubject holds the redactions of a case; one token more than a delivery's subject, so that the two never
// meet.
func redactionSubject(tenant, caseID string) string {
	return "webhooks.outcome." + tenant + ".redacted." + caseID
}

// OutcomesStreamConfig is the outcome log.
func OutcomesStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        OutcomesStream,
		Description: "Webhook attempt outcomes, until the delivery log in the database has them.",
		Subjects:    []string{"webhooks.outcome.>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		// Far longer than any projector outage: an outcome is never aged out before it reached the database.
		MaxAge: 14 * 24 * time.Hour,
		// Deduplicates an attempt recorded twice (a publish retried after a lost acknowledgement).
		Duplicates: 10 * time.Minute,
	}
}

// Outcomes records outcomes on the stream and reads a delivery's latest unprojected one.
type Outcomes struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// NewOutcomes uses the declared stream. Its reads go to the stream leader (the stream allows no direct get), so a
// delivery's latest outcome is never missed because a follower lags.
func NewOutcomes(js jetstream.JetStream, stream jetstream.Stream) *Outcomes {
	return &Outcomes{js: js, stream: stream}
}

// Record stores an outcome and returns once JetStream has it.
func (o *Outcomes) Record(ctx context.Context, out delivery.Outcome) error {
	body, err := json.Marshal(toWire(out))
	if err != nil {
		return err
	}
	m := nats.NewMsg(outcomeSubject(out.Delivery.Tenant, out.Delivery.ID))
	m.Data = body
	if _, err := o.js.PublishMsg(ctx, m, jetstream.WithMsgID(out.Delivery.ID+"#"+strconv.Itoa(out.Attempt.Number))); err != nil {
		return fmt.Errorf("recording the outcome of %s: %w", out.Delivery.ID, err)
	}
	return nil
}

// Redacted records on the outcome log that a case was redacted. The delivery-log projector reads it in its place
// among the outcomes: every outcome recorded before it is in the database when it scrubs the case's attempts, and
// every one applied after it is scrubbed as it is written (mongostore.ApplyOutcomes).
func (o *Outcomes) Redacted(ctx context.Context, r delivery.Redaction) error {
	body, err := json.Marshal(outcomeWire{Tenant: r.Tenant, CaseID: r.CaseID, EventID: r.EventID,
		Redacted: &redactionWire{At: r.At}})
	if err != nil {
		return err
	}
	m := nats.NewMsg(redactionSubject(r.Tenant, r.CaseID))
	m.Data = body
	if _, err := o.js.PublishMsg(ctx, m, jetstream.WithMsgID("redacted#"+r.EventID)); err != nil {
		return fmt.Errorf("recording the redaction of case %s: %w", r.CaseID, err)
	}
	return nil
}

// Last returns the state left by the delivery's newest outcome still on the stream, or nil when none is there
// (none was made, or the database has them all).
func (o *Outcomes) Last(ctx context.Context, tenant, deliveryID string) (*delivery.Delivery, error) {
	raw, err := o.stream.GetLastMsgForSubject(ctx, outcomeSubject(tenant, deliveryID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the latest outcome of %s: %w", deliveryID, err)
	}
	out, err := decodeOutcome(raw.Data, raw.Sequence)
	if err != nil {
		return nil, err
	}
	d := out.State()
	return &d, nil
}

// ErrBadOutcome is a message on the outcome stream that is not an outcome.
var ErrBadOutcome = errors.New("natsqueue: not an outcome message")

// ParseOutcome reads an outcome from a message of the stream.
func ParseOutcome(m jetstream.Msg) (delivery.Outcome, error) {
	md, err := m.Metadata()
	if err != nil {
		return delivery.Outcome{}, fmt.Errorf("%w: %v", ErrBadOutcome, err)
	}
	return decodeOutcome(m.Data(), md.Sequence.Stream)
}

func decodeOutcome(data []byte, seq uint64) (delivery.Outcome, error) {
	var w outcomeWire
	if err := json.Unmarshal(data, &w); err == nil && w.Redacted != nil && w.Tenant != "" && w.CaseID != "" {
		return delivery.Outcome{Seq: seq, Redaction: &delivery.Redaction{Tenant: w.Tenant, CaseID: w.CaseID,
			EventID: w.EventID, At: w.Redacted.At}}, nil
	}
	if err := json.Unmarshal(data, &w); err != nil || w.DeliveryID == "" || w.Tenant == "" || w.Status == 0 || w.Attempt.Number < 1 {
		return delivery.Outcome{}, ErrBadOutcome
	}
	out := w.domain()
	out.Seq = seq
	return out, nil
}

// outcomeWire is an outcome on the stream: JSON, so that an operator can read the stream.
type outcomeWire struct {
	DeliveryID    string      `json:"delivery_id"`
	Tenant        string      `json:"tenant"`
	EndpointID    string      `json:"endpoint_id"`
	EventID       string      `json:"event_id"`
	EventSeq      uint64      `json:"event_seq,omitempty"`
	EventType     string      `json:"event_type"`
	CaseID        string      `json:"case_id"`
	CaseVersion   int64       `json:"case_version,omitempty"`
	OccurredAt    time.Time   `json:"occurred_at,omitzero"`
	CreatedAt     time.Time   `json:"created_at,omitzero"`
	Test          bool        `json:"test,omitempty"`
	Status        int         `json:"status"`
	NextAttemptAt time.Time   `json:"next_attempt_at,omitzero"`
	Attempt       attemptWire `json:"attempt"`
	// Redacted marks the redaction of the case CaseID instead of an attempt.
	Redacted *redactionWire `json:"redacted,omitempty"`
}

type redactionWire struct {
	At time.Time `json:"at"`
}

type attemptWire struct {
	Number     int       `json:"n"`
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	LatencyNS  int64     `json:"latency_ns"`
	Response   string    `json:"response,omitempty"`
	Error      string    `json:"error,omitempty"`
	// RequestHeaders are name, value pairs.
	RequestHeaders [][2]string `json:"request_headers,omitempty"`
	RequestBody    string      `json:"request_body,omitempty"`
}

func toWire(o delivery.Outcome) outcomeWire {
	d, a := o.Delivery, o.Attempt
	return outcomeWire{DeliveryID: d.ID, Tenant: d.Tenant, EndpointID: d.EndpointID, EventID: d.EventID, EventSeq: d.EventSeq,
		EventType: d.EventType, CaseID: d.CaseID, CaseVersion: d.CaseVersion, OccurredAt: d.OccurredAt, CreatedAt: d.CreatedAt, Test: d.Test, Status: int(o.Status), NextAttemptAt: o.NextAttemptAt,
		Attempt: attemptWire{Number: a.Number, At: a.At, StatusCode: a.StatusCode, LatencyNS: int64(a.Latency),
			Response: a.Response, Error: a.Error, RequestHeaders: headerPairs(a.RequestHeaders), RequestBody: a.RequestBody}}
}

func (w outcomeWire) domain() delivery.Outcome {
	a := w.Attempt
	return delivery.Outcome{
		Delivery: delivery.Delivery{ID: w.DeliveryID, Tenant: w.Tenant, EndpointID: w.EndpointID, EventID: w.EventID,
			EventSeq: w.EventSeq, EventType: w.EventType, CaseID: w.CaseID, CaseVersion: w.CaseVersion, OccurredAt: w.OccurredAt,
			CreatedAt: w.CreatedAt, Test: w.Test},
		Status: delivery.Status(w.Status), NextAttemptAt: w.NextAttemptAt,
		Attempt: delivery.Attempt{Number: a.Number, At: a.At, StatusCode: a.StatusCode, Latency: time.Duration(a.LatencyNS),
			Response: a.Response, Error: a.Error, RequestHeaders: fromPairs(a.RequestHeaders), RequestBody: a.RequestBody},
	}
}

func headerPairs(hs []delivery.Header) [][2]string {
	if len(hs) == 0 {
		return nil
	}
	out := make([][2]string, len(hs))
	for i, h := range hs {
		out[i] = [2]string{h.Name, h.Value}
	}
	return out
}

func fromPairs(ps [][2]string) []delivery.Header {
	if len(ps) == 0 {
		return nil
	}
	out := make([]delivery.Header, len(ps))
	for i, p := range ps {
		out[i] = delivery.Header{Name: p[0], Value: p[1]}
	}
	return out
}

// CaseEvents reads case events back from the CASES stream by position, for resends and the sweeper: the stream is
// the events' record, and what it no longer holds (past its retention, or purged with a redacted case) is not
// sent again.
type CaseEvents struct{ stream jetstream.Stream }

// NewCaseEvents reads from the CASES stream (its leader: the stream allows no direct get).
func NewCaseEvents(stream jetstream.Stream) *CaseEvents { return &CaseEvents{stream: stream} }

// Body returns the encoded event at seq, checked to be the event the delivery carries.
func (c *CaseEvents) Body(ctx context.Context, seq uint64, eventID string) ([]byte, error) {
	m, err := c.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, delivery.ErrEventGone
	}
	if err != nil {
		return nil, fmt.Errorf("reading event %s from the case event stream: %w", eventID, err)
	}
	if ev, err := events.Decode(m.Data); err != nil || ev.GetId() != eventID {
		return nil, delivery.ErrEventGone
	}
	return m.Data, nil
}
