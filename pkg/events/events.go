// Package events defines how case events travel on JetStream: the stream, the subjects and the encoding of the
// envelope. The case service publishes; the webhook service and the gateway consume.
package events

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// Stream is the JetStream stream that holds every case event.
const Stream = "CASES"

// Event types; a case change produces exactly one. Receivers read the same names, so they are defined once, in
// pkg/webhooks (which depends on nothing but the standard library).
const (
	TypeCreated         = webhooks.TypeCreated
	TypeUpdated         = webhooks.TypeUpdated
	TypeStatusChanged   = webhooks.TypeStatusChanged
	TypeDocumentAdded   = webhooks.TypeDocumentAdded
	TypeCheckRecorded   = webhooks.TypeCheckRecorded
	TypeRiskSet         = webhooks.TypeRiskSet
	TypeReviewCompleted = webhooks.TypeReviewCompleted
	TypeRedacted        = webhooks.TypeRedacted
)

// Types lists every event type, for validating filters.
var Types = webhooks.Types

// Headers set on every event message, so that consumers can route without decoding the body.
const (
	HeaderType    = "Ck-Event-Type"
	HeaderTenant  = "Ck-Tenant"
	HeaderCaseID  = "Ck-Case-Id"
	HeaderVersion = "Ck-Case-Version"
)

// Subject is where the events of one case go: cases.<tenant>.<case id>. The tenant must be tenant.Valid, which
// keeps it a single subject token.
func Subject(tenant, caseID string) string { return "cases." + tenant + "." + caseID }

// TenantSubjects matches every event of one tenant.
func TenantSubjects(tenant string) string { return "cases." + tenant + ".>" }

// StreamConfig is the CASES stream: file storage, limits retention, deduplication by Nats-Msg-Id within window.
// The last event on a case's subject is the case's record: direct gets let any replica of the stream serve it.
func StreamConfig(maxAge time.Duration, replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	// Republishing after a crash happens within minutes; a day of deduplication covers long NATS outages. JetStream
	// wants the window no longer than the retention.
	dedupe := min(24*time.Hour, maxAge)
	return jetstream.StreamConfig{
		Name:        Stream,
		Description: "Every change to every KYC case, one message per case version.",
		Subjects:    []string{"cases.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      maxAge,
		Replicas:    replicas,
		Duplicates:  dedupe,
		AllowDirect: true,
	}
}

// Message encodes an event as a NATS message with its routing headers and Nats-Msg-Id = event id.
func Message(e *casekeeperv1.CaseEvent) (*nats.Msg, error) {
	body, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding event %s: %w", e.GetId(), err)
	}
	return RawMessage(e.GetTenant(), e.GetCaseId(), e.GetId(), e.GetType(), e.GetCaseVersion(), body), nil
}

// RawMessage wraps an already encoded CaseEvent (the case service encodes the case once, for the event and its checks).
func RawMessage(tenant, caseID, eventID, eventType string, version int64, body []byte) *nats.Msg {
	m := nats.NewMsg(Subject(tenant, caseID))
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, eventID)
	m.Header.Set(HeaderType, eventType)
	m.Header.Set(HeaderTenant, tenant)
	m.Header.Set(HeaderCaseID, caseID)
	m.Header.Set(HeaderVersion, strconv.FormatInt(version, 10))
	return m
}

// Decode reads an event from a message body.
func Decode(data []byte) (*casekeeperv1.CaseEvent, error) {
	var e casekeeperv1.CaseEvent
	if err := proto.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decoding case event: %w", err)
	}
	return &e, nil
}
