// Package webhooksvc is the webhook delivery service: it turns case events into signed Standard Webhooks requests
// to each tenant's endpoints, retries them durably, dead-letters what cannot be delivered and serves
// casekeeper.v1.WebhookService to manage endpoints and inspect deliveries.
//
// Data flow: CASES stream → fan-out consumer (natsconsumer.Fanout) → one job per (event, endpoint) on
// WEBHOOK_DELIVERIES → per-endpoint consumer (natsconsumer.Endpoints) → app.Deliverer: POST, record the outcome on
// WEBHOOK_OUTCOMES, schedule the retry as a JetStream scheduled message. The delivery-log projector
// (natsconsumer.DeliveryLog) writes the outcomes to MongoDB in batches. A crash between two steps leaves a message
// unacknowledged, which JetStream hands out again; a recovery sweep, off by default, re-enqueues open deliveries
// after a restore that lost the queue.
package webhooksvc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
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
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/webhook/internal/app"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/grpcapi"
	"github.com/casekeeper/core/services/webhook/internal/httpsender"
	"github.com/casekeeper/core/services/webhook/internal/jqsandbox"
	"github.com/casekeeper/core/services/webhook/internal/keyring"
	"github.com/casekeeper/core/services/webhook/internal/mongostore"
	"github.com/casekeeper/core/services/webhook/internal/natsconsumer"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// Config is the service's configuration, from the environment.
type Config struct {
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	config.NATS
	config.Mongo
	config.Keycloak

	GRPCAddr string `env:"WEBHOOK_GRPC_ADDR" envDefault:"127.0.0.1:9092"`
	HTTPAddr string `env:"WEBHOOK_HTTP_ADDR" envDefault:"127.0.0.1:8092"`
	// AllowLoopbackHTTP lets endpoints use http:// to loopback addresses and lets requests reach loopback (dev only).
	AllowLoopbackHTTP bool          `env:"WEBHOOK_ALLOW_LOOPBACK_HTTP" envDefault:"false"`
	RequestTimeout    time.Duration `env:"WEBHOOK_REQUEST_TIMEOUT" envDefault:"15s"`
	// RetrySchedule is the wait before each attempt; its length is the number of attempts.
	RetrySchedule []time.Duration `env:"WEBHOOK_RETRY_SCHEDULE" envDefault:"0s,5s,5m,30m,2h,5h,10h,14h,20h,24h" envSeparator:","`
	RetryJitter   float64         `env:"WEBHOOK_RETRY_JITTER" envDefault:"0.2"`
	// DisableAfter disables an endpoint whose attempts all failed for this long.
	DisableAfter     time.Duration `env:"WEBHOOK_DISABLE_AFTER" envDefault:"120h"`
	GatewayPublicURL string        `env:"GATEWAY_PUBLIC_URL" envDefault:"http://127.0.0.1:8080"`
	// SweepInterval turns on the recovery sweep (app.Sweeper) after a restore that lost queued deliveries; 0, the
	// default, leaves it off.
	SweepInterval time.Duration `env:"WEBHOOK_SWEEP_INTERVAL" envDefault:"0s"`
	// SweepGrace is how overdue an open delivery must be before the sweeper enqueues it again.
	SweepGrace      time.Duration `env:"WEBHOOK_SWEEP_GRACE" envDefault:"2m"`
	EndpointRefresh time.Duration `env:"WEBHOOK_ENDPOINT_REFRESH" envDefault:"30s"`
	FanoutBatch     int           `env:"WEBHOOK_FANOUT_BATCH" envDefault:"256"`
	// StartupTimeout bounds the wait for NATS (a cluster electing its leader) and MongoDB at start-up; 0 means 30s.
	StartupTimeout time.Duration `env:"STARTUP_TIMEOUT" envDefault:"30s"`
	// SecretsKey seals signing secrets and custom header values at rest (base64 of 32 bytes); SecretsOldKeys are
	// the keys it replaced, still accepted for reading (comma-separated), until every row is resealed.
	SecretsKey     config.Secret `env:"WEBHOOK_SECRETS_KEY"`
	SecretsOldKeys config.Secret `env:"WEBHOOK_SECRETS_OLD_KEYS"`
	// JQWorkers is the number of processes that run jq transforms (0: 2); one tenant holds at most half of them.
	JQWorkers int `env:"WEBHOOK_JQ_WORKERS" envDefault:"2"`
	// JQWorkerMemoryMiB is each transform worker's hard memory ceiling (0: 64).
	JQWorkerMemoryMiB int `env:"WEBHOOK_JQ_WORKER_MEMORY_MIB" envDefault:"64"`
	// JQQuarantine is how long a program that exceeded its limits is refused without running (0: 1m).
	JQQuarantine time.Duration `env:"WEBHOOK_JQ_QUARANTINE" envDefault:"1m"`
	// DeliveryRetention is how long the delivery log keeps a finished delivery (succeeded or dead) and its
	// attempts after its last change; open ones stay until they finish. The default is the CASES stream's
	// retention: a delivery whose event has aged out of the stream can no longer be resent.
	DeliveryRetention time.Duration `env:"WEBHOOK_DELIVERY_RETENTION" envDefault:"720h"`
	// RetentionInterval is how often each instance deletes what is past the retention.
	RetentionInterval time.Duration `env:"WEBHOOK_RETENTION_INTERVAL" envDefault:"1h"`

	// Verifier replaces the Keycloak verifier (tests of the API without Keycloak); not from the environment.
	Verifier auth.TokenVerifier `env:"-"`
}

