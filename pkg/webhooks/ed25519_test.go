package webhooks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEd25519SignaturesVerifyWithThePublicKeyOnly(t *testing.T) {
	priv, pub, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := PublicKeyOf(priv); err != nil || got != pub {
		t.Fatalf("PublicKeyOf: %q %v, want %q", got, err, pub)
	}
	now := time.Now()
	body := []byte(`{"type":"case.created"}`)
	h, err := SignedHeaders("msg_1", now, body, priv)
	if err != nil {
		t.Fatal(err)
	}
	if sig := h.Get(HeaderSignature); !strings.HasPrefix(sig, "v1a,") || strings.Contains(sig, " ") {
		t.Fatalf("signature %q, want one v1a", sig)
	}
	if err := Verify(pub, h, body, 0); err != nil {
		t.Fatalf("verifying with the public key: %v", err)
	}
	if err := Verify(pub, h, []byte(`{"type":"case.redacted"}`), 0); !errors.Is(err, ErrNoMatchingSignature) {
		t.Fatalf("a changed body: %v", err)
	}
	_, other, _ := NewSigningKey()
	if err := Verify(other, h, body, 0); !errors.Is(err, ErrNoMatchingSignature) {
		t.Fatalf("another key: %v", err)
	}
	// During a rotation from HMAC to Ed25519 (or back) the request carries both, and either verifies it.
	hmacSecret := "whsec_" + strings.Repeat("A", 43) + "="
	both, err := SignedHeaders("msg_2", now, body, priv, hmacSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{pub, hmacSecret} {
		if err := Verify(key, both, body, 0); err != nil {
			t.Errorf("verifying a two-scheme request with %s…: %v", key[:5], err)
		}
	}
	// The private key is no verifying key, and neither is garbage.
	for _, bad := range []string{priv, "whpk_abc", "whpk_" + strings.Repeat("A", 10)} {
		if _, err := NewVerifier([]string{bad}); err == nil {
			t.Errorf("NewVerifier(%q…) accepted it", bad[:6])
		}
	}
}
