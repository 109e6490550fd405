// Package mongostore keeps endpoints, deliveries, the events they carry and operational events in MongoDB
// (FerretDB in development: single-document updates only). bson models live here, apart from the domain types.
package mongostore

import (
	"fmt"
	"strconv"
	"time"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

type secretDoc struct {
	Value     string     `bson:"value"` // sealed with the endpoint's data key (plaintext in rows written before)
	CreatedAt time.Time  `bson:"created_at"`
	ExpiresAt *time.Time `bson:"expires_at,omitempty"`
}

type endpointDoc struct {
	ID             string            `bson:"_id"`
	Tenant         string            `bson:"tenant"`
	URL            string            `bson:"url"`
	Description    string            `bson:"description"`
	EventTypes     []string          `bson:"event_types"`
	Disabled       bool              `bson:"disabled"`
	DisabledReason string            `bson:"disabled_reason"`
	Headers        map[string]string `bson:"headers"` // values sealed like the secrets
	Format         int               `bson:"format"`
	JQ             string            `bson:"jq"`
	RateLimit      int               `bson:"rate_limit"`
	MaxConcurrency int               `bson:"max_concurrency"`
	PayloadVersion string            `bson:"payload_version,omitempty"`
	PerCase        bool              `bson:"per_case,omitempty"`
	Secrets        []secretDoc       `bson:"secrets"`
	// DataKey is the endpoint's own key, wrapped by the service's key (keyring); empty in a row written before
	// values were sealed, whose values are plaintext until its next write.
	DataKey      string     `bson:"data_key,omitempty"`
	FailingSince *time.Time `bson:"failing_since,omitempty"`
	CreatedAt    time.Time  `bson:"created_at"`
	UpdatedAt    time.Time  `bson:"updated_at"`
}

func secretField(i int) string    { return "secrets/" + strconv.Itoa(i) }
func headerField(k string) string { return "headers/" + k }

// toEndpointDoc seals the secrets and header values under a fresh data key: every write rewraps with the current
// key, which is how rows move to a new key and how plaintext rows become sealed.
func (s *Store) toEndpointDoc(e delivery.Endpoint) (endpointDoc, error) {
	dk, wrapped, err := s.keys.NewDataKey(e.ID)
	if err != nil {
		return endpointDoc{}, err
	}
	d := endpointDoc{
		ID: e.ID, Tenant: e.Tenant, URL: e.URL, Description: e.Description, EventTypes: e.EventTypes,
		Disabled: e.Disabled, DisabledReason: e.DisabledReason, Headers: make(map[string]string, len(e.Headers)),
		Format: int(e.Format), JQ: e.JQ, RateLimit: e.RateLimit, MaxConcurrency: e.MaxConcurrency, DataKey: wrapped,
		PayloadVersion: e.PayloadVersion, PerCase: e.PerCase,
		FailingSince: timePtr(e.FailingSince), CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC(),
	}
	if d.EventTypes == nil {
		d.EventTypes = []string{}
	}
	for k, v := range e.Headers {
		d.Headers[k] = dk.Seal(headerField(k), v)
	}
	for i, sec := range e.Secrets {
		d.Secrets = append(d.Secrets, secretDoc{Value: dk.Seal(secretField(i), sec.Value), CreatedAt: sec.CreatedAt.UTC(),
			ExpiresAt: timePtr(sec.ExpiresAt)})
	}
	return d, nil
}

func (s *Store) endpoint(d endpointDoc) (delivery.Endpoint, error) {
	e := delivery.Endpoint{
		ID: d.ID, Tenant: d.Tenant, URL: d.URL, Description: d.Description, EventTypes: d.EventTypes,
		Disabled: d.Disabled, DisabledReason: d.DisabledReason, Headers: make(map[string]string, len(d.Headers)),
		Format: delivery.Format(d.Format), JQ: d.JQ, RateLimit: d.RateLimit, MaxConcurrency: d.MaxConcurrency,
		PayloadVersion: d.PayloadVersion, PerCase: d.PerCase,
		FailingSince: timeVal(d.FailingSince), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
	if len(e.EventTypes) == 0 {
		e.EventTypes = nil
	}
	open := func(_, v string) (string, error) { return v, nil } // a row from before sealing
	if d.DataKey != "" {
		dk, err := s.keys.Open(d.ID, d.DataKey)
		if err != nil {
			return delivery.Endpoint{}, fmt.Errorf("endpoint %s: %w", d.ID, err)
		}
		open = dk.Open
	}
	for k, v := range d.Headers {
		plain, err := open(headerField(k), v)
		if err != nil {
			return delivery.Endpoint{}, fmt.Errorf("endpoint %s: %w", d.ID, err)
		}
		e.Headers[k] = plain
	}
	for i, sec := range d.Secrets {
		plain, err := open(secretField(i), sec.Value)
		if err != nil {
			return delivery.Endpoint{}, fmt.Errorf("endpoint %s: %w", d.ID, err)
		}
		e.Secrets = append(e.Secrets, delivery.Secret{Value: plain, CreatedAt: sec.CreatedAt, ExpiresAt: timeVal(sec.ExpiresAt)})
	}
	return e, nil
}

type attemptDoc struct {
	ID         string    `bson:"_id"` // delivery id + "#" + number: recording an attempt twice is a no-op
	DeliveryID string    `bson:"delivery_id"`
	Number     int       `bson:"n"`
	At         time.Time `bson:"at"`
	StatusCode int       `bson:"status_code"`
	LatencyMS  float64   `bson:"latency_ms"`
	Response   string    `bson:"response"`
	Error      string    `bson:"error"`
	// RequestHeaders is a list, not a document, to keep their order (and FerretDB stores no nested arrays).
	RequestHeaders []headerDoc `bson:"request_headers,omitempty"`
	RequestBody    string      `bson:"request_body,omitempty"`
}

type headerDoc struct {
	Name  string `bson:"n"`
	Value string `bson:"v"`
}

type deliveryDoc struct {
	ID            string    `bson:"_id"`
	Tenant        string    `bson:"tenant"`
	EndpointID    string    `bson:"endpoint_id"`
	EventID       string    `bson:"event_id"`
	EventSeq      int64     `bson:"event_seq,omitempty"`
	EventType     string    `bson:"event_type"`
	CaseID        string    `bson:"case_id"`
	CaseVersion   int64     `bson:"case_version,omitempty"`
	OccurredAt    time.Time `bson:"occurred_at,omitempty"`
	Test          bool      `bson:"test,omitempty"`
	Status        int       `bson:"status"`
	AttemptCount  int       `bson:"attempt_count"`
	NextAttemptAt time.Time `bson:"next_attempt_at"`
	LastStatus    int       `bson:"last_status"`
	LastError     string    `bson:"last_error"`
	CreatedAt     time.Time `bson:"created_at"`
	UpdatedAt     time.Time `bson:"updated_at"`
	// FirstAttempt is written with the record itself (one insert for the common case of a delivery that succeeds
	// at once); later attempts are documents of their own.
	FirstAttempt *attemptDoc `bson:"first_attempt,omitempty"`
	// LastAttempt is set by every attempt after the first, in the update that attempt makes anyway, so that a
	// listing shows each delivery's latest attempt without reading the attempts collection.
	LastAttempt *attemptDoc `bson:"last_attempt,omitempty"`
	// OutcomeSeq is the outcome log position of the outcome that made this state (absent in records written
	// before the log existed): an older outcome applied late does not overwrite it.
	OutcomeSeq int64 `bson:"outcome_seq,omitempty"`
}

func toDeliveryDoc(d delivery.Delivery) deliveryDoc {
	doc := deliveryDoc{
		ID: d.ID, Tenant: d.Tenant, EndpointID: d.EndpointID, EventID: d.EventID, EventSeq: int64(d.EventSeq),
		EventType: d.EventType, CaseID: d.CaseID, CaseVersion: d.CaseVersion, OccurredAt: d.OccurredAt.UTC(),
		Test: d.Test, Status: int(d.Status), AttemptCount: d.AttemptCount, NextAttemptAt: d.NextAttemptAt.UTC(),
		LastStatus: d.LastStatus, LastError: d.LastError, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		OutcomeSeq: int64(d.OutcomeSeq),
	}
	return doc
}

func toAttemptDoc(deliveryID string, a delivery.Attempt) attemptDoc {
	return attemptDoc{ID: deliveryID + "#" + strconv.Itoa(a.Number), DeliveryID: deliveryID, Number: a.Number, At: a.At.UTC(), StatusCode: a.StatusCode,
		LatencyMS: float64(a.Latency.Microseconds()) / 1000, Response: a.Response, Error: a.Error,
		RequestHeaders: headerRows(a.RequestHeaders), RequestBody: a.RequestBody}
}

func headerRows(hs []delivery.Header) []headerDoc {
	if len(hs) == 0 {
		return nil
	}
	out := make([]headerDoc, len(hs))
	for i, h := range hs {
		out[i] = headerDoc{Name: h.Name, Value: h.Value}
	}
	return out
}

func (d deliveryDoc) domain() delivery.Delivery {
	out := delivery.Delivery{
		ID: d.ID, Tenant: d.Tenant, EndpointID: d.EndpointID, EventID: d.EventID, EventSeq: uint64(d.EventSeq),
		EventType: d.EventType, CaseID: d.CaseID, CaseVersion: d.CaseVersion, OccurredAt: d.OccurredAt,
		Test: d.Test, Status: delivery.Status(d.Status), AttemptCount: d.AttemptCount,
		NextAttemptAt: d.NextAttemptAt, LastStatus: d.LastStatus, LastError: d.LastError,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, OutcomeSeq: uint64(d.OutcomeSeq),
	}
	last := d.LastAttempt
	if last == nil && d.AttemptCount == 1 {
		last = d.FirstAttempt
	}
	// A record of several attempts written before last_attempt existed shows none until its next attempt.
	if last != nil {
		a := last.domain()
		out.LastAttempt = &a
	}
	return out
}

func (a attemptDoc) domain() delivery.Attempt {
	out := delivery.Attempt{Number: a.Number, At: a.At, StatusCode: a.StatusCode,
		Latency: time.Duration(a.LatencyMS * float64(time.Millisecond)), Response: a.Response, Error: a.Error,
		RequestBody: a.RequestBody}
	for _, h := range a.RequestHeaders {
		out.RequestHeaders = append(out.RequestHeaders, delivery.Header{Name: h.Name, Value: h.Value})
	}
	return out
}

type eventDoc struct {
	ID         string    `bson:"_id"`
	Tenant     string    `bson:"tenant"`
	Type       string    `bson:"type"`
	CaseID     string    `bson:"case_id"`
	Version    int64     `bson:"version"`
	OccurredAt time.Time `bson:"occurred_at"`
	Body       []byte    `bson:"body"`
	StoredAt   time.Time `bson:"stored_at"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func timeVal(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
