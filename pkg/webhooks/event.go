package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event types: a change to a case produces exactly one event. These are the one definition: pkg/events, which
// puts the events on the bus, uses them.
const (
	TypeCreated         = "case.created"
	TypeUpdated         = "case.updated"
	TypeStatusChanged   = "case.status_changed"
	TypeDocumentAdded   = "case.document_added"
	TypeCheckRecorded   = "case.check_recorded"
	TypeRiskSet         = "case.risk_set"
	TypeReviewCompleted = "case.review_completed"
	TypeRedacted        = "case.redacted"
)

// TypeTest is the sample event that "send test event" delivers: a fictitious case with id case_test, which a
// receiver acknowledges and otherwise ignores.
const TypeTest = "webhook.test"

// Types lists every event type of a real case change (TypeTest aside).
var Types = []string{TypeCreated, TypeUpdated, TypeStatusChanged, TypeDocumentAdded, TypeCheckRecorded,
	TypeRiskSet, TypeReviewCompleted, TypeRedacted}

// Format is the payload format of the endpoint, chosen when it was registered.
type Format int

const (
	// FormatFull: data is the case after the change (casekeeper.v1.Case as protojson, snake_case names).
	FormatFull Format = iota + 1
	// FormatThin: data names the event and where to fetch the case; no personal data.
	FormatThin
	// FormatRaw: the body is whatever the endpoint's jq transform made; only Event.Body is set.
	FormatRaw
)

func (f Format) String() string {
	switch f {
	case FormatFull:
		return "full"
	case FormatThin:
		return "thin"
	case FormatRaw:
		return "raw"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// ErrBadPayload is a verified body that does not decode as the expected format: the endpoint's payload format
// and the receiver's do not agree.
var ErrBadPayload = errors.New("webhooks: the body does not decode as the expected payload format")

// Event is one verified webhook.
type Event struct {
	// ID is the webhook-id: one per (event, endpoint), the same on every retry. Deduplicate by it.
	ID string
	// SignedAt is the webhook-timestamp of this attempt.
	SignedAt time.Time
	// Type is one of the Type* constants (empty for FormatRaw).
	Type string
	// OccurredAt is when the case changed (empty for FormatRaw).
	OccurredAt time.Time
	// Body is the verified body, byte for byte.
	Body []byte
	// Data is the payload's data member, byte for byte (nil for FormatRaw). For FormatFull it is the case after
	// the change: casekeeper.v1.Case in protobuf's JSON mapping with the proto field names. For the typed case,
	// unmarshal it with protojson (google.golang.org/protobuf/encoding/protojson, DiscardUnknown: true) into a
	// casekeeperv1.Case of github.com/casekeeper/core/proto; this package leaves that to the receiver so that it
	// depends on the standard library alone.
	Data json.RawMessage
	// Thin is set for FormatThin, and for FormatFull when the event came in the thin form: the retry or resend of
	// an event that is no longer stored (its case was redacted) carries the event without the case. Fetch the
	// case from Thin.URL if you need its state.
	Thin *ThinEvent

	// caseID and caseVersion are read from Data for FormatFull.
	caseID      string
	caseVersion int64
}

// ThinEvent is the data of a thin payload.
type ThinEvent struct {
	EventID     string `json:"event_id"`
	Type        string `json:"type"`
	CaseID      string `json:"case_id"`
	CaseVersion int64  `json:"case_version"`
	// URL is the gateway's GET /v1/cases/{id} for this case: fetch it with an access token of your tenant.
	URL string `json:"url"`
}

// CaseVersion returns the case id and the version the event brings it to, for either format; a receiver that
// already holds a higher version of that case drops the event (deliveries are not ordered). ok is false for
// FormatRaw.
func (e *Event) CaseVersion() (caseID string, version int64, ok bool) {
	switch {
	case e.Thin != nil:
		return e.Thin.CaseID, e.Thin.CaseVersion, true
	case e.caseID != "":
		return e.caseID, e.caseVersion, true
	}
	return "", 0, false
}

// envelope is the body of full and thin payloads.
type envelope struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// fullCase is what Decode reads of a full payload's case: its identity and version, for deduplication and
// ordering. Unknown fields are ignored: fields added to the protos later must not break receivers built today.
type fullCase struct {
	ID string `json:"id"`
	// Version is an int64, which protobuf's JSON mapping writes as a string ("4") and also reads as a number.
	Version json.RawMessage `json:"version"`
}

func (c fullCase) version() (int64, error) {
	if len(c.Version) == 0 || string(c.Version) == "null" {
		return 0, nil // protobuf's JSON mapping leaves out a zero value
	}
	digits := string(c.Version)
	if c.Version[0] == '"' {
		if err := json.Unmarshal(c.Version, &digits); err != nil {
			return 0, err
		}
	}
	return strconv.ParseInt(digits, 10, 64)
}

// Decode reads a verified body in the given format. Verify first: Decode trusts nothing but does not authenticate.
func Decode(format Format, body []byte) (*Event, error) {
	e := &Event{Body: body}
	if format == FormatRaw {
		if !json.Valid(body) {
			return nil, fmt.Errorf("%w: not JSON", ErrBadPayload)
		}
		return e, nil
	}
	if format != FormatFull && format != FormatThin {
		return nil, fmt.Errorf("webhooks: unknown format %s", format)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if env.Type == "" || len(env.Data) == 0 || bytes.Equal(env.Data, []byte("null")) {
		return nil, fmt.Errorf("%w: type or data missing", ErrBadPayload)
	}
	at, err := time.Parse(time.RFC3339Nano, env.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("%w: timestamp: %v", ErrBadPayload, err)
	}
	e.Type, e.OccurredAt = env.Type, at
	switch format {
	case FormatFull:
		var c fullCase
		if err := json.Unmarshal(env.Data, &c); err != nil {
			return nil, fmt.Errorf("%w: data: %v", ErrBadPayload, err)
		}
		if c.ID == "" {
			// A full endpoint gets the thin form of an event that is no longer stored (its case was redacted, or
			// it passed the stream's retention) when a retry or a resend comes after: the event, without the case.
			if t, ok := decodeThin(env.Data); ok {
				e.Data, e.Thin = env.Data, t
				return e, nil
			}
			return nil, fmt.Errorf("%w: data has no case id", ErrBadPayload)
		}
		v, err := c.version()
		if err != nil {
			return nil, fmt.Errorf("%w: data: version %s is not an int64", ErrBadPayload, c.Version)
		}
		e.Data, e.caseID, e.caseVersion = env.Data, c.ID, v
	case FormatThin:
		t, ok := decodeThin(env.Data)
		if !ok {
			return nil, fmt.Errorf("%w: data has no event_id or case_id (a full payload?)", ErrBadPayload)
		}
		e.Data, e.Thin = env.Data, t
	}
	return e, nil
}

// decodeThin reads the data of a thin payload; ok is false when it is not one.
func decodeThin(data json.RawMessage) (*ThinEvent, bool) {
	var t ThinEvent
	if err := json.Unmarshal(data, &t); err != nil || t.EventID == "" || t.CaseID == "" {
		return nil, false
	}
	return &t, true
}
