// Package webhooks is for receivers of Case-keeper webhooks: it verifies the Standard Webhooks signature of a
// request (https://www.standardwebhooks.com), refuses requests signed too long ago or too far in the future, and
// decodes the body into typed events. docs/webhooks.md is the guide; this package is its Go implementation.
//
//	v, err := webhooks.NewVerifier([]string{os.Getenv("WEBHOOK_SECRET")})
//	...
//	http.Handle("POST /webhooks", webhooks.Middleware(v, webhooks.FormatFull, http.HandlerFunc(
//		func(w http.ResponseWriter, r *http.Request) {
//			e := webhooks.FromContext(r.Context())
//			// dedupe by e.ID, drop the event when e.CaseVersion() is older than the one you hold, then act.
//		})))
//
// It is a module of its own that depends on the standard library alone, so that a receiver does not pull in what
// the services need (NATS, MongoDB, gRPC); module_test.go keeps it so. A full payload's case arrives as JSON
// (Event.Data), which protojson decodes into the casekeeper.v1 protos for a receiver that wants them typed.
package webhooks

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of Standard Webhooks.
const (
	// HeaderID is the delivery's id: the same on every retry of one delivery, so receivers deduplicate by it.
	HeaderID = "webhook-id"
	// HeaderTimestamp is when this attempt was signed, in Unix seconds.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature holds one or more space-separated "v1,<base64 HMAC-SHA256>": two during the 24 hours after
	// a secret rotation, one made with each secret.
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret; the rest is the base64 of the HMAC key.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the receiver's clock, either way.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify; every failure wraps exactly one of them, so errors.Is tells the cause.
var (
	ErrBadSecret      = errors.New("webhooks: the secret is not whsec_ followed by base64 of the key")
	ErrMissingHeaders = errors.New("webhooks: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadTimestamp   = errors.New("webhooks: webhook-timestamp is not Unix seconds")
	// ErrTimestampOutOfTolerance is a request signed too long ago (a replay) or too far in the future.
	ErrTimestampOutOfTolerance = errors.New("webhooks: webhook-timestamp is outside the tolerance")
	ErrNoMatchingSignature     = errors.New("webhooks: no signature matches")
)

// Verifier checks signed requests against one or more secrets (whsec_, for v1 signatures) or public keys (whpk_,
// for v1a). Safe for concurrent use.
type Verifier struct {
	keys      [][]byte
	publics   []ed25519.PublicKey
	tolerance time.Duration
	now       func() time.Time
}

// Option changes a Verifier.
type Option func(*Verifier) error

// WithTolerance sets how far webhook-timestamp may be from now (DefaultTolerance when not given). It must be
// positive: without a bound, a captured request could be replayed forever.
func WithTolerance(d time.Duration) Option {
	return func(v *Verifier) error {
		if d <= 0 {
			return fmt.Errorf("webhooks: tolerance %s must be positive", d)
		}
		v.tolerance = d
		return nil
	}
}

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) error {
		if now == nil {
			return errors.New("webhooks: nil clock")
		}
		v.now = now
		return nil
	}
}

