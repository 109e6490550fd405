// Package delivery is the domain of the webhook service: endpoints, deliveries and their attempts, the retry policy
// and the rules that turn an attempt's outcome into the next step. It does no I/O.
package delivery

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// Sentinel errors; adapters translate driver errors into them and grpcapi maps them to status codes.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrEventGone is a delivery whose event is no longer stored: past the event stream's retention, or erased
	// with its redacted case.
	ErrEventGone = errors.New("the event is no longer stored")
)

// Format chooses what the webhook body's data holds.
type Format int

const (
	FormatFull Format = iota + 1
	FormatThin
	FormatJQ
)

// DefaultConcurrency is the number of requests in flight to one endpoint when the endpoint names none.
const DefaultConcurrency = 4

// MaxConcurrency bounds what an endpoint may ask for, so that one endpoint cannot take every worker.
const MaxConcurrency = 64

// SecretOverlap is how long a rotated-out secret keeps signing beside its successor.
const SecretOverlap = 24 * time.Hour

// Endpoint is one receiver of one tenant's events.
type Endpoint struct {
	ID             string
	Tenant         string
	URL            string
	Description    string
	EventTypes     []string // empty: every type
	Disabled       bool
	DisabledReason string
	Headers        map[string]string
	Format         Format
	JQ             string
	RateLimit      int // requests per second; 0: no limit
	MaxConcurrency int // 0: DefaultConcurrency
	// PayloadVersion is the body shape the endpoint is pinned to (webhookbody.Versions); empty in endpoints made
	// before versions, which get the first one.
	PayloadVersion string
	// PerCase delivers each case's events one at a time, in version order (CaseLanes).
	PerCase bool
	// Ed25519 asks, at creation, for an Ed25519 signing key instead of an HMAC secret; afterwards the scheme is
	// that of the newest secret (SignsEd25519).
	Ed25519 bool
	Secrets []Secret
	// FailingSince is when the current run of failed attempts began; zero while the endpoint answers.
	FailingSince time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Secret is one signing secret, whsec_ + base64 of the key.
type Secret struct {
	Value     string
	CreatedAt time.Time
	ExpiresAt time.Time // zero for the current secret
}

// Matches reports whether the endpoint wants events of this type.
func (e Endpoint) Matches(eventType string) bool {
	return len(e.EventTypes) == 0 || slices.Contains(e.EventTypes, eventType)
}

// Concurrency is the number of requests the endpoint may have in flight.
func (e Endpoint) Concurrency() int {
	if e.MaxConcurrency <= 0 {
		return DefaultConcurrency
	}
	return e.MaxConcurrency
}

// SigningSecrets are the secrets that sign at now, newest first: the current one and any rotated out less than
// SecretOverlap ago.
func (e Endpoint) SigningSecrets(now time.Time) []string {
	var out []string
	for _, s := range e.Secrets {
		if s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt) {
			out = append(out, s.Value)
		}
	}
	return out
}

// Rotate makes next the current secret; the previous current secret expires after SecretOverlap and secrets that
// already expired are dropped.
func (e *Endpoint) Rotate(next string, now time.Time) Secret {
	kept := []Secret{{Value: next, CreatedAt: now}}
	for _, s := range e.Secrets {
		switch {
		case s.ExpiresAt.IsZero():
			s.ExpiresAt = now.Add(SecretOverlap)
			kept = append(kept, s)
		case now.Before(s.ExpiresAt):
			kept = append(kept, s)
		}
	}
	e.Secrets = kept
	return kept[0]
}

// SignsEd25519 reports whether the endpoint's newest secret is an Ed25519 signing key (whsk_).
func (e Endpoint) SignsEd25519() bool {
	return len(e.Secrets) > 0 && strings.HasPrefix(e.Secrets[0].Value, "whsk_")
}
