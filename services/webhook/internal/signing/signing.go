// Package signing makes endpoints' signing secrets and signs outgoing webhooks the Standard Webhooks way
// (https://www.standardwebhooks.com). The wire format — header names, whsec_ secrets, v1 HMAC-SHA256 signatures of
// "id.timestamp.body" — is pkg/webhooks', the package receivers verify with, so sender and receiver cannot drift.
package signing

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/casekeeper/core/pkg/webhooks"
)

// KeyBytes is the size of the keys NewSecret makes; the spec allows 24 to 64.
const KeyBytes = 32

// NewSecret returns a fresh random secret.
func NewSecret() (string, error) {
	key := make([]byte, KeyBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("signing: random key: %w", err)
	}
	return webhooks.SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// NewSigningKey returns a fresh Ed25519 whsk_ key (the endpoint keeps it; its admin sees the whpk_ public key).
func NewSigningKey() (string, error) {
	priv, _, err := webhooks.NewSigningKey()
	return priv, err
}

// Signer signs with one or more secrets (during a rotation both the new and the previous one), newest first.
type Signer struct{ secrets []string }

// NewSigner checks the secrets once, so that signing cannot fail later.
func NewSigner(secrets ...string) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, webhooks.ErrBadSecret
	}
	for _, sec := range secrets {
		var err error
		if webhooks.IsSigningKey(sec) {
			_, err = webhooks.DecodeSigningKey(sec)
		} else {
			_, err = webhooks.DecodeSecret(sec)
		}
		if err != nil {
			return nil, err
		}
	}
	return &Signer{secrets: secrets}, nil
}

// Signature is the webhook-signature value: one "v1,<base64>" per secret, space-separated.
func (s *Signer) Signature(id string, ts time.Time, body []byte) string {
	sig, err := webhooks.Sign(id, ts, body, s.secrets...)
	if err != nil {
		// NewSigner checked every secret.
		panic(fmt.Sprintf("signing: a checked secret failed: %v", err))
	}
	return sig
}

// Sign sets the three Standard Webhooks headers on h.
func (s *Signer) Sign(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(webhooks.HeaderID, id)
	h.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(webhooks.HeaderSignature, s.Signature(id, ts, body))
}
