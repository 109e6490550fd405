package delivery

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"
)

// Status is where a delivery stands.
type Status int

const (
	StatusPending Status = iota + 1
	StatusSucceeded
	StatusRetrying
	StatusDead
)

func (s Status) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusSucceeded:
		return "succeeded"
	case StatusRetrying:
		return "retrying"
	case StatusDead:
		return "dead"
	}
	return "unknown"
}

// Open reports whether the delivery still waits for an attempt.
func (s Status) Open() bool { return s == StatusPending || s == StatusRetrying }

// Delivery is one event on its way to one endpoint. Its id is also the webhook-id header.
type Delivery struct {
	ID         string
	Tenant     string
	EndpointID string
	EventID    string
	// EventSeq is the event's position on the case event stream, where a resend reads it (0 in records written
	// before deliveries kept it).
	EventSeq  uint64
	EventType string
	CaseID    string
	// CaseVersion and OccurredAt are the event's (0 and zero in records written before deliveries kept them): with
	// the ids and the type they make the thin form, which is what an attempt sends once the event is no longer
	// stored.
	CaseVersion int64
	OccurredAt  time.Time
	// Test marks a test event sent on request (SendTestEvent) to the sample case: one attempt, logged, never
	// retried, resent or recovered.
	Test          bool
	Status        Status
	AttemptCount  int
	NextAttemptAt time.Time
	LastStatus    int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Attempts are read only for a single delivery; LastAttempt is kept on the record itself, so that a listing
	// shows it (nil before the first attempt).
	Attempts    []Attempt
	LastAttempt *Attempt
	// OutcomeSeq is the position of the outcome that left the delivery in this state on the outcome log (0: none
	// known): of two readings of one delivery's state, the one with the higher position is the newer.
	OutcomeSeq uint64
}

// Attempt is one request to the endpoint and what came of it.
type Attempt struct {
	Number     int
	At         time.Time
	StatusCode int // 0 when no response arrived
	Latency    time.Duration
	Response   string // first ResponseExcerpt bytes of the body
	Error      string
	// RequestHeaders and RequestBody are the request as it was sent (the body's first RequestExcerpt bytes), with
	// every custom header's value masked: they are often the receiver's credentials. Empty for an attempt that
	// sent nothing (a body that could not be made) and in records written before attempts kept them.
	RequestHeaders []Header
	RequestBody    string
}

// Header is one request header as sent.
type Header struct{ Name, Value string }

// RequestExcerpt is how much of a request body an attempt keeps: every full or thin body whole; a jq output,
// which may be up to 256 KiB, its start.
const RequestExcerpt = 64 << 10

// ResponseExcerpt is how much of a response body an attempt keeps.
const ResponseExcerpt = 4 << 10

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// DeliveryID is deterministic in (event, endpoint): an event delivered twice by the bus makes the same id, so the
// second insert fails on the unique _id and no second delivery exists.
func DeliveryID(eventID, endpointID string) string {
	sum := sha256.Sum256([]byte(eventID + "\x00" + endpointID))
	return "msg_" + strings.ToLower(idEncoding.EncodeToString(sum[:16]))
}

// Event is a case event as versions before deliveries kept the event's stream position stored it for resends.
type Event struct {
	ID         string
	Tenant     string
	Type       string
	CaseID     string
	Version    int64
	OccurredAt time.Time
	Body       []byte // binary protobuf CaseEvent
}

// Outcome is an attempt together with the state it leaves the delivery in. Delivery identifies the delivery (id,
// tenant, endpoint, event); the first attempt creates the delivery's record from it.
type Outcome struct {
	Delivery      Delivery
	Attempt       Attempt
	Status        Status
	NextAttemptAt time.Time
	// Seq is the outcome's position on the outcome log, once it was read from there.
	Seq uint64
	// Redaction, when set, makes this entry of the outcome log no attempt but the redaction of a case: every
	// attempt of the case's deliveries already in the delivery log, and every one written to it afterwards, loses
	// the body sent, what the receiver answered and the error text (all may hold or quote the case). Delivery and Attempt are empty.
	Redaction *Redaction
}

// Redaction is a case whose personal data was erased (the case.redacted event).
type Redaction struct {
	Tenant  string
	CaseID  string
	EventID string
	At      time.Time
}

// ErasedText replaces an attempt's error text once its case was redacted: the status code and the timing stay.
const ErasedText = "(erased: the case was redacted)"

// Erase is the attempt without the body it sent, what the receiver answered and its error text; the headers stay
// (ids, times, signatures and masked values: no case data).
func (a Attempt) Erase() Attempt {
	a.Response, a.RequestBody = "", ""
	if a.Error != "" {
		a.Error = ErasedText
	}
	return a
}

// State is the delivery as the outcome leaves it.
func (o Outcome) State() Delivery {
	d := o.Delivery
	a := o.Attempt
	d.Status, d.NextAttemptAt, d.OutcomeSeq = o.Status, o.NextAttemptAt, o.Seq
	d.AttemptCount, d.LastStatus, d.LastError, d.UpdatedAt, d.LastAttempt = a.Number, a.StatusCode, a.Error, a.At, &a
	return d
}

// Newer returns whichever of two readings of one delivery's state is the newer (nil when neither exists).
func Newer(a, b *Delivery) *Delivery {
	if a == nil || (b != nil && b.OutcomeSeq > a.OutcomeSeq) {
		return b
	}
	return a
}

// DeliveryFilter narrows ListDeliveries; zero fields do not filter.
type DeliveryFilter struct {
	EndpointID string
	Status     Status
	EventID    string
	Since      time.Time
	Until      time.Time
}

// Operation is an operational event: something an operator should know about, such as an endpoint disabled. It is
// listed to the tenant's admins and sent, as a notice, to the tenant's notice URL when one is set.
type Operation struct {
	// ID is the notice's id (ntc_…), its webhook-id when sent; empty in records of earlier versions.
	ID          string
	Kind        string
	Tenant      string
	EndpointID  string
	EndpointURL string
	Reason      string
	At          time.Time
}

// Kinds of operational events.
const (
	NoticeDisabled         = "endpoint.disabled"
	NoticeFailing          = "endpoint.failing"
	NoticeRecovered        = "endpoint.recovered"
	NoticeTransformLimited = "endpoint.transform_limited"
)

// NoticeSettings is where a tenant's notices go, and the secret that signs them.
type NoticeSettings struct {
	Tenant    string
	URL       string
	Secret    string
	UpdatedAt time.Time
}
