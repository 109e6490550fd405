package gatewaysvc_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/logging"
	"github.com/casekeeper/core/pkg/testinfra"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
)

// Start-up failures: New returns the error that names what failed, within STARTUP_TIMEOUT and without a panic;
// the binary turns it into one error line and exit status 1.

const testSessionKey = "c3RhcnQtdXAgdGVzdHMgc2Vzc2lvbiBrZXkgMzJiISE="

func environment(natsURL, mongoURI string) map[string]string {
	return map[string]string{
		"GATEWAY_HTTP_ADDR": "127.0.0.1:0", "GATEWAY_GRPC_ADDR": "127.0.0.1:0", "NATS_URL": natsURL,
		"MONGODB_URI": mongoURI, "MONGODB_DATABASE": "startup", "KEYCLOAK_URL": "http://127.0.0.1:1",
		"KEYCLOAK_CLIENT_ID": "casekeeper-gateway", "KEYCLOAK_CLIENT_SECRET": "gatewayDevSecret",
		"DASHBOARD_CLIENT_SECRET": "dashboardDevSecret", "GATEWAY_SESSION_KEY": testSessionKey, "STARTUP_TIMEOUT": "2s",
	}
}

func startupError(t *testing.T, env map[string]string) error {
	t.Helper()
	cfg, err := config.Load[gatewaysvc.Config](env)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("New panicked: %v", p)
		}
	}()
	started := time.Now()
	svc, err := gatewaysvc.New(context.Background(), cfg, logging.Discard())
	if err == nil {
		t.Fatalf("New succeeded: %s", svc.HTTPAddr())
	}
	if d := time.Since(started); d > 10*time.Second {
		t.Errorf("New took %v with a 2s STARTUP_TIMEOUT", d)
	}
	return err
}

func TestStartupWithUnreachableDatabase(t *testing.T) {
	err := startupError(t, environment("nats://"+testinfra.FreeAddr(t), "mongodb://"+testinfra.FreeAddr(t)))
	if !strings.Contains(err.Error(), "MONGODB_URI") {
		t.Errorf("error %q does not name MONGODB_URI", err)
	}
}

func TestStartupWithUnreachableNATS(t *testing.T) {
	uri, _ := testinfra.Mongo(t)
	err := startupError(t, environment("nats://"+testinfra.FreeAddr(t), uri))
	// The first thing declared on NATS is the audit stream: the error names it and where NATS was looked for.
	if !strings.Contains(err.Error(), "NATS_URL") || !strings.Contains(err.Error(), "GATEWAY_AUDIT") {
		t.Errorf("error %q does not say that the audit stream could not be declared on NATS (NATS_URL)", err)
	}
}

func TestStartupRefusesABadSessionKey(t *testing.T) {
	for _, key := range []string{"", "c2hvcnQ=", "not base64!"} {
		env := environment("nats://"+testinfra.FreeAddr(t), "mongodb://"+testinfra.FreeAddr(t))
		env["GATEWAY_SESSION_KEY"] = key
		if err := startupError(t, env); !strings.Contains(err.Error(), "GATEWAY_SESSION_KEY") {
			t.Errorf("key %q: error %q does not name GATEWAY_SESSION_KEY", key, err)
		}
	}
	env := environment("nats://"+testinfra.FreeAddr(t), "mongodb://"+testinfra.FreeAddr(t))
	env["GATEWAY_TRUSTED_PROXIES"] = "10.0.0.0/8,ingress.example"
	if err := startupError(t, env); !strings.Contains(err.Error(), "GATEWAY_TRUSTED_PROXIES") {
		t.Errorf("error %q does not name GATEWAY_TRUSTED_PROXIES", err)
	}
}

func TestBinaryExitsWithOneErrorLine(t *testing.T) {
	bin := testinfra.Build(t, "./cmd/gateway")
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range environment("nats://"+testinfra.FreeAddr(t), "mongodb://"+testinfra.FreeAddr(t)) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	errorLines, out := testinfra.FailedStart(t, cmd, 30*time.Second)
	if len(errorLines) != 1 || !strings.Contains(errorLines[0], "MONGODB_URI") || strings.Contains(out, "panic") {
		t.Fatalf("want one error line naming MONGODB_URI and no panic, got:\n%s", out)
	}
}

// The audit's retention: 400 days unless set; a value that is not a duration, or shorter than a day, stops the
// start naming the variable; so does an interval of the deletes outside 1m to 24h.
func TestConfigAuditRetention(t *testing.T) {
	env := environment("nats://127.0.0.1:1", "mongodb://127.0.0.1:1")
	cfg, err := config.Load[gatewaysvc.Config](env)
	if err != nil || cfg.AuditRetention != 400*24*time.Hour {
		t.Fatalf("default GATEWAY_AUDIT_RETENTION %s, %v; want 9600h", cfg.AuditRetention, err)
	}
	for _, bad := range []string{"400d", "12h", "-1h"} {
		env["GATEWAY_AUDIT_RETENTION"] = bad
		if _, err := config.Load[gatewaysvc.Config](env); err == nil || !strings.Contains(err.Error(), "GATEWAY_AUDIT_RETENTION") {
			t.Errorf("GATEWAY_AUDIT_RETENTION=%s: %v", bad, err)
		}
	}
	delete(env, "GATEWAY_AUDIT_RETENTION")
	for _, bad := range []string{"0s", "48h", "hourly"} {
		env["GATEWAY_RETENTION_INTERVAL"] = bad
		if _, err := config.Load[gatewaysvc.Config](env); err == nil || !strings.Contains(err.Error(), "GATEWAY_RETENTION_INTERVAL") {
			t.Errorf("GATEWAY_RETENTION_INTERVAL=%s: %v", bad, err)
		}
	}
}