// Validate checks what types cannot.
func (c Config) Validate() error {
	var chk config.Check
	chk.Require("NATS_URL", c.NATS.URL)
	chk.Require("MONGODB_URI", c.URI.Reveal())
	chk.Require("MONGODB_DATABASE", c.Database)
	chk.That(c.RequestTimeout > 0, "WEBHOOK_REQUEST_TIMEOUT", "must be positive")
	chk.That(c.retryPolicy().Validate() == nil, "WEBHOOK_RETRY_SCHEDULE / WEBHOOK_RETRY_JITTER / WEBHOOK_DISABLE_AFTER", "%v", c.retryPolicy().Validate())
	// A retry waits on WEBHOOK_DELIVERIES as a schedule: a wait the stream's max age could cut short would be lost.
	if len(c.RetrySchedule) > 0 {
		longest := time.Duration(float64(slices.Max(c.RetrySchedule)) * (1 + max(c.RetryJitter, 0)))
		chk.That(longest <= natsqueue.MaxAge/2, "WEBHOOK_RETRY_SCHEDULE",
			"every wait, with WEBHOOK_RETRY_JITTER, must be at most %s (half of how long the %s stream keeps a message); the longest is %s",
			natsqueue.MaxAge/2, natsqueue.Stream, longest)
	}
	u, err := url.Parse(c.GatewayPublicURL)
	chk.That(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "", "GATEWAY_PUBLIC_URL", "must be an http(s) URL")
	chk.That(c.SweepInterval >= 0, "WEBHOOK_SWEEP_INTERVAL", "must not be negative (0 leaves the recovery sweep off)")
	chk.That(c.SweepGrace > 0 && c.EndpointRefresh > 0, "WEBHOOK_SWEEP_GRACE / WEBHOOK_ENDPOINT_REFRESH", "must be positive")
	chk.That(c.FanoutBatch > 0 && c.FanoutBatch <= 1024, "WEBHOOK_FANOUT_BATCH", "must be between 1 and 1024")
	chk.That(c.StartupTimeout >= 0, "STARTUP_TIMEOUT", "must not be negative")
	chk.That(c.JQWorkers >= 0 && c.JQWorkers <= 256, "WEBHOOK_JQ_WORKERS", "must be between 0 (the default, 2) and 256")
	chk.That(c.JQQuarantine >= 0, "WEBHOOK_JQ_QUARANTINE", "must not be negative")
	chk.That(c.DeliveryRetention >= time.Hour, "WEBHOOK_DELIVERY_RETENTION", "must be at least 1h")
	chk.That(c.RetentionInterval >= time.Minute && c.RetentionInterval <= 24*time.Hour, "WEBHOOK_RETENTION_INTERVAL", "must be between 1m and 24h")
	chk.That(c.JQWorkerMemoryMiB == 0 || (c.JQWorkerMemoryMiB >= 16 && c.JQWorkerMemoryMiB <= 4096), "WEBHOOK_JQ_WORKER_MEMORY_MIB", "must be between 16 and 4096")
	if c.Verifier == nil {
		chk.Require("KEYCLOAK_URL", c.Keycloak.URL)
	}
	if c.SecretsKey == "" {
		chk.Require("WEBHOOK_SECRETS_KEY", "")
	} else if _, err := keyring.Parse(c.SecretsKey.Reveal(), c.SecretsOldKeys.Reveal()); err != nil {
		chk.That(false, "WEBHOOK_SECRETS_KEY / WEBHOOK_SECRETS_OLD_KEYS", "%v (make one with: openssl rand -base64 32)", err)
	}
	return chk.Err()
}

