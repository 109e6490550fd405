package webhooksvc_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/logging"
	"github.com/casekeeper/core/pkg/testinfra"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// Start-up failures: the constructor returns the error that names what failed — no panic, nothing left open —
// within its bound, and the binary turns it into one error line and exit status 1.

func startupConfig(natsURL, mongoURI string) webhooksvc.Config {
	cfg := (&env{}).config()
	cfg.NATS.URL, cfg.NATS.StreamReplicas = natsURL, 1
	cfg.Mongo.URI, cfg.Mongo.Database = config.Secret(mongoURI), "startup"
	cfg.StartupTimeout = 2 * time.Second
	return cfg
}

// newMustNotPanic calls New, turning a panic into a test failure with the panic's value.
func newMustNotPanic(t *testing.T, cfg webhooksvc.Config) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("New panicked: %v", p)
		}
	}()
	svc, err := webhooksvc.New(context.Background(), cfg, logging.Discard())
	if err == nil {
		t.Fatalf("New succeeded: %v", svc.GRPCAddr())
	}
	return err
}

func TestStartupWithUnreachableNATSReturnsAnError(t *testing.T) {
	started := time.Now()
	err := newMustNotPanic(t, startupConfig("nats://"+testinfra.FreeAddr(t), "mongodb://"+testinfra.FreeAddr(t)))
	if d := time.Since(started); d > 10*time.Second {
		t.Errorf("New took %v with a 2s STARTUP_TIMEOUT", d)
	}
	if !strings.Contains(err.Error(), "NATS_URL") || !strings.Contains(err.Error(), "stream") {
		t.Errorf("error %q does not say that NATS (NATS_URL) failed and what for", err)
	}
}

func TestStartupWithUnreachableDatabaseReturnsAnError(t *testing.T) {
	srv := testinfra.NATS(t)
	err := newMustNotPanic(t, startupConfig(srv.URL(), "mongodb://"+testinfra.FreeAddr(t)))
	if !strings.Contains(err.Error(), "MONGODB_URI") {
		t.Errorf("error %q does not name MONGODB_URI", err)
	}
}

// A refusal that waiting cannot cure — three stream replicas on a single server — fails at once, not at the end
// of the wait.
func TestStartupWithStreamsNATSCannotPlaceFailsAtOnce(t *testing.T) {
	srv := testinfra.NATS(t)
	cfg := startupConfig(srv.URL(), "mongodb://"+testinfra.FreeAddr(t))
	cfg.NATS.StreamReplicas = 3
	cfg.StartupTimeout = 20 * time.Second
	started := time.Now()
	err := newMustNotPanic(t, cfg)
	if d := time.Since(started); d > 10*time.Second {
		t.Errorf("a permanent refusal took %v", d)
	}
	if !strings.Contains(err.Error(), "JetStream refused") {
		t.Errorf("error %q", err)
	}
}

func TestStartupWithPortInUseNamesTheVariable(t *testing.T) {
	srv := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	cfg := startupConfig(srv.URL(), uri)
	cfg.Mongo.Database = db
	cfg.GRPCAddr = lis.Addr().String()
	if err := newMustNotPanic(t, cfg); !strings.Contains(err.Error(), "WEBHOOK_GRPC_ADDR") {
		t.Errorf("error %q does not name WEBHOOK_GRPC_ADDR", err)
	}
}

// The binary: exit status 1, one JSON error line naming the variable, no panic.
func TestBinaryExitsWithOneErrorLine(t *testing.T) {
	bin := testinfra.Build(t, "./cmd/webhook")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "NATS_URL=nats://"+testinfra.FreeAddr(t), "MONGODB_URI=mongodb://"+testinfra.FreeAddr(t),
		"KEYCLOAK_URL=http://"+testinfra.FreeAddr(t), "STARTUP_TIMEOUT=2s", "WEBHOOK_GRPC_ADDR=127.0.0.1:0",
		"WEBHOOK_HTTP_ADDR=127.0.0.1:0", "WEBHOOK_SECRETS_KEY="+testSecretsKey.Reveal())
	errorLines, out := testinfra.FailedStart(t, cmd, 30*time.Second)
	if len(errorLines) != 1 || !strings.Contains(errorLines[0], "NATS_URL") || strings.Contains(out, "panic") {
		t.Fatalf("want one error line naming NATS_URL and no panic, got:\n%s", out)
	}
	if !strings.Contains(out, "waiting for JetStream") {
		t.Errorf("no log line about waiting for JetStream:\n%s", out)
	}
}
