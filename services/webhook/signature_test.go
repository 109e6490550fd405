package webhooksvc_test

import (
	"encoding/json"
	"github.com/casekeeper/core/pkg/testinfra"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/webhook/internal/signing"
)

// standardWebhooksPython returns a Python interpreter that has the PyPI package `standardwebhooks` (code we did not
// write), creating a virtualenv under <repo>/.cache/venv and installing the package when it is missing, so that the
// test runs on a fresh machine.
func standardWebhooksPython(t testing.TB) string {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	venv := filepath.Join(repo, ".cache", "venv")
	py := filepath.Join(venv, "bin", "python")
	if exec.Command(py, "-c", "import standardwebhooks").Run() == nil {
		return py
	}
	if _, err := os.Stat(py); err != nil {
		t.Logf("creating a Python virtualenv in %s", venv)
		if out, err := exec.Command("python3", "-m", "venv", venv).CombinedOutput(); err != nil {
			t.Fatalf("python3 -m venv: %v\n%s", err, out)
		}
	}
	t.Logf("installing the PyPI package standardwebhooks into %s", venv)
	if out, err := exec.Command(py, "-m", "pip", "install", "--quiet", "standardwebhooks").CombinedOutput(); err != nil {
		t.Fatalf("pip install standardwebhooks: %v\n%s", err, out)
	}
	return py
}

// verifyWithPyPI verifies one received webhook with standardwebhooks.Webhook(secret).verify.
func verifyWithPyPI(t testing.TB, py, secret string, r testinfra.Request) error {
	t.Helper()
	headers, _ := json.Marshal(map[string]string{
		"webhook-id":        r.Header.Get("webhook-id"),
		"webhook-timestamp": r.Header.Get("webhook-timestamp"),
		"webhook-signature": r.Header.Get("webhook-signature"),
	})
	script := `
import json, sys
from standardwebhooks.webhooks import Webhook
secret, headers, body = sys.argv[1], json.loads(sys.argv[2]), sys.stdin.buffer.read()
Webhook(secret).verify(body, headers)
`
	cmd := exec.Command(py, "-c", script, secret, string(headers))
	cmd.Stdin = strings.NewReader(string(r.Body))
	if out, err := cmd.CombinedOutput(); err != nil {
		return &pyError{err: err, out: string(out)}
	}
	return nil
}

type pyError struct {
	err error
	out string
}

func (e *pyError) Error() string { return e.err.Error() + ": " + e.out }

// Our signatures verify with the standardwebhooks package from PyPI, before and after a rotation (when both the new
// and the previous secret sign), and the body has the documented shape.
func TestSignaturesVerifyWithPyPIStandardWebhooks(t *testing.T) {
	py := standardWebhooksPython(t)
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, nil)
	ep, secret := e.createEndpoint(rc.URL)
	e.publish("acme", 1)
	testinfra.Eventually(t, 10*time.Second, "the first webhook", func() bool { return len(rc.Requests()) == 1 })
	first := rc.Requests()[0]
	if err := verifyWithPyPI(t, py, secret, first); err != nil {
		t.Fatalf("standardwebhooks refused our signature: %v", err)
	}
	if err := webhooks.Verify(secret, first.Header, first.Body, webhooks.DefaultTolerance); err != nil {
		t.Fatalf("our verifier: %v", err)
	}
	var body struct {
		Type      string                     `json:"type"`
		Timestamp string                     `json:"timestamp"`
		Data      map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(first.Body, &body); err != nil || body.Type != "case.created" || body.Timestamp == "" || body.Data["external_ref"] == nil {
		t.Fatalf("body %s (%v)", first.Body, err)
	}
	other, _ := signing.NewSecret()
	if err := verifyWithPyPI(t, py, other, first); err == nil {
		t.Fatal("standardwebhooks accepted a signature made with another secret")
	}

	rot, err := e.client.RotateSecret(as("acme-admin"), &casekeeperv1.RotateSecretRequest{Id: ep.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	newSecret := rot.GetSecret().GetSecret()
	e.publish("acme", 1)
	testinfra.Eventually(t, 10*time.Second, "the webhook after rotation", func() bool { return len(rc.Requests()) == 2 })
	second := rc.Requests()[1]
	if n := len(strings.Fields(second.Header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures after rotation, want 2", n)
	}
	for name, s := range map[string]string{"new": newSecret, "previous": secret} {
		if err := verifyWithPyPI(t, py, s, second); err != nil {
			t.Errorf("standardwebhooks refused the %s secret: %v", name, err)
		}
	}
	rev, err := e.client.RevealSecret(as("acme-admin"), &casekeeperv1.RevealSecretRequest{Id: ep.GetId()})
	if err != nil || len(rev.GetSecrets()) != 2 || rev.GetSecrets()[0].GetSecret() != newSecret ||
		rev.GetSecrets()[1].GetExpiresAt().AsTime().Sub(time.Now()) < 23*time.Hour {
		t.Fatalf("RevealSecret %v %v", rev, err)
	}
}
