// Package webhookbody builds the JSON bodies of Case-keeper webhooks from a case event: the full format (the case
// after the change) and the thin one (where to fetch it, no personal data). The webhook service sends them, and
// the SDK's `casekeeper webhooks listen` builds the same bytes from the change feed, so that a receiver developed
// against one works against the other. proto/schemas describes both formats.
package webhookbody

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

var marshal = protojson.MarshalOptions{UseProtoNames: true}

// Payload versions. An endpoint is pinned to the version that was current when it was made and keeps that body
// shape until its administrator moves it to a newer one; every request names its version in the
// Casekeeper-Payload-Version header. Within a version changes are additive only: a new field, a new event type, a
// new enum value (docs/webhooks.md, "Payload versions"). Anything else — a field removed, renamed, retyped or given
// another meaning — makes a new version, with its own case in Versioned.
const (
	Version20261201 = "2026-12-01"
	// CurrentVersion is what new endpoints get.
	CurrentVersion = Version20261201
	// HeaderVersion names a request's payload version.
	HeaderVersion = "Casekeeper-Payload-Version"
)

// Versions are every payload version still sent, oldest first.
var Versions = []string{Version20261201}

// KnownVersion reports whether v is a version still sent.
func KnownVersion(v string) bool { return slices.Contains(Versions, v) }

// FullAt is the full body in the shape of version v; an empty v is the first version, which every endpoint made
// before versions existed has been getting.
func FullAt(e *casekeeperv1.CaseEvent, v string) ([]byte, error) {
	switch v {
	case "", Version20261201:
		return Full(e)
	}
	return nil, fmt.Errorf("webhookbody: payload version %q is not one of %v", v, Versions)
}

// Full is the standard body {"type", "timestamp", "data": case}.
func Full(e *casekeeperv1.CaseEvent) ([]byte, error) {
	data, err := marshal.Marshal(e.GetData())
	if err != nil {
		return nil, fmt.Errorf("encoding case: %w", err)
	}
	// protojson varies its whitespace on purpose; compacting makes the body stable across builds.
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, fmt.Errorf("compacting case: %w", err)
	}
	return envelope(e, json.RawMessage(compact.Bytes()))
}

// Thin names the event and where to fetch the case (gatewayURL + /v1/cases/{id}), with no personal data.
func Thin(e *casekeeperv1.CaseEvent, gatewayURL string) ([]byte, error) {
	return envelope(e, map[string]any{
		"event_id":     e.GetId(),
		"type":         e.GetType(),
		"case_id":      e.GetCaseId(),
		"case_version": e.GetCaseVersion(),
		"url":          gatewayURL + "/v1/cases/" + e.GetCaseId(),
	})
}

func envelope(e *casekeeperv1.CaseEvent, data any) ([]byte, error) {
	return json.Marshal(struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      any    `json:"data"`
	}{e.GetType(), e.GetOccurredAt().AsTime().UTC().Format(time.RFC3339Nano), data})
}
