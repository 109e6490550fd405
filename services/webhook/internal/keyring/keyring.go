// Package keyring seals the values of an endpoint that are somebody's credentials — signing secrets and custom
// header values — before they are stored, with envelope encryption: each stored endpoint has its own data key
// (AES-256-GCM), stored wrapped by the service's key from configuration; the values are sealed with the data key
// and bound to their endpoint and field, so that a sealed value moved to another record does not open.
//
// Rotation: the current key wraps every data key written; old keys still unwrap, so a new key can be put in place
// while every stored endpoint is still wrapped by its predecessor, and each is rewrapped at its next write (or by
// Store.Reseal at start-up).
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// ErrOpen is a sealed value that no key opens: a missing old key, or a value that was tampered with or moved.
var ErrOpen = errors.New("cannot open sealed value")

// Keyring holds the current key and the old keys still accepted.
type Keyring struct {
	current key
	old     []key
}

type key struct {
	id   string // the first 8 bytes of SHA-256 of the key, hex: names the key in what it sealed, reveals nothing
	aead cipher.AEAD
}

func newKey(raw []byte) (key, error) {
	if len(raw) != KeySize {
		return key{}, fmt.Errorf("a key must be %d bytes, this one has %d", KeySize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	sum := sha256.Sum256(raw)
	return key{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// New builds a keyring from the current key and any old ones, each 32 bytes.
func New(current []byte, old ...[]byte) (*Keyring, error) {
	cur, err := newKey(current)
	if err != nil {
		return nil, fmt.Errorf("current key: %w", err)
	}
	kr := &Keyring{current: cur}
	for i, o := range old {
		k, err := newKey(o)
		if err != nil {
			return nil, fmt.Errorf("old key %d: %w", i+1, err)
		}
		kr.old = append(kr.old, k)
	}
	return kr, nil
}

// Parse reads a key in standard base64 (as `openssl rand -base64 32` writes it) and old keys as a comma-separated
// list of the same.
func Parse(current, old string) (*Keyring, error) {
	cur, err := decodeKey(current)
	if err != nil {
		return nil, fmt.Errorf("current key: %w", err)
	}
	var olds [][]byte
	for i, o := range strings.Split(old, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		k, err := decodeKey(o)
		if err != nil {
			return nil, fmt.Errorf("old key %d: %w", i+1, err)
		}
		olds = append(olds, k)
	}
	return New(cur, olds...)
}

func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("not base64")
	}
	if len(b) != KeySize {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), KeySize)
	}
	return b, nil
}

// CurrentID names the current key, as it appears in what it wraps.
func (kr *Keyring) CurrentID() string { return kr.current.id }

// Wrapped tells which key wrapped a stored data key ("" when it is not one).
func Wrapped(wrapped string) string {
	rest, ok := strings.CutPrefix(wrapped, wrapPrefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, ":")
	return id
}

const (
	wrapPrefix = "kr1:" // kr1:<key id>:<base64 nonce|ciphertext>
	sealPrefix = "sv1:" // sv1:<base64 nonce|ciphertext>
)

// DataKey is one stored record's key.
type DataKey struct{ aead cipher.AEAD }

// NewDataKey makes a fresh data key for a record and returns it with its wrapped form, bound to the record's id.
func (kr *Keyring) NewDataKey(record string) (*DataKey, string, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	dk, err := dataKey(raw)
	if err != nil {
		return nil, "", err
	}
	return dk, wrapPrefix + kr.current.id + ":" + seal(kr.current.aead, raw, "datakey\x00"+record), nil
}

// Open unwraps a record's data key with whichever key wrapped it.
func (kr *Keyring) Open(record, wrapped string) (*DataKey, error) {
	rest, ok := strings.CutPrefix(wrapped, wrapPrefix)
	id, body, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return nil, fmt.Errorf("%w: not a wrapped data key", ErrOpen)
	}
	for _, k := range append([]key{kr.current}, kr.old...) {
		if k.id != id {
			continue
		}
		raw, err := open(k.aead, body, "datakey\x00"+record)
		if err != nil {
			return nil, err
		}
		return dataKey(raw)
	}
	return nil, fmt.Errorf("%w: wrapped by key %s, which is neither WEBHOOK_SECRETS_KEY nor one of WEBHOOK_SECRETS_OLD_KEYS", ErrOpen, id)
}

func dataKey(raw []byte) (*DataKey, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &DataKey{aead: aead}, nil
}

// Seal encrypts value for the named field of the record the data key belongs to.
func (dk *DataKey) Seal(field, value string) string {
	return sealPrefix + seal(dk.aead, []byte(value), field)
}

// Open decrypts what Seal made for the same field.
func (dk *DataKey) Open(field, sealed string) (string, error) {
	body, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", fmt.Errorf("%w: %s is not a sealed value", ErrOpen, field)
	}
	b, err := open(dk.aead, body, field)
	if err != nil {
		return "", fmt.Errorf("%w (%s)", err, field)
	}
	return string(b), nil
}

func seal(aead cipher.AEAD, plain []byte, aad string) string {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(aad)))
}

func open(aead cipher.AEAD, body, aad string) ([]byte, error) {
	b, err := base64.RawStdEncoding.DecodeString(body)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: malformed", ErrOpen)
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrOpen)
	}
	return plain, nil
}
