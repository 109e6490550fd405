package casekeeper

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// Receiving webhooks: github.com/casekeeper/core/pkg/webhooks under the names of this package, so that a backend
// that both follows the feed and receives webhooks needs this one import. docs/webhooks.md is the guide.

// Event types: a change to a case produces exactly one event.
const (
	TypeCreated         = webhooks.TypeCreated
	TypeUpdated         = webhooks.TypeUpdated
	TypeStatusChanged   = webhooks.TypeStatusChanged
	TypeDocumentAdded   = webhooks.TypeDocumentAdded
	TypeCheckRecorded   = webhooks.TypeCheckRecorded
	TypeRiskSet         = webhooks.TypeRiskSet
	TypeReviewCompleted = webhooks.TypeReviewCompleted
	TypeRedacted        = webhooks.TypeRedacted
	// TypeTest is the sample event of "send test event" (webhooks only).
	TypeTest = webhooks.TypeTest
)

// EventTypes lists every event type of a real case change.
func EventTypes() []string { return append([]string(nil), webhooks.Types...) }

// Standard Webhooks header names and the secret prefix.
const (
	HeaderWebhookID        = webhooks.HeaderID
	HeaderWebhookTimestamp = webhooks.HeaderTimestamp
	HeaderWebhookSignature = webhooks.HeaderSignature
	WebhookSecretPrefix    = webhooks.SecretPrefix
	// WebhookTolerance is how far a webhook-timestamp may be from the receiver's clock by default.
	WebhookTolerance = webhooks.DefaultTolerance
)

type (
	// WebhookVerifier checks signed requests against one or more secrets.
	WebhookVerifier = webhooks.Verifier
	// WebhookVerifierOption changes a WebhookVerifier (WithWebhookTolerance).
	WebhookVerifierOption = webhooks.Option
	// WebhookEvent is one verified webhook.
	WebhookEvent = webhooks.Event
	// WebhookThinEvent is the data of a thin payload.
	WebhookThinEvent = webhooks.ThinEvent
	// WebhookFormat is an endpoint's payload format.
	WebhookFormat = webhooks.Format
	// WebhookMiddlewareOption changes WebhookMiddleware.
	WebhookMiddlewareOption = webhooks.MiddlewareOption
)

// Payload formats.
const (
	WebhookFormatFull = webhooks.FormatFull
	WebhookFormatThin = webhooks.FormatThin
	WebhookFormatRaw  = webhooks.FormatRaw
)

// Verification failures; each failure of Verify wraps exactly one.
var (
	ErrWebhookBadSecret               = webhooks.ErrBadSecret
	ErrWebhookMissingHeaders          = webhooks.ErrMissingHeaders
	ErrWebhookBadTimestamp            = webhooks.ErrBadTimestamp
	ErrWebhookTimestampOutOfTolerance = webhooks.ErrTimestampOutOfTolerance
	ErrWebhookNoMatchingSignature     = webhooks.ErrNoMatchingSignature
	ErrWebhookBadPayload              = webhooks.ErrBadPayload
)

// NewWebhookVerifier accepts requests signed with any of secrets (whsec_…).
func NewWebhookVerifier(secrets []string, opts ...WebhookVerifierOption) (*WebhookVerifier, error) {
	return webhooks.NewVerifier(secrets, opts...)
}

// WithWebhookTolerance sets how far webhook-timestamp may be from now.
func WithWebhookTolerance(d time.Duration) WebhookVerifierOption { return webhooks.WithTolerance(d) }

// WebhookMiddleware verifies each request, refuses the bad ones (400/401/405/413) and hands next the decoded event
// (WebhookFromContext).
func WebhookMiddleware(v *WebhookVerifier, format WebhookFormat, next http.Handler, opts ...WebhookMiddlewareOption) http.Handler {
	return webhooks.Middleware(v, format, next, opts...)
}

// WebhookFromContext returns the event WebhookMiddleware verified, from the request's context.
func WebhookFromContext(ctx context.Context) *WebhookEvent { return webhooks.FromContext(ctx) }

// DecodeWebhook reads a verified body in the given format.
func DecodeWebhook(format WebhookFormat, body []byte) (*WebhookEvent, error) {
	return webhooks.Decode(format, body)
}

// WebhookCase decodes a full payload's case into the typed proto (unknown fields, added later, are ignored).
func WebhookCase(e *WebhookEvent) (*casekeeperv1.Case, error) {
	var c casekeeperv1.Case
	if err := unmarshal.Unmarshal(e.Data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// SignWebhook returns the headers Case-keeper puts on a webhook body, for testing a receiver.
func SignWebhook(id string, at time.Time, body []byte, secrets ...string) (http.Header, error) {
	return webhooks.SignedHeaders(id, at, body, secrets...)
}

// WithWebhookMaxBodyBytes bounds the body WebhookMiddleware reads (1 MiB by default).
func WithWebhookMaxBodyBytes(n int64) WebhookMiddlewareOption { return webhooks.WithMaxBodyBytes(n) }

// WithWebhookRejectHook is told of every request WebhookMiddleware refuses, with the status and the reason.
func WithWebhookRejectHook(f func(r *http.Request, status int, err error)) WebhookMiddlewareOption {
	return webhooks.WithRejectHook(f)
}

// NewWebhookSecret makes a random signing secret, whsec_ and the base64 of 32 bytes, as endpoints get.
func NewWebhookSecret() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}
