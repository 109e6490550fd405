package webhooks

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Asymmetric signatures (Standard Webhooks "v1a"): the sender signs "id.timestamp.body" with an Ed25519 private
// key, whsk_ followed by its base64; the receiver verifies with the public key, whpk_ followed by its base64, which
// can be shared freely: it cannot sign.
const (
	SigningKeyPrefix = "whsk_"
	PublicKeyPrefix  = "whpk_"
)

// ErrBadKey is a whsk_ or whpk_ value that is not base64 of an Ed25519 key.
var ErrBadKey = errors.New("webhooks: the key is not whsk_ or whpk_ followed by base64 of an Ed25519 key")

// NewSigningKey returns a fresh whsk_ private key and its whpk_ public key.
func NewSigningKey() (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("webhooks: generating an Ed25519 key: %w", err)
	}
	return SigningKeyPrefix + base64.StdEncoding.EncodeToString(priv.Seed()), PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub), nil
}

// IsSigningKey reports whether s is a whsk_ private key (as opposed to a whsec_ secret).
func IsSigningKey(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), SigningKeyPrefix) }

// DecodeSigningKey reads a whsk_ key: base64 of the 32-byte seed, or of the 64-byte private key.
func DecodeSigningKey(s string) (ed25519.PrivateKey, error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(s), SigningKeyPrefix)
	if !ok {
		return nil, ErrBadKey
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	switch {
	case err != nil:
		return nil, ErrBadKey
	case len(b) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case len(b) == ed25519.PrivateKeySize:
		return ed25519.PrivateKey(b), nil
	}
	return nil, ErrBadKey
}

// DecodePublicKey reads a whpk_ key.
func DecodePublicKey(s string) (ed25519.PublicKey, error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(s), PublicKeyPrefix)
	if !ok {
		return nil, ErrBadKey
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, ErrBadKey
	}
	return ed25519.PublicKey(b), nil
}

// PublicKeyOf is the whpk_ public key of a whsk_ private key.
func PublicKeyOf(private string) (string, error) {
	k, err := DecodeSigningKey(private)
	if err != nil {
		return "", err
	}
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey)), nil
}

// signedContent is what both schemes sign.
func signedContent(id, ts string, body []byte) []byte {
	msg := make([]byte, 0, len(id)+len(ts)+2+len(body))
	msg = append(msg, id...)
	msg = append(msg, '.')
	msg = append(msg, ts...)
	msg = append(msg, '.')
	return append(msg, body...)
}
