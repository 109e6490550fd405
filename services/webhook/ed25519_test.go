package webhooksvc_test

import (
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// TestEd25519Endpoints: an endpoint created with the Ed25519 scheme signs v1a with a key the service keeps; its
// admin sees only the whpk_ public key, which verifies the requests; a rotation to HMAC signs with both schemes
// for the overlap, each verifiable on its own.
func TestEd25519Endpoints(t *testing.T) {
	e := newEnv(t)
	e.start()
	admin := as("acme-admin")
	rc := newReceiver(t, nil)
	ep, public := e.createEndpoint(rc.URL, func(p *casekeeperv1.Endpoint) {
		p.SignatureScheme = casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519
	})
	if !strings.HasPrefix(public, webhooks.PublicKeyPrefix) || ep.GetSignatureScheme() != casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519 {
		t.Fatalf("created with secret %q…, scheme %v; want a whpk_ public key and ED25519", public[:min(6, len(public))], ep.GetSignatureScheme())
	}
	revealed, err := e.client.RevealSecret(admin, &casekeeperv1.RevealSecretRequest{Id: ep.GetId()})
	if err != nil || len(revealed.GetSecrets()) != 1 || revealed.GetSecrets()[0].GetSecret() != public {
		t.Fatalf("RevealSecret: %v %v, want the public key only", revealed.GetSecrets(), err)
	}
	e.publish("acme", 1)
	testinfra.Eventually(t, 10*time.Second, "the first webhook", func() bool { return len(rc.Requests()) == 1 })
	first := rc.Requests()[0]
	if sig := first.Header.Get(webhooks.HeaderSignature); !strings.HasPrefix(sig, "v1a,") {
		t.Fatalf("webhook-signature %q, want v1a", sig)
	}
	if err := webhooks.Verify(public, first.Header, first.Body, 0); err != nil {
		t.Fatalf("verifying with the public key: %v", err)
	}

	// To HMAC: both sign during the overlap.
	rotated, err := e.client.RotateSecret(admin, &casekeeperv1.RotateSecretRequest{Id: ep.GetId(),
		SignatureScheme: casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256})
	if err != nil || !strings.HasPrefix(rotated.GetSecret().GetSecret(), webhooks.SecretPrefix) {
		t.Fatalf("RotateSecret to HMAC: %v %v", rotated, err)
	}
	testinfra.Eventually(t, 10*time.Second, "the rotation routed", func() bool {
		got, err := e.client.GetEndpoint(admin, &casekeeperv1.GetEndpointRequest{Id: ep.GetId()})
		return err == nil && got.GetEndpoint().GetSignatureScheme() == casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256
	})
	time.Sleep(1500 * time.Millisecond) // the routing table reloads
	e.publish("acme", 1)
	testinfra.Eventually(t, 10*time.Second, "the second webhook", func() bool { return len(rc.Requests()) == 2 })
	second := rc.Requests()[1]
	sig := second.Header.Get(webhooks.HeaderSignature)
	if !strings.Contains(sig, "v1,") || !strings.Contains(sig, "v1a,") {
		t.Fatalf("webhook-signature %q during the overlap, want a v1 and a v1a signature", sig)
	}
	for _, key := range []string{public, rotated.GetSecret().GetSecret()} {
		if err := webhooks.Verify(key, second.Header, second.Body, 0); err != nil {
			t.Errorf("verifying the overlap's request with %s…: %v", key[:5], err)
		}
	}
	if _, err := e.client.CreateEndpoint(admin, &casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{
		Url: rc.URL, SignatureScheme: 9}}); err == nil || !strings.Contains(err.Error(), "signature_scheme") {
		t.Fatalf("an unknown scheme: %v", err)
	}
}
