// Package signing implements Standard Webhooks (https://www.standardwebhooks.com) signatures: secrets shown as
// whsec_ + base64 of the key, headers webhook-id, webhook-timestamp and webhook-signature, the signature being
// v1, + base64 HMAC-SHA256 of "id.timestamp.body". It has no dependency besides the standard library so that the
// receiver package (pkg/webhooks) can mirror it.
package signing

import (
	"crypto/hmac"
	"crypto/rand"
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
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a secret as a webhook signing secret.
const SecretPrefix = "whsec_"

// KeyBytes is the size of the keys NewSecret makes; the spec allows 24 to 64.
const KeyBytes = 32

// Tolerance is how far a timestamp may be from the verifier's clock.
const Tolerance = 5 * time.Minute

var (
	ErrBadSecret    = errors.New("signing: the secret is not whsec_ followed by base64 of 24 to 64 bytes")
	ErrNoSignature  = errors.New("signing: missing webhook headers")
	ErrBadTimestamp = errors.New("signing: timestamp outside the tolerance")
	ErrMismatch     = errors.New("signing: no signature matches")
)

// NewSecret returns a fresh random secret.
func NewSecret() (string, error) {
	key := make([]byte, KeyBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("signing: random key: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// Key decodes a secret into its HMAC key.
func Key(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, ErrBadSecret
	}
	return key, nil
}

// Signer signs with one or more keys (during a rotation both the new and the previous one), newest first.
type Signer struct{ keys [][]byte }

// NewSigner decodes the secrets once, so that signing each request costs only the HMACs.
func NewSigner(secrets ...string) (*Signer, error) {
	s := &Signer{}
	for _, sec := range secrets {
		k, err := Key(sec)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, k)
	}
	if len(s.keys) == 0 {
		return nil, ErrBadSecret
	}
	return s, nil
}

// Signature is the webhook-signature value: one "v1,<base64>" per key, space-separated.
func (s *Signer) Signature(id string, ts time.Time, body []byte) string {
	var b strings.Builder
	unix := strconv.FormatInt(ts.Unix(), 10)
	for i, k := range s.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac(k, id, unix, body)))
	}
	return b.String()
}

// Sign sets the three Standard Webhooks headers on h.
func (s *Signer) Sign(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Signature(id, ts, body))
}

// Verify checks the headers of a received webhook against a secret, the way a receiver does.
func Verify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := Key(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrNoSignature
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(unix, 0)); d > Tolerance || d < -Tolerance {
		return ErrBadTimestamp
	}
	want := mac(key, id, tsText, body)
	for _, sig := range strings.Fields(sigs) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrMismatch
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
