// Package casesvc is the case service: it owns the KYC cases in MongoDB and publishes every change to JetStream
// through a single-document outbox. New wires it from a Config; Run serves until the context ends. The binary in
// cmd/case and the all-in-one dev server both host it this way.
package casesvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/mongo"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/grpcserver"
	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/mongodb"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/pkg/opshttp"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/case/internal/app"
	"github.com/casekeeper/core/services/case/internal/grpcapi"
	"github.com/casekeeper/core/services/case/internal/mongostore"
	"github.com/casekeeper/core/services/case/internal/protoconv"
	"github.com/casekeeper/core/services/case/internal/relay"
)

// Config is the case service's configuration, from the environment.
type Config struct {
	GRPCAddr string `env:"CASE_GRPC_ADDR" envDefault:"127.0.0.1:9091"`
	HTTPAddr string `env:"CASE_HTTP_ADDR" envDefault:"127.0.0.1:8091"`
	// EventsMaxAge is how long the CASES stream keeps events.
	EventsMaxAge time.Duration `env:"EVENTS_STREAM_MAX_AGE" envDefault:"720h"`
	// MaxConcurrentWrites bounds the case writes in flight at once (0: no bound). The embedded FerretDB (SQLite)
	// has one writer at a time and degrades under many; MongoDB takes far more.
	MaxConcurrentWrites int `env:"CASE_MAX_CONCURRENT_WRITES" envDefault:"4"`
	// DrainTimeout bounds the shutdown.
	DrainTimeout time.Duration `env:"SHUTDOWN_DRAIN_TIMEOUT" envDefault:"10s"`
	NATS         config.NATS
	Mongo        config.Mongo
	Keycloak     config.Keycloak
	// Relay tunes the outbox relay; zero values take its defaults.
	Relay relay.Options `env:"-"`
}

// Validate checks what types cannot.
func (c *Config) Validate() error {
	var check config.Check
	check.Require("CASE_GRPC_ADDR", c.GRPCAddr)
	check.Require("CASE_HTTP_ADDR", c.HTTPAddr)
	check.Require("NATS_URL", c.NATS.URL)
	check.Require("MONGODB_URI", c.Mongo.URI.Reveal())
	check.Require("KEYCLOAK_URL", c.Keycloak.URL)
	check.That(c.EventsMaxAge >= time.Minute, "EVENTS_STREAM_MAX_AGE", "must be at least 1m")
	check.That(c.MaxConcurrentWrites >= 0, "CASE_MAX_CONCURRENT_WRITES", "must not be negative")
	check.That(c.NATS.StreamReplicas >= 1 && c.NATS.StreamReplicas <= 5, "EVENTS_STREAM_REPLICAS", "must be between 1 and 5")
	return check.Err()
}

// Service is a wired case service, its listeners bound.
type Service struct {
	cfg     Config
	log     *slog.Logger
	mongo   *mongo.Client
	nc      *nats.Conn
	js      jetstream.JetStream
	relay   *relay.Relay
	grpc    *grpcserver.Server
	grpcLis net.Listener
	http    *http.Server
	httpLis net.Listener
}

// New connects to MongoDB and NATS, prepares indexes and binds the listeners. NATS may still be down: events then
// wait in the outbox.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Service, err error) {
	log = log.With("service", "case")
	s := &Service{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			for _, lis := range []net.Listener{s.grpcLis, s.httpLis} {
				if lis != nil {
					_ = lis.Close()
				}
			}
			s.close()
		}
	}()
	if s.grpcLis, err = lifecycle.Listen("CASE_GRPC_ADDR", cfg.GRPCAddr); err != nil {
		return nil, err
	}
	if s.httpLis, err = lifecycle.Listen("CASE_HTTP_ADDR", cfg.HTTPAddr); err != nil {
		return nil, err
	}
	if s.mongo, err = mongodb.Connect(ctx, cfg.Mongo.URI.Reveal(), "casekeeper-case"); err != nil {
		return nil, err
	}
	store := mongostore.New(s.mongo.Database(cfg.Mongo.Database), cfg.MaxConcurrentWrites)
	if err = store.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	if s.nc, s.js, err = natsbus.Connect(cfg.NATS.URL, "casekeeper-case", log); err != nil {
		return nil, err
	}
	verifier, err := auth.NewVerifier(auth.ConfigFrom(cfg.Keycloak), log)
	if err != nil {
		return nil, err
	}

	registry := opshttp.NewRegistry()
	s.relay = relay.New(s.js, s.nc, store, log, registry, cfg.Relay)
	cases := app.New(store, protoconv.EncodeEvent, s.relay)

	s.grpc = grpcserver.New(grpcserver.Options{Log: log, Registry: registry, Verifier: verifier, Policy: grpcapi.Policy()})
	pb.RegisterCaseServiceServer(s.grpc, grpcapi.New(cases))

	mux := http.NewServeMux()
	opshttp.Register(mux, registry,
		opshttp.ReadinessCheck{Name: "mongodb", Check: mongodb.Ping(s.mongo)},
		opshttp.ReadinessCheck{Name: "nats", Check: natsbus.Ready(s.nc)})
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// GRPCAddr is the bound gRPC address.
func (s *Service) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound address of /healthz, /readyz and /metrics.
func (s *Service) HTTPAddr() string { return s.httpLis.Addr().String() }

// Run serves until ctx ends, then drains and closes the connections.
func (s *Service) Run(ctx context.Context) error {
	defer s.close()
	s.grpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.grpc.Health.SetServingStatus(pb.CaseService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.log.Info("case service started", "grpc", s.GRPCAddr(), "http", s.HTTPAddr())
	err := lifecycle.Run(ctx, s.log,
		lifecycle.GRPCServer("grpc", s.grpc.Server, s.grpcLis, s.cfg.DrainTimeout),
		lifecycle.HTTPServer("ops-http", s.http, s.httpLis, s.cfg.DrainTimeout),
		lifecycle.Worker{Name: "stream", Run: s.ensureStream},
		lifecycle.Worker{Name: "relay", Run: s.relay.Run},
	)
	s.log.Info("case service stopped")
	return err
}

// ensureStream declares the CASES stream, waiting for NATS if needed; events wait in the outbox meanwhile.
func (s *Service) ensureStream(ctx context.Context) error {
	_, err := natsbus.EnsureStream(ctx, s.js, events.StreamConfig(s.cfg.EventsMaxAge, s.cfg.NATS.StreamReplicas))
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("declaring stream: %w", err)
	}
	<-ctx.Done()
	return nil
}

func (s *Service) close() {
	if s.nc != nil {
		_ = s.nc.Drain()
	}
	if s.mongo != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.mongo.Disconnect(ctx); err != nil && !errors.Is(err, mongo.ErrClientDisconnected) {
			s.log.Warn("closing mongodb client", "error", err)
		}
	}
}