func (c Config) retryPolicy() delivery.Policy {
	return delivery.Policy{Schedule: c.RetrySchedule, Jitter: c.RetryJitter, DisableAfter: c.DisableAfter}
}

// Service is a running webhook service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	nc       *nats.Conn
	mongo    *mongo.Client
	grpc     *grpcserver.Server
	grpcLis  net.Listener
	http     *http.Server
	httpLis  net.Listener
	registry *prometheus.Registry

	routes      *app.Routes
	jq          *jqsandbox.Pool
	deliveryLog *natsbus.Projection[delivery.Outcome]
	erased      *natsqueue.ErasedCases
	failureRuns *natsqueue.FailureRuns
	notices     *natsconsumer.Notices
	fanout      *natsconsumer.Fanout
	endpoints   *natsconsumer.Endpoints
	sweeper     *app.Sweeper
	retention   *app.Retention
	gauges      *app.Gauges
}

// New connects to NATS and MongoDB, declares the streams and binds both listeners. It waits for NATS and MongoDB
// at most STARTUP_TIMEOUT (less if ctx ends sooner); on any failure it closes what it had opened and returns an
// error that names what failed.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Service, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// s, not the result: every `return nil, err` below sets the result to nil, and the cleanup must still see what
	// was opened.
	s := &Service{cfg: cfg, log: log, registry: opshttp.NewRegistry()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	verifier := cfg.Verifier
	if verifier == nil {
		v, err := auth.NewVerifier(auth.ConfigFrom(cfg.Keycloak), log)
		if err != nil {
			return nil, err
		}
		verifier = v
	}

	nc, js, err := natsbus.Connect(cfg.NATS.URL, "casekeeper-webhook", log)
	if err != nil {
		return nil, err
	}
	s.nc = nc
	wait := cmp.Or(cfg.StartupTimeout, 30*time.Second)
	sctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// The service's own streams first: declaring them waits for NATS (a cluster electing its leader) and logs why.
	if _, err := natsbus.EnsureStream(sctx, js, natsqueue.StreamConfig(cfg.StreamReplicas), natsbus.LogWaits(log)); err != nil {
		return nil, err
	}
	outcomeStream, err := natsbus.EnsureStream(sctx, js, natsqueue.OutcomesStreamConfig(cfg.StreamReplicas), natsbus.LogWaits(log))
	if err != nil {
		return nil, err
	}
	// CASES belongs to the case service, which sets its retention (EVENTS_STREAM_MAX_AGE): use it as it is, and
	// create it with the defaults only when this service starts first.
	caseStream, err := js.Stream(sctx, events.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		caseStream, err = natsbus.EnsureStream(sctx, js, events.StreamConfig(720*time.Hour, cfg.StreamReplicas), natsbus.LogWaits(log))
	}
	if err != nil {
		return nil, fmt.Errorf("the %s stream: %w", events.Stream, err)
	}
	if s.mongo, err = mongodb.Connect(sctx, cfg.URI.Reveal(), "casekeeper-webhook"); err != nil {
		return nil, err
	}
	keys, err := keyring.Parse(cfg.SecretsKey.Reveal(), cfg.SecretsOldKeys.Reveal())
	if err != nil {
		return nil, err
	}
	store := mongostore.New(s.mongo.Database(cfg.Database), keys)
	if err := store.EnsureIndexes(sctx); err != nil {
		return nil, fmt.Errorf("mongodb indexes (MONGODB_DATABASE %s): %w", cfg.Database, err)
	}
	if n, err := store.Reseal(sctx); err != nil {
		return nil, fmt.Errorf("resealing endpoints under the current WEBHOOK_SECRETS_KEY: %w", err)
	} else if n > 0 {
		log.Info("endpoints resealed under the current secrets key", "endpoints", n, "key_id", keys.CurrentID())
	}

	sender, err := httpsender.New(httpsender.Options{Timeout: cfg.RequestTimeout, AllowLoopback: cfg.AllowLoopbackHTTP})
	if err != nil {
		return nil, err
	}
	if s.jq, err = jqsandbox.New(jqsandbox.Options{Workers: cfg.JQWorkers, MemoryLimit: int64(cfg.JQWorkerMemoryMiB) << 20,
		Quarantine: cfg.JQQuarantine, Log: log}); err != nil {
		return nil, err
	}
	if err := s.jq.Start(); err != nil {
		return nil, fmt.Errorf("starting the jq transform workers: %w", err)
	}
	now := time.Now
	metrics := app.NewMetrics(s.registry)
	queue := natsqueue.New(js)
	notifier := natsNotifier{nc: nc, log: log}
	registryKV, err := natsbus.EnsureKeyValue(sctx, js, natsqueue.RegistryConfig(cfg.StreamReplicas))
	if err != nil {
		return nil, err
	}
	registry := natsqueue.NewRegistry(nc, registryKV)
	s.routes = app.NewRoutes(store, registry, log)
	// An attempt is on record once its outcome is on the stream; the delivery log in the database follows in
	// batches (docs/design.md, "Deliveries: the outcome stream is the record").
	outcomes := natsqueue.NewOutcomes(js, outcomeStream)
	caseEvents := natsqueue.NewCaseEvents(caseStream)
	s.deliveryLog = natsconsumer.NewDeliveryLog(js, store, log, s.registry)
	// Every replica knows every redaction before it sends anything.
	if s.erased, err = natsqueue.OpenErasedCases(sctx, js, cfg.StreamReplicas); err != nil {
		return nil, err
	}
	claims, err := natsqueue.OpenAttemptClaims(sctx, js, cfg.StreamReplicas)
	if err != nil {
		return nil, err
	}
	// Operational notices: raised once across the replicas, sent by whichever replica's consumer gets them.
	if _, err := natsbus.EnsureStream(sctx, js, natsqueue.NoticesStreamConfig(cfg.StreamReplicas), natsbus.LogWaits(log)); err != nil {
		return nil, err
	}
	if s.failureRuns, err = natsqueue.OpenFailureRuns(sctx, js, cfg.StreamReplicas); err != nil {
		return nil, err
	}
	lanes, err := natsqueue.OpenCaseLanes(sctx, js, cfg.StreamReplicas)
	if err != nil {
		return nil, err
	}
	notices := &app.Notices{Store: store, Queue: natsqueue.NewNotices(js), Raised: metrics.Notices, Log: log}
	s.notices = &natsconsumer.Notices{JS: js, Log: log,
		Sender: &app.NoticeSender{Store: store, Sender: sender, Sent: metrics.NoticesSent, Now: now}}
	deliverer := &app.Deliverer{Routes: s.routes, Store: store, Events: caseEvents, Loader: store.NewLoader(), Outcomes: outcomes, Queue: queue,
		Sender: sender, Transforms: s.jq, Policy: cfg.retryPolicy(), GatewayURL: strings.TrimRight(cfg.GatewayPublicURL, "/"),
		Metrics: metrics, Log: log, Registry: registry, Notifier: notifier, Now: now,
		TransformQuarantine: s.jq.Quarantine(), Erased: s.erased, Claims: claims, Notices: notices, FailureRuns: s.failureRuns, Lanes: lanes}
	s.fanout = &natsconsumer.Fanout{JS: js, Handler: &app.Fanout{Routes: s.routes, Queue: queue, Redactions: outcomes, Erased: s.erased, Lanes: lanes},
		Routes: s.routes, Log: log, Batch: cfg.FanoutBatch}
	s.endpoints = &natsconsumer.Endpoints{Queue: queue, Handler: deliverer, Routes: s.routes, Log: log,
		AckWait: 6 * time.Second, Drain: cfg.RequestTimeout + 5*time.Second, HandleTimeout: cfg.RequestTimeout + time.Minute}
	s.sweeper = &app.Sweeper{Store: store, Events: caseEvents, Queue: queue, Routes: s.routes, Log: log,
		Every: cfg.SweepInterval, Grace: cfg.SweepGrace, Now: now}
	s.retention = &app.Retention{Store: store, Keep: cfg.DeliveryRetention, Every: cfg.RetentionInterval,
		Backlog: time.Minute, Batch: 500, MaxBatches: 20, Log: log, Now: now, Expired: app.NewExpiredCounter(s.registry)}
	s.gauges = &app.Gauges{Metrics: metrics, Log: log, Every: 15 * time.Second, Lag: s.lag, Queued: queue.Depth}

	s.grpc = grpcserver.New(grpcserver.Options{Log: log, Registry: s.registry, Verifier: verifier, Policy: grpcapi.Policy()})
	casekeeperv1.RegisterWebhookServiceServer(s.grpc, &grpcapi.Server{
		Endpoints: &app.Endpoints{Store: store, Queue: queue, Routes: s.routes, Registry: registry, Notifier: notifier, Deliverer: deliverer,
			AllowLoopback: cfg.AllowLoopbackHTTP, Log: log, Now: now},
		Deliveries: &app.Deliveries{Store: store, Events: caseEvents, Outcomes: outcomes, Queue: queue, Lanes: lanes, Now: now},
		Notices:    &app.NoticeSettings{Store: store, AllowLoopback: cfg.AllowLoopbackHTTP, Now: now},
		Store:      store, Waiting: queue.Waiting,
	})
	mux := http.NewServeMux()
	opshttp.Register(mux, s.registry,
		opshttp.ReadinessCheck{Name: "nats", Check: natsbus.Ready(nc)},
		opshttp.ReadinessCheck{Name: "mongodb", Check: mongodb.Ping(s.mongo)})
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	if s.grpcLis, err = lifecycle.Listen("WEBHOOK_GRPC_ADDR", cfg.GRPCAddr); err != nil {
		return nil, err
	}
	if s.httpLis, err = lifecycle.Listen("WEBHOOK_HTTP_ADDR", cfg.HTTPAddr); err != nil {
		return nil, err
	}
	log.Info("webhook service configured", "grpc_addr", s.grpcLis.Addr().String(), "http_addr", s.httpLis.Addr().String(),
		"nats_url", cfg.NATS.URL, "mongodb_uri", cfg.URI, "mongodb_database", cfg.Database,
		"allow_loopback_http", cfg.AllowLoopbackHTTP, "request_timeout", cfg.RequestTimeout.String(),
		"retry_schedule", fmt.Sprint(cfg.RetrySchedule), "disable_after", cfg.DisableAfter.String(),
		"jq_workers", cfg.JQWorkers, "jq_worker_memory_mib", cfg.JQWorkerMemoryMiB,
		"delivery_retention", cfg.DeliveryRetention.String())
	return s, nil
}

