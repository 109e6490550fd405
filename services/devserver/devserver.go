// Package devserver runs the whole Case-keeper stack in one process for development, in the spirit of
// `temporal server start-dev`: an embedded NATS with JetStream, an embedded FerretDB (MongoDB wire protocol on
// SQLite), the real Keycloak as a child process, and the services. Data lives under DATA_DIR and survives a
// restart. NATS_URL, MONGODB_URI and KEYCLOAK_URL point any part at an external server instead.
package devserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/devinfra"
	"github.com/casekeeper/core/pkg/lifecycle"
	casesvc "github.com/casekeeper/core/services/case"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// Config is the dev server's own configuration; each service reads the rest of its own from the environment.
type Config struct {
	DataDir string `env:"DATA_DIR" envDefault:"./.data"`
	// External servers; empty means embedded (NATS, FerretDB) or child process (Keycloak).
	NATSURL     string `env:"NATS_URL"`
	MongoURI    string `env:"MONGODB_URI"`
	KeycloakURL string `env:"KEYCLOAK_URL"`

	NATSPort int `env:"DEV_NATS_PORT" envDefault:"4222"`
	// NATSStoreKey encrypts the embedded NATS server's store at rest; empty: a key kept in DATA_DIR. During a
	// rotation, NATSStorePreviousKey is the key being replaced.
	NATSStoreKey         config.Secret `env:"NATS_STORE_KEY"`
	NATSStorePreviousKey config.Secret `env:"NATS_STORE_PREVIOUS_KEY"`
	MongoAddr            string        `env:"DEV_MONGODB_ADDR" envDefault:"127.0.0.1:27017"`
	KeycloakPort         int           `env:"KEYCLOAK_PORT" envDefault:"8180"`
	KeycloakMgmtPort     int           `env:"KEYCLOAK_MGMT_PORT" envDefault:"9000"`
	KeycloakScript       string        `env:"KEYCLOAK_SCRIPT" envDefault:"scripts/keycloak.sh"`
	KeycloakStartTimeout time.Duration `env:"KEYCLOAK_START_TIMEOUT" envDefault:"5m"`
}

// Stack is the started dev stack: the infrastructure is up and the services are bound to their ports.
type Stack struct {
	Case        *casesvc.Service
	Webhook     *webhooksvc.Service
	Gateway     *gatewaysvc.Service
	NATSURL     string
	MongoURI    string
	KeycloakURL string

	log     *slog.Logger
	workers []lifecycle.Worker
	closers []func()
}