// NewVerifier accepts a request signed with any of secrets. Give two while you roll a rotated secret out to your
// receivers (the sender signs with both for 24 hours, so one of them is enough on each request).
func NewVerifier(secrets []string, opts ...Option) (*Verifier, error) {
	v := &Verifier{tolerance: DefaultTolerance, now: time.Now}
	for _, s := range secrets {
		if strings.HasPrefix(strings.TrimSpace(s), PublicKeyPrefix) {
			pk, err := DecodePublicKey(s)
			if err != nil {
				return nil, err
			}
			v.publics = append(v.publics, pk)
			continue
		}
		k, err := DecodeSecret(s)
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, k)
	}
	if len(v.keys)+len(v.publics) == 0 {
		return nil, fmt.Errorf("%w: no secret given", ErrBadSecret)
	}
	for _, o := range opts {
		if err := o(v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// DecodeSecret returns the HMAC key of a whsec_ secret.
func DecodeSecret(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(secret), SecretPrefix)
	if !ok {
		return nil, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	// The spec wants keys of 24 to 64 bytes; a shorter one is a copy-paste accident, not a real secret.
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, ErrBadSecret
	}
	return key, nil
}

// Verify checks the request's three headers against body, the exact bytes received (verify before parsing: any
// re-encoding changes them). It returns nil when the timestamp is within the tolerance and at least one v1
// signature was made with one of the verifier's secrets.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	signedAt, err := parseTimestamp(ts)
	if err != nil {
		return err
	}
	if d := v.now().Sub(signedAt); d > v.tolerance || d < -v.tolerance {
		return fmt.Errorf("%w: signed at %s, %s away from now", ErrTimestampOutOfTolerance, signedAt.UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	// Compute each expected MAC once, then compare every offered signature with each in constant time.
	want := make([][]byte, len(v.keys))
	for i, k := range v.keys {
		want[i] = mac(k, id, ts, body)
	}
	match := false
	var content []byte
	for _, sig := range strings.Fields(sigs) {
		version, value, ok := strings.Cut(sig, ",")
		if ok && version == "v1a" && len(v.publics) > 0 {
			got, err := base64.StdEncoding.DecodeString(value)
			if err != nil || len(got) != ed25519.SignatureSize {
				continue
			}
			if content == nil {
				content = signedContent(id, ts, body)
			}
			for _, pk := range v.publics {
				if ed25519.Verify(pk, content, got) {
					match = true
				}
			}
			continue
		}
		if !ok || version != "v1" {
			continue // other schemes (future versions) are not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err != nil || len(got) != sha256.Size {
			continue
		}
		for _, w := range want {
			// No early return: the time taken must not tell which signature or key came close.
			if hmac.Equal(got, w) {
				match = true
			}
		}
	}
	if !match {
		return ErrNoMatchingSignature
	}
	return nil
}

// Verify checks one request against one secret with DefaultTolerance (tolerance 0) or the given one.
func Verify(secret string, h http.Header, body []byte, tolerance time.Duration) error {
	opts := []Option{}
	if tolerance != 0 {
		opts = append(opts, WithTolerance(tolerance))
	}
	v, err := NewVerifier([]string{secret}, opts...)
	if err != nil {
		return err
	}
	return v.Verify(h, body)
}

// Sign returns the webhook-signature value the sender puts on body: "v1,<base64>" per whsec_ secret and
// "v1a,<base64>" per whsk_ key, space-separated.
// Use it to test a receiver locally (see SignedHeaders).
func Sign(id string, ts time.Time, body []byte, secrets ...string) (string, error) {
	if len(secrets) == 0 {
		return "", fmt.Errorf("%w: no secret given", ErrBadSecret)
	}
	unix := strconv.FormatInt(ts.Unix(), 10)
	parts := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if IsSigningKey(s) {
			pk, err := DecodeSigningKey(s)
			if err != nil {
				return "", err
			}
			parts = append(parts, "v1a,"+base64.StdEncoding.EncodeToString(ed25519.Sign(pk, signedContent(id, unix, body))))
			continue
		}
		k, err := DecodeSecret(s)
		if err != nil {
			return "", err
		}
		parts = append(parts, "v1,"+base64.StdEncoding.EncodeToString(mac(k, id, unix, body)))
	}
	return strings.Join(parts, " "), nil
}

// SignedHeaders returns the three headers of a webhook as Case-keeper would send it, for tests of a receiver.
func SignedHeaders(id string, ts time.Time, body []byte, secrets ...string) (http.Header, error) {
	sig, err := Sign(id, ts, body, secrets...)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	h.Set("Content-Type", "application/json")
	return h, nil
}

// parseTimestamp accepts decimal Unix seconds only: no sign, no fraction, no spaces, at most 12 digits (beyond the
// year 33000), so that no odd spelling of a number reaches the clock arithmetic.
func parseTimestamp(ts string) (time.Time, error) {
	if len(ts) == 0 || len(ts) > 12 {
		return time.Time{}, ErrBadTimestamp
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return time.Time{}, ErrBadTimestamp
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, ErrBadTimestamp
	}
	return time.Unix(n, 0), nil
}

func mac(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}