// GRPCAddr is the bound gRPC address.
func (s *Service) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound ops HTTP address.
func (s *Service) HTTPAddr() string { return s.httpLis.Addr().String() }

// Registry holds the service's metrics.
func (s *Service) Registry() *prometheus.Registry { return s.registry }

// Run serves and delivers until ctx ends, then drains: servers and consumers stop, attempts in flight finish and
// are recorded, then the connections close.
func (s *Service) Run(ctx context.Context) error {
	defer s.close()
	s.grpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	workers := []lifecycle.Worker{
		lifecycle.GRPCServer("grpc", s.grpc.Server, s.grpcLis, 10*time.Second),
		lifecycle.HTTPServer("ops-http", s.http, s.httpLis, 5*time.Second),
		lifecycle.Worker{Name: "routes", Run: s.watchRoutes},
		lifecycle.Worker{Name: "fanout", Run: s.fanout.Run},
		lifecycle.Worker{Name: "endpoints", Run: s.endpoints.Run},
		lifecycle.Worker{Name: "delivery-log", Run: s.deliveryLog.Run},
		lifecycle.Worker{Name: "erased-cases", Run: s.erased.Run},
		lifecycle.Worker{Name: "failure-runs", Run: s.failureRuns.Run},
		lifecycle.Worker{Name: "notices", Run: s.notices.Run},
		lifecycle.Worker{Name: "gauges", Run: s.gauges.Run},
		lifecycle.Worker{Name: "delivery-retention", Run: s.retention.Run},
	}
	if s.cfg.SweepInterval > 0 {
		s.log.Warn("the recovery sweep is on: it reads every open delivery that is due", "interval", s.cfg.SweepInterval.String())
		workers = append(workers, lifecycle.Worker{Name: "sweeper", Run: s.sweeper.Run})
	}
	return lifecycle.Run(ctx, s.log, workers...)
}

