package deploy_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The webhook service does not start without WEBHOOK_SECRETS_KEY (32 bytes, base64): compose and the dev overlay
// supply one, the prod template asks for one.
func TestWebhookSecretsKeySupplied(t *testing.T) {
	valid := func(where, v string) {
		t.Helper()
		if b, err := base64.StdEncoding.DecodeString(v); err != nil || len(b) != 32 {
			t.Errorf("%s: WEBHOOK_SECRETS_KEY %q is not base64 of 32 bytes", where, v)
		}
	}
	valid("compose webhook", env(loadCompose(t).Services["webhook"], "WEBHOOK_SECRETS_KEY"))
	for _, dir := range overlays {
		if filepath.Base(dir) != "dev" {
			continue
		}
		for _, s := range typed[*corev1.Secret](kustomizeBuild(t, dir)) {
			if s.Name == "webhook-secrets" {
				v := s.StringData["WEBHOOK_SECRETS_KEY"]
				if v == "" {
					v = string(s.Data["WEBHOOK_SECRETS_KEY"])
				}
				valid("dev overlay webhook-secrets", v)
			}
		}
	}
	tmpl, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/k8s/overlays/prod/secrets.template.yaml"))
	if err != nil || !strings.Contains(string(tmpl), "WEBHOOK_SECRETS_KEY: REPLACE_ME") {
		t.Errorf("the prod secrets template does not ask for WEBHOOK_SECRETS_KEY (%v)", err)
	}
}
