// Package devserver runs the whole Case-keeper stack in one process for development, in the spirit of
// `temporal server start-dev`: an embedded NATS with JetStream, an embedded FerretDB (MongoDB wire protocol on
// SQLite), the real Keycloak as a child process, and the services. Data lives under DATA_DIR and survives a
// restart. NATS_URL, MONGODB_URI and KEYCLOAK_URL point any part at an external server instead.
package devserver

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/devinfra"
	"github.com/casekeeper/core/pkg/lifecycle"
	casesvc "github.com/casekeeper/core/services/case"
)

// Config is the dev server's own configuration; each service reads the rest of its own from the environment.
type Config struct {
	DataDir string `env:"DATA_DIR" envDefault:"./.data"`
	// External servers; empty means embedded (NATS, FerretDB) or child process (Keycloak).
	NATSURL     string `env:"NATS_URL"`
	MongoURI    string `env:"MONGODB_URI"`
	KeycloakURL string `env:"KEYCLOAK_URL"`

	NATSPort             int           `env:"DEV_NATS_PORT" envDefault:"4222"`
	MongoAddr            string        `env:"DEV_MONGODB_ADDR" envDefault:"127.0.0.1:27017"`
	KeycloakPort         int           `env:"KEYCLOAK_PORT" envDefault:"8180"`
	KeycloakMgmtPort     int           `env:"KEYCLOAK_MGMT_PORT" envDefault:"9000"`
	KeycloakScript       string        `env:"KEYCLOAK_SCRIPT" envDefault:"scripts/keycloak.sh"`
	KeycloakStartTimeout time.Duration `env:"KEYCLOAK_START_TIMEOUT" envDefault:"5m"`
}

// Run starts the infrastructure, then the services, and serves until ctx ends; then it stops everything in
// reverse order.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("DATA_DIR: %w", err)
	}
	cfg.DataDir = dataDir
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("DATA_DIR %s: %w", dataDir, err)
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}

	if cfg.NATSURL == "" {
		srv, err := devinfra.StartNATS(devinfra.NATSOptions{StoreDir: filepath.Join(dataDir, "nats"), Port: cfg.NATSPort,
			ServerName: "casekeeper-dev", Logger: log.With("component", "nats")})
		if err != nil {
			return fmt.Errorf("embedded NATS on port %d (DEV_NATS_PORT): %w", cfg.NATSPort, err)
		}
		defer srv.Shutdown()
		env["NATS_URL"] = srv.URL()
		log.Info("embedded NATS with JetStream ready", "url", srv.URL())
	}
	if cfg.MongoURI == "" {
		fdb, err := devinfra.StartFerretDB(ctx, devinfra.FerretDBOptions{Dir: filepath.Join(dataDir, "ferretdb"),
			ListenAddr: cfg.MongoAddr, Logger: log.With("component", "ferretdb")})
		if err != nil {
			return fmt.Errorf("embedded FerretDB on %s (DEV_MONGODB_ADDR): %w", cfg.MongoAddr, err)
		}
		defer fdb.Stop()
		env["MONGODB_URI"] = fdb.URI()
		log.Info("embedded FerretDB ready", "uri", fdb.URI())
	}
	var kc *keycloak
	if cfg.KeycloakURL == "" {
		kc, err = startKeycloak(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer kc.stop()
		env["KEYCLOAK_URL"] = fmt.Sprintf("http://127.0.0.1:%d", cfg.KeycloakPort)
		log.Info("Keycloak ready", "url", env["KEYCLOAK_URL"])
	}

	workers, err := services(ctx, env, log)
	if err != nil {
		return err
	}
	if kc != nil {
		workers = append(workers, lifecycle.Worker{Name: "keycloak", Run: func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return nil
			case err := <-kc.exited():
				return fmt.Errorf("%w: %v", errKeycloakExited, err)
			}
		}})
	}
	printWelcome(env)
	return lifecycle.Run(ctx, log, workers...)
}

// services builds each service from the environment the dev server completed, as its own binary would.
func services(ctx context.Context, env map[string]string, log *slog.Logger) ([]lifecycle.Worker, error) {
	caseCfg, err := config.Load[casesvc.Config](withDefaults(env, map[string]string{
		"KEYCLOAK_CLIENT_ID": "casekeeper-case", "KEYCLOAK_CLIENT_SECRET": "caseDevSecret",
	}))
	if err != nil {
		return nil, err
	}
	caseSvc, err := casesvc.New(ctx, caseCfg, log)
	if err != nil {
		return nil, err
	}
	return []lifecycle.Worker{{Name: "case", Run: caseSvc.Run}}, nil
}

// withDefaults returns env plus the dev defaults for variables the user did not set.
func withDefaults(env, defaults map[string]string) map[string]string {
	out := make(map[string]string, len(env)+len(defaults))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

func printWelcome(env map[string]string) {
	kc := env["KEYCLOAK_URL"]
	fmt.Printf(`
Case-keeper Core is running.

  Gateway HTTP     http://127.0.0.1:8080        (dashboard: http://127.0.0.1:8080/dashboard)
  Gateway gRPC     127.0.0.1:9090
  Case service     127.0.0.1:9091 (gRPC)
  Webhook service  127.0.0.1:9092 (gRPC)
  Keycloak         %[1]s  (admin console: admin / admin)
  NATS             %[2]s
  MongoDB wire     %[3]s

Get a demo token (tenant acme) and list its cases through the gateway:

  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id=acme-backend -d client_secret=acmeBackendDevSecret \
    %[1]s/realms/casekeeper/protocol/openid-connect/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1/cases

Press Ctrl-C to stop everything.
`, kc, env["NATS_URL"], env["MONGODB_URI"])
}