// watchRoutes loads the routing table (retrying while MongoDB is not there) and keeps it fresh.
func (s *Service) watchRoutes(ctx context.Context) error {
	for {
		err := s.routes.Reload(ctx)
		if err == nil {
			break
		}
		s.log.Warn("loading endpoints failed", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	return s.routes.Watch(ctx, natsSubscriber{nc: s.nc}, natsqueue.ChangesSubject, s.cfg.EndpointRefresh)
}

func (s *Service) lag(ctx context.Context) (uint64, uint64, error) {
	f, err := s.fanout.Lag(ctx)
	if err != nil {
		return 0, 0, err
	}
	e, err := s.endpoints.Lag(ctx)
	return f, e, err
}

func (s *Service) close() {
	if s.jq != nil {
		s.jq.Close()
	}
	if s.nc != nil {
		_ = s.nc.Drain()
	}
	if s.mongo != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.mongo.Disconnect(ctx)
	}
	if s.grpcLis != nil {
		_ = s.grpcLis.Close()
	}
	if s.httpLis != nil {
		_ = s.httpLis.Close()
	}
}

type natsNotifier struct {
	nc  *nats.Conn
	log *slog.Logger
}

// EndpointsChanged is best effort: an instance that misses it reloads within WEBHOOK_ENDPOINT_REFRESH.
func (n natsNotifier) EndpointsChanged() {
	if err := n.nc.Publish(natsqueue.ChangesSubject, nil); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		n.log.Warn("announcing an endpoint change failed", "error", err)
	}
}

type natsSubscriber struct{ nc *nats.Conn }

func (n natsSubscriber) Subscribe(subject string, handler func()) (func(), error) {
	sub, err := n.nc.Subscribe(subject, func(*nats.Msg) { handler() })
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