// Start brings up the infrastructure (embedded or external) and wires the services. env is the environment the
// services read their configuration from; the dev server adds what it started (NATS_URL, MONGODB_URI,
// KEYCLOAK_URL, the services' addresses) and the dev defaults (the demo clients' secrets, http to loopback).
func Start(ctx context.Context, cfg Config, env map[string]string, log *slog.Logger) (_ *Stack, err error) {
	st := &Stack{log: log}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("DATA_DIR: %w", err)
	}
	cfg.DataDir = dataDir
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("DATA_DIR %s: %w", dataDir, err)
	}
	env = withDefaults(env, nil)

	st.NATSURL = cfg.NATSURL
	if st.NATSURL == "" {
		// The streams hold the applicants' data: encrypted at rest, as in production.
		storeKey := cfg.NATSStoreKey.Reveal()
		if storeKey == "" {
			if storeKey, err = dataDirKey(dataDir, natsStoreKeyFile); err != nil {
				return nil, err
			}
		}
		srv, err := devinfra.StartNATS(devinfra.NATSOptions{StoreDir: filepath.Join(dataDir, "nats"), Port: cfg.NATSPort,
			ServerName: "casekeeper-dev", Logger: log.With("component", "nats"),
			EncryptionKey: storeKey, PreviousEncryptionKey: cfg.NATSStorePreviousKey.Reveal()})
		if err != nil {
			return nil, fmt.Errorf("embedded NATS on port %d (DEV_NATS_PORT): %w", cfg.NATSPort, err)
		}
		st.closers = append(st.closers, srv.Shutdown)
		st.NATSURL = srv.URL()
		log.Info("embedded NATS with JetStream ready", "url", srv.URL())
	}
	st.MongoURI = cfg.MongoURI
	if st.MongoURI == "" {
		fdb, err := devinfra.StartFerretDB(ctx, devinfra.FerretDBOptions{Dir: filepath.Join(dataDir, "ferretdb"),
			ListenAddr: cfg.MongoAddr, Logger: log.With("component", "ferretdb")})
		if err != nil {
			return nil, fmt.Errorf("embedded FerretDB on %s (DEV_MONGODB_ADDR): %w", cfg.MongoAddr, err)
		}
		st.closers = append(st.closers, fdb.Stop)
		st.MongoURI = fdb.URI()
		log.Info("embedded FerretDB ready", "uri", fdb.URI())
	}
	st.KeycloakURL = cfg.KeycloakURL
	if st.KeycloakURL == "" {
		kc, err := startKeycloak(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		st.closers = append(st.closers, kc.stop)
		st.KeycloakURL = fmt.Sprintf("http://127.0.0.1:%d", cfg.KeycloakPort)
		log.Info("Keycloak ready", "url", st.KeycloakURL)
		st.workers = append(st.workers, lifecycle.Worker{Name: "keycloak", Run: func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return nil
			case err := <-kc.exited():
				return fmt.Errorf("%w: %v", errKeycloakExited, err)
			}
		}})
	}
	env["NATS_URL"], env["MONGODB_URI"], env["KEYCLOAK_URL"] = st.NATSURL, st.MongoURI, st.KeycloakURL

	caseCfg, err := config.Load[casesvc.Config](withDefaults(env, map[string]string{
		"KEYCLOAK_CLIENT_ID": "casekeeper-case", "KEYCLOAK_CLIENT_SECRET": "caseDevSecret",
	}))
	if err != nil {
		return nil, err
	}
	if st.Case, err = casesvc.New(ctx, caseCfg, log); err != nil {
		return nil, err
	}
	st.workers = append(st.workers, lifecycle.Worker{Name: "case", Run: st.Case.Run})

	secretsKey := env["WEBHOOK_SECRETS_KEY"]
	if secretsKey == "" {
		if secretsKey, err = dataDirKey(dataDir, secretsKeyFile); err != nil {
			return nil, err
		}
	}
	webhookCfg, err := config.Load[webhooksvc.Config](withDefaults(env, map[string]string{
		"KEYCLOAK_CLIENT_ID": "casekeeper-webhook", "KEYCLOAK_CLIENT_SECRET": "webhookDevSecret",
		"WEBHOOK_SECRETS_KEY": secretsKey,
		// Development receivers listen on this machine.
		"WEBHOOK_ALLOW_LOOPBACK_HTTP": "true",
	}))
	if err != nil {
		return nil, err
	}
	if st.Webhook, err = webhooksvc.New(ctx, webhookCfg, log); err != nil {
		return nil, err
	}
	st.workers = append(st.workers, lifecycle.Worker{Name: "webhook", Run: st.Webhook.Run})

	key, err := dataDirKey(dataDir, sessionKeyFile)
	if err != nil {
		return nil, err
	}
	gatewayCfg, err := config.Load[gatewaysvc.Config](withDefaults(env, map[string]string{
		"KEYCLOAK_CLIENT_ID": "casekeeper-gateway", "KEYCLOAK_CLIENT_SECRET": "gatewayDevSecret",
		"DASHBOARD_CLIENT_SECRET": "dashboardDevSecret", "DASHBOARD_COOKIE_SECURE": "false", "GATEWAY_SESSION_KEY": key,
		"GATEWAY_CREDENTIALS_CLIENT_SECRET": "credentialsDevSecret",
		"CASE_SERVICE_ADDR":                 st.Case.GRPCAddr(), "WEBHOOK_SERVICE_ADDR": st.Webhook.GRPCAddr(),
	}))
	if err != nil {
		return nil, err
	}
	if st.Gateway, err = gatewaysvc.New(ctx, gatewayCfg, log); err != nil {
		return nil, err
	}
	st.workers = append(st.workers, lifecycle.Worker{Name: "gateway", Run: st.Gateway.Run})
	return st, nil
}

// Run serves until ctx ends, then stops the services and the infrastructure in reverse order.
func (st *Stack) Run(ctx context.Context) error {
	defer st.close()
	return lifecycle.Run(ctx, st.log, st.workers...)
}

func (st *Stack) close() {
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
	st.closers = nil
}

// Environ returns the process environment as a map.
func Environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// withDefaults returns env plus the defaults for variables env does not set.
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

// PrintWelcome tells a developer where everything is and how to try it.
func (st *Stack) PrintWelcome(w io.Writer) {
	fmt.Fprintf(w, `
Case-keeper Core is running.

  Gateway HTTP     http://%[4]s        (dashboard: http://%[4]s/dashboard, API: http://%[4]s/openapi.json)
  Gateway gRPC     %[5]s
  Case service     %[6]s (gRPC)
  Webhook service  %[7]s (gRPC)
  Keycloak         %[1]s  (admin console: admin / admin)
  NATS             %[2]s
  MongoDB wire     %[3]s

Get a demo token (tenant acme) and list its cases through the gateway:

  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id=acme-backend -d client_secret=acmeBackendDevSecret \
    %[1]s/realms/casekeeper/protocol/openid-connect/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer $TOKEN" http://%[4]s/v1/cases

Or with the command-line client that make run built (bin/casekeeper; README.md, "Demo identities"):

  bin/casekeeper events tail --api http://%[4]s --issuer %[1]s/realms/casekeeper \
    --client-id acme-backend --client-secret acmeBackendDevSecret

Dashboard login: admin@acme.test / admin.  Press Ctrl-C to stop everything.
`, st.KeycloakURL, st.NATSURL, st.MongoURI, st.Gateway.HTTPAddr(), st.Gateway.GRPCAddr(), st.Case.GRPCAddr(), st.Webhook.GRPCAddr())
}
