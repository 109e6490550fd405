// Package casesvc is the case service: it owns the KYC cases. Each case's record is its subject on the CASES stream
// (every change is an event carrying the whole case, appended by compare-and-set on the subject's last sequence), and
// a projector keeps the query store in MongoDB. New wires it from a Config; Run serves until the context ends. The
// binary in cmd/case and the all-in-one dev server both host it this way.
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
	"github.com/prometheus/client_golang/prometheus"
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
	"github.com/casekeeper/core/services/case/internal/caselog"
	"github.com/casekeeper/core/services/case/internal/grpcapi"
	"github.com/casekeeper/core/services/case/internal/mongostore"
	"github.com/casekeeper/core/services/case/internal/projector"
)

// Config is the case service's configuration, from the environment.
type Config struct {
	GRPCAddr string `env:"CASE_GRPC_ADDR" envDefault:"127.0.0.1:9091"`
	HTTPAddr string `env:"CASE_HTTP_ADDR" envDefault:"127.0.0.1:8091"`
	// EventsMaxAge is how long the CASES stream keeps events.
	EventsMaxAge time.Duration `env:"EVENTS_STREAM_MAX_AGE" envDefault:"720h"`
	// StreamTimeout bounds one read or append of a case on the stream; a write that cannot be stored within it
	// answers UNAVAILABLE.
	StreamTimeout time.Duration `env:"CASE_STREAM_TIMEOUT" envDefault:"5s"`
	// DrainTimeout bounds the shutdown.
	DrainTimeout time.Duration `env:"SHUTDOWN_DRAIN_TIMEOUT" envDefault:"10s"`
	NATS         config.NATS
	Mongo        config.Mongo
	Keycloak     config.Keycloak
	// Projector tunes the projection into MongoDB; zero values take its defaults.
	Projector projector.Options `env:"-"`
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
	check.That(c.StreamTimeout > 0, "CASE_STREAM_TIMEOUT", "must be positive")
	check.That(c.NATS.StreamReplicas >= 1 && c.NATS.StreamReplicas <= 5, "EVENTS_STREAM_REPLICAS", "must be between 1 and 5")
	return check.Err()
}

// Service is a wired case service, its listeners bound.
type Service struct {
	cfg       Config
	log       *slog.Logger
	mongo     *mongo.Client
	nc        *nats.Conn
	js        jetstream.JetStream
	caselog   *caselog.Log
	requests  *caselog.Requests
	projector *projector.Projector
	grpc      *grpcserver.Server
	grpcLis   net.Listener
	http      *http.Server
	httpLis   net.Listener
}

// New connects to MongoDB and NATS, prepares indexes and binds the listeners. NATS may still be down: writes then
// answer UNAVAILABLE until the stream is declared.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	log = log.With("service", "case")
	if cfg.StreamTimeout <= 0 {
		// A Config built in code rather than loaded from the environment: the environment's default.
		cfg.StreamTimeout = 5 * time.Second
	}
	s := &Service{cfg: cfg, log: log}
	if err := s.open(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *Service) open(ctx context.Context) error {
	cfg := s.cfg
	var err error
	if s.grpcLis, err = lifecycle.Listen("CASE_GRPC_ADDR", cfg.GRPCAddr); err != nil {
		return err
	}
	if s.httpLis, err = lifecycle.Listen("CASE_HTTP_ADDR", cfg.HTTPAddr); err != nil {
		return err
	}
	if s.mongo, err = mongodb.Connect(ctx, cfg.Mongo.URI.Reveal(), "casekeeper-case"); err != nil {
		return err
	}
	store := mongostore.New(s.mongo.Database(cfg.Mongo.Database))
	if err = store.EnsureIndexes(ctx); err != nil {
		return err
	}
	if s.nc, s.js, err = natsbus.Connect(cfg.NATS.URL, "casekeeper-case", s.log); err != nil {
		return err
	}
	verifier, err := auth.NewVerifier(auth.ConfigFrom(cfg.Keycloak), s.log)
	if err != nil {
		return err
	}

	registry := opshttp.NewRegistry()
	conflicts := prometheus.NewCounter(prometheus.CounterOpts{Name: "case_write_conflicts_total",
		Help: "Case writes that lost the compare-and-set on the case's subject to another write and were re-applied or refused."})
	registry.MustRegister(conflicts)
	s.caselog = caselog.New(s.js, s.nc, cfg.StreamTimeout)
	s.requests = caselog.NewRequests(s.nc, cfg.StreamTimeout)
	s.projector = projector.New(s.js, store, s.caselog, s.log, registry, cfg.Projector)
	cases := app.New(s.caselog, store, s.requests, conflicts.Inc)

	s.grpc = grpcserver.New(grpcserver.Options{Log: s.log, Registry: registry, Verifier: verifier, Policy: grpcapi.Policy()})
	pb.RegisterCaseServiceServer(s.grpc, grpcapi.New(cases))

	mux := http.NewServeMux()
	opshttp.Register(mux, registry,
		opshttp.ReadinessCheck{Name: "mongodb", Check: mongodb.Ping(s.mongo)},
		opshttp.ReadinessCheck{Name: "nats", Check: natsbus.Ready(s.nc)},
		opshttp.ReadinessCheck{Name: "stream", Check: s.caselog.Ready})
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return nil
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
		lifecycle.Worker{Name: "stream-and-projector", Run: s.declareThenProject},
	)
	s.log.Info("case service stopped")
	return err
}

// declareThenProject declares the CASES stream and the request-id bucket, waiting for NATS if needed, hands them to
// the log (writes wait for that), then runs the projector: its consumer is created only once the stream is
// declared.
func (s *Service) declareThenProject(ctx context.Context) error {
	stream, err := natsbus.EnsureStream(ctx, s.js, events.StreamConfig(s.cfg.EventsMaxAge, s.cfg.NATS.StreamReplicas))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("declaring stream: %w", err)
	}
	kv, err := natsbus.EnsureKeyValue(ctx, s.js, caselog.RequestsConfig(s.cfg.EventsMaxAge, s.cfg.NATS.StreamReplicas))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("declaring the request-id bucket: %w", err)
	}
	s.caselog.Use(stream)
	s.requests.Use(kv)
	return s.projector.Run(ctx)
}

func (s *Service) close() {
	for _, lis := range []net.Listener{s.grpcLis, s.httpLis} {
		if lis != nil {
			_ = lis.Close()
		}
	}
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
