// Package gatewaysvc is the query gateway: tenants' Keycloak-authenticated reads of their cases over gRPC and
// HTTP/JSON, the change feed (a cheap interval fetch, a long-poll, a gRPC stream and Server-Sent Events), the access
// audit, and the dashboard's webhook-settings routes forwarded to the webhook service. New wires it from a Config;
// Run serves until the context ends.
package gatewaysvc

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/grpcserver"
	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/mongodb"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/pkg/opshttp"
	"github.com/casekeeper/core/pkg/tracing"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/clientaddr"
	"github.com/casekeeper/core/services/gateway/internal/credentials"
	"github.com/casekeeper/core/services/gateway/internal/dashboard"
	"github.com/casekeeper/core/services/gateway/internal/feed"
	"github.com/casekeeper/core/services/gateway/internal/grpcapi"
	"github.com/casekeeper/core/services/gateway/internal/httpapi"
	"github.com/casekeeper/core/services/gateway/internal/mongostore"
	"github.com/casekeeper/core/services/gateway/internal/natsaudit"
	"github.com/casekeeper/core/services/gateway/internal/notify"
	"github.com/casekeeper/core/services/gateway/internal/projector"
	"github.com/casekeeper/core/services/gateway/internal/ratelimit"
	"github.com/casekeeper/core/services/gateway/internal/sessionkv"
)

// Config is the gateway's configuration, from the environment.
type Config struct {
	LogLevel           string `env:"LOG_LEVEL" envDefault:"info"`
	HTTPAddr           string `env:"GATEWAY_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	GRPCAddr           string `env:"GATEWAY_GRPC_ADDR" envDefault:"127.0.0.1:9090"`
	CaseServiceAddr    string `env:"CASE_SERVICE_ADDR" envDefault:"127.0.0.1:9091"`
	WebhookServiceAddr string `env:"WEBHOOK_SERVICE_ADDR" envDefault:"127.0.0.1:9092"`
	PublicURL          string `env:"GATEWAY_PUBLIC_URL" envDefault:"http://127.0.0.1:8080"`
	// Dashboard* are for the dashboard (issue #6), mounted with Service.Handle.
	DashboardClientID     string        `env:"DASHBOARD_CLIENT_ID" envDefault:"casekeeper-dashboard"`
	DashboardClientSecret config.Secret `env:"DASHBOARD_CLIENT_SECRET"`
	DashboardCookieSecure bool          `env:"DASHBOARD_COOKIE_SECURE" envDefault:"true"`
	// Credentials* are the service account with which the dashboard manages tenants' API credentials in Keycloak
	// (realm-management manage-clients, nothing else). Without a secret the dashboard's API credentials page says
	// that the operator has not set it up.
	CredentialsClientID     string        `env:"GATEWAY_CREDENTIALS_CLIENT_ID" envDefault:"casekeeper-credentials"`
	CredentialsClientSecret config.Secret `env:"GATEWAY_CREDENTIALS_CLIENT_SECRET"`
	// SessionKey (base64 of 32 random bytes; required with the dashboard) seals the dashboard's login cookie and
	// its sessions in NATS. Every replica needs the same key: a sign-in may start on one and finish on another.
	SessionKey config.Secret `env:"GATEWAY_SESSION_KEY"`
	// RateLimit is the sustained requests per second of one client (token azp), RateBurst its burst. 0 disables.
	RateLimit float64 `env:"GATEWAY_RATE_LIMIT" envDefault:"100"`
	RateBurst int     `env:"GATEWAY_RATE_BURST" envDefault:"200"`
	// MaxStreamsPerClient caps the event streams (SSE and WatchCaseEvents) one principal holds open per replica.
	MaxStreamsPerClient int `env:"GATEWAY_MAX_STREAMS_PER_CLIENT" envDefault:"8"`
	// FailedAuthLimit is how many 401s per second one client address may cause (burst 4×) before it gets 429s.
	FailedAuthLimit float64 `env:"GATEWAY_FAILED_AUTH_LIMIT" envDefault:"5"`
	// TrustedProxies (CIDR prefixes or addresses) are the proxies whose X-Forwarded-For names the client: the
	// ingress. Empty: the TCP peer is the client, and X-Forwarded-For is ignored.
	TrustedProxies []string `env:"GATEWAY_TRUSTED_PROXIES" envSeparator:","`
	MaxBodyBytes   int64    `env:"GATEWAY_MAX_BODY_BYTES" envDefault:"1048576"`
	// RequestTimeout bounds one HTTP request (a long-poll gets its wait on top).
	RequestTimeout time.Duration `env:"GATEWAY_REQUEST_TIMEOUT" envDefault:"15s"`
	// FeedConsumer is the durable JetStream consumer that every gateway instance shares.
	FeedConsumer string `env:"GATEWAY_FEED_CONSUMER" envDefault:"gateway-feed"`
	// FeedRetention is how long the feed keeps events; keep it equal to EVENTS_STREAM_MAX_AGE of the case service.
	FeedRetention time.Duration `env:"GATEWAY_FEED_RETENTION" envDefault:"720h"`
	// AuditRetention is how long the access audit keeps a record: 400 days, so that a yearly review finds the whole
	// past year with a month to spare. Zero in a Config built in code means the default.
	AuditRetention time.Duration `env:"GATEWAY_AUDIT_RETENTION" envDefault:"9600h"`
	// RetentionInterval is how often each instance deletes what is past the feed's and the audit's retention. Zero
	// in a Config built in code means the default.
	RetentionInterval time.Duration `env:"GATEWAY_RETENTION_INTERVAL" envDefault:"1h"`
	// PollInterval is the X-Poll-Interval the feed's answers ask pollers to keep; it doubles for every
	// PollBusyReads feed reads in flight on the replica (up to 8×).
	PollInterval  time.Duration `env:"GATEWAY_POLL_INTERVAL" envDefault:"5s"`
	PollBusyReads int           `env:"GATEWAY_POLL_BUSY_READS" envDefault:"64"`
	// CaseProjection is the case service's durable consumer on CASES that keeps its query store: a snapshot start
	// of an event stream reads how far it has come.
	CaseProjection string `env:"GATEWAY_CASE_PROJECTION" envDefault:"case-projection"`
	// BookmarkInterval is how often an idle event stream (SSE, WatchCaseEvents) sends its renewed cursor.
	BookmarkInterval time.Duration `env:"GATEWAY_BOOKMARK_INTERVAL" envDefault:"30s"`
	DrainTimeout     time.Duration `env:"SHUTDOWN_DRAIN_TIMEOUT" envDefault:"10s"`
	// StartupTimeout bounds the wait for MongoDB and NATS (a cluster electing its leader) at start-up; 0 means 30s.
	StartupTimeout time.Duration `env:"STARTUP_TIMEOUT" envDefault:"30s"`
	NATS           config.NATS
	Mongo          config.Mongo
	Keycloak       config.Keycloak
}

// Validate checks what types cannot.
func (c *Config) Validate() error {
	var check config.Check
	check.Require("GATEWAY_HTTP_ADDR", c.HTTPAddr)
	check.Require("GATEWAY_GRPC_ADDR", c.GRPCAddr)
	check.Require("CASE_SERVICE_ADDR", c.CaseServiceAddr)
	check.Require("WEBHOOK_SERVICE_ADDR", c.WebhookServiceAddr)
	check.Require("NATS_URL", c.NATS.URL)
	check.Require("MONGODB_URI", c.Mongo.URI.Reveal())
	check.Require("KEYCLOAK_URL", c.Keycloak.URL)
	check.Require("KEYCLOAK_CLIENT_ID", c.Keycloak.ClientID)
	check.Require("KEYCLOAK_CLIENT_SECRET", c.Keycloak.ClientSecret.Reveal())
	check.Require("GATEWAY_FEED_CONSUMER", c.FeedConsumer)
	check.Require("GATEWAY_CASE_PROJECTION", c.CaseProjection)
	check.That(c.RateLimit >= 0, "GATEWAY_RATE_LIMIT", "must not be negative")
	check.That(c.RateBurst >= 1, "GATEWAY_RATE_BURST", "must be at least 1")
	check.That(c.MaxStreamsPerClient >= 1, "GATEWAY_MAX_STREAMS_PER_CLIENT", "must be at least 1")
	check.That(c.FailedAuthLimit >= 0, "GATEWAY_FAILED_AUTH_LIMIT", "must not be negative")
	if _, err := clientaddr.New(c.TrustedProxies); err != nil {
		check.That(false, "GATEWAY_TRUSTED_PROXIES", "%v", err)
	}
	check.That(c.MaxBodyBytes >= 1024, "GATEWAY_MAX_BODY_BYTES", "must be at least 1024")
	check.That(c.RequestTimeout >= time.Second, "GATEWAY_REQUEST_TIMEOUT", "must be at least 1s")
	check.That(c.FeedRetention >= time.Hour, "GATEWAY_FEED_RETENTION", "must be at least 1h")
	check.That(c.AuditRetention >= 24*time.Hour, "GATEWAY_AUDIT_RETENTION", "must be at least 24h")
	check.That(c.RetentionInterval >= time.Minute && c.RetentionInterval <= 24*time.Hour, "GATEWAY_RETENTION_INTERVAL", "must be between 1m and 24h")
	check.That(c.PollInterval >= time.Second, "GATEWAY_POLL_INTERVAL", "must be at least 1s")
	check.That(c.PollBusyReads >= 1, "GATEWAY_POLL_BUSY_READS", "must be at least 1")
	check.That(c.BookmarkInterval >= 100*time.Millisecond, "GATEWAY_BOOKMARK_INTERVAL", "must be at least 100ms")
	check.That(c.StartupTimeout >= 0, "STARTUP_TIMEOUT", "must not be negative")
	if c.DashboardClientSecret.Reveal() != "" {
		check.Require("GATEWAY_SESSION_KEY", c.SessionKey.Reveal())
		if c.SessionKey.Reveal() != "" {
			_, err := c.sessionKey()
			check.That(err == nil, "GATEWAY_SESSION_KEY", "must be the base64 of 32 random bytes (openssl rand -base64 32)")
		}
	}
	return check.Err()
}

// sessionKey decodes GATEWAY_SESSION_KEY.
func (c *Config) sessionKey() ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.SessionKey.Reveal()))
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%d bytes, want 32", len(key))
	}
	return key, nil
}

// Option adjusts a Service beyond its Config (tests and benchmarks).
type Option func(*settings)

type settings struct {
	keycloakHTTP *http.Client
	now          func() time.Time
	recheck      time.Duration
}

// WithKeycloakHTTPClient sends every call to Keycloak — key fetches, introspection, the gateway's own logins —
// through hc, so that a benchmark can count them.
func WithKeycloakHTTPClient(hc *http.Client) Option { return func(o *settings) { o.keycloakHTTP = hc } }

// WithClock replaces the clock by which tokens expire, so that a test can move it forward instead of waiting.
func WithClock(now func() time.Time) Option { return func(o *settings) { o.now = now } }

// WithRecheck sets how often a waiting reader looks at the store without a notification (the safety net for a
// lost one), so that a test of that path need not wait for the default.
func WithRecheck(d time.Duration) Option { return func(o *settings) { o.recheck = d } }

// Service is a wired gateway, its listeners bound.
type Service struct {
	cfg      Config
	log      *slog.Logger
	mongo    *mongo.Client
	nc       *nats.Conn
	js       jetstream.JetStream
	verifier *auth.Verifier
	creds    *auth.ClientCredentials
	grpc     *grpcserver.Server
	grpcLis  net.Listener
	selfLis  *bufconn.Listener
	http     *http.Server
	httpLis  net.Listener
	api      *httpapi.API
	conns    []*grpc.ClientConn
	workers  []lifecycle.Worker
}

// New connects to MongoDB and NATS, prepares the indexes, wires the servers and binds the listeners. It waits for
// MongoDB and NATS at most STARTUP_TIMEOUT; on any failure it closes what it had opened and returns an error that
// names what failed.
func New(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (_ *Service, err error) {
	var o settings
	for _, opt := range opts {
		opt(&o)
	}
	log = log.With("service", "gateway")
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
	if s.grpcLis, err = lifecycle.Listen("GATEWAY_GRPC_ADDR", cfg.GRPCAddr); err != nil {
		return nil, err
	}
	if s.httpLis, err = lifecycle.Listen("GATEWAY_HTTP_ADDR", cfg.HTTPAddr); err != nil {
		return nil, err
	}
	// The start-up waits share one bound; what runs afterwards keeps ctx.
	sctx, cancel := context.WithTimeout(ctx, cmp.Or(cfg.StartupTimeout, 30*time.Second))
	defer cancel()
	if s.mongo, err = mongodb.Connect(sctx, cfg.Mongo.URI.Reveal(), "casekeeper-gateway"); err != nil {
		return nil, err
	}
	db := s.mongo.Database(cfg.Mongo.Database)
	feedStore, err := mongostore.NewFeedStore(sctx, db)
	if err != nil {
		return nil, fmt.Errorf("mongodb feed indexes (MONGODB_DATABASE %s): %w", cfg.Mongo.Database, err)
	}
	auditStore, err := mongostore.NewAuditStore(sctx, db)
	if err != nil {
		return nil, fmt.Errorf("mongodb audit indexes (MONGODB_DATABASE %s): %w", cfg.Mongo.Database, err)
	}
	if s.nc, s.js, err = natsbus.Connect(cfg.NATS.URL, "casekeeper-gateway", log); err != nil {
		return nil, err
	}
	if _, err := natsbus.EnsureStream(sctx, s.js, natsaudit.StreamConfig(cfg.NATS.StreamReplicas), natsbus.LogWaits(log)); err != nil {
		return nil, err
	}
	verifierCfg := auth.ConfigFrom(cfg.Keycloak)
	verifierCfg.HTTPClient, verifierCfg.Now = o.keycloakHTTP, o.now
	s.verifier, err = auth.NewVerifier(verifierCfg, log)
	if err != nil {
		return nil, err
	}
	s.creds = auth.NewClientCredentials(cfg.Keycloak.URL, cfg.Keycloak.Realm, cfg.Keycloak.ClientID,
		cfg.Keycloak.ClientSecret.Reveal(), auth.WithCredentialsHTTPClient(o.keycloakHTTP))

	// One budget per client, the same for gRPC and HTTP callers: it is checked by the policy, right after the
	// token is verified, so it is keyed by the token's azp (a claim the caller cannot choose freely).
	clients := ratelimit.New(cfg.RateLimit, cfg.RateBurst)
	// Client and subject: a backend's service account is one subject, so this is per client for machines, while
	// the users of one browser client (the dashboard) do not share a single budget.
	budgetKey := func(p auth.Principal) string { return p.ClientID + "/" + p.Subject }
	admit := func(_ context.Context, _ string, p auth.Principal) error {
		if ok, retry := clients.Allow(budgetKey(p)); !ok {
			return httpapi.RateLimited(retry)
		}
		return nil
	}

	registry := opshttp.NewRegistry()
	s.grpc = grpcserver.New(grpcserver.Options{
		Log: log, Registry: registry, Verifier: s.verifier, MaxRecvBytes: int(cfg.MaxBodyBytes),
		Policy: auth.Policy{Roles: grpcapi.Roles, Public: auth.IsInfrastructure, Admit: admit},
	})

	// The backing services see the gateway's own token (service:delegate) and the caller's identity.
	caseConn, err := grpc.NewClient(cfg.CaseServiceAddr, append(tracing.GRPCDialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(auth.DelegatingInterceptor(s.creds)),
		grpc.WithChainStreamInterceptor(auth.DelegatingStreamInterceptor(s.creds)))...)
	if err != nil {
		return nil, fmt.Errorf("case service client (CASE_SERVICE_ADDR %s): %w", cfg.CaseServiceAddr, err)
	}
	s.conns = append(s.conns, caseConn)
	webhookConn, err := grpc.NewClient(cfg.WebhookServiceAddr, append(tracing.GRPCDialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(
			verifyCaller(s.verifier, webhookPolicy(admit), log),
			auth.DelegatingInterceptor(s.creds)))...)
	if err != nil {
		return nil, fmt.Errorf("webhook service client (WEBHOOK_SERVICE_ADDR %s): %w", cfg.WebhookServiceAddr, err)
	}
	s.conns = append(s.conns, webhookConn)

	hub := notify.NewHub()
	// A read is on record once its audit record is on the GATEWAY_AUDIT stream; the database follows in batches.
	auditLog := natsaudit.NewLog(s.js, o.now)
	auditProjector := natsaudit.NewProjector(s.js, auditStore, log, registry)
	casekeeperv1.RegisterCaseQueryServiceServer(s.grpc, &grpcapi.Server{
		Cases: casekeeperv1.NewCaseServiceClient(caseConn), Feed: feedStore, Notifier: hub,
		Audit: auditLog, AuditLog: auditStore, Log: log, Recheck: o.recheck,
		MaxStreamsPerClient: cfg.MaxStreamsPerClient, Now: o.now,
		Retention: cfg.FeedRetention, BookmarkEvery: cfg.BookmarkInterval,
		Poll:           feed.PollHint{Interval: cfg.PollInterval, Busy: int64(cfg.PollBusyReads)},
		CasesProjected: casesProjected(s.js, cfg.CaseProjection),
	})

	// HTTP reaches the gRPC server through an in-process listener, so it passes the very same interceptors.
	s.selfLis = bufconn.Listen(1 << 20)
	selfConn, err := grpc.NewClient("passthrough:///gateway-self", append(tracing.GRPCDialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.selfLis.DialContext(ctx) }))...)
	if err != nil {
		return nil, fmt.Errorf("in-process gRPC client: %w", err)
	}
	s.conns = append(s.conns, selfConn)
	proxies, err := clientaddr.New(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("GATEWAY_TRUSTED_PROXIES: %w", err)
	}
	s.api, err = httpapi.New(ctx, httpapi.Options{
		Self: selfConn, Webhooks: webhookConn, PublicURL: cfg.PublicURL,
		FailedAuth:    ratelimit.New(cfg.FailedAuthLimit, max(1, int(4*cfg.FailedAuthLimit))),
		ClientAddress: proxies, Verifier: s.verifier,
		Refund:       func(p auth.Principal) { clients.Refund(budgetKey(p)) },
		MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout,
	})
	if err != nil {
		return nil, err
	}
	if cfg.DashboardClientSecret.Reveal() != "" {
		// The dashboard reads through the gateway's own gRPC server (same checks, same audit) and manages webhooks
		// through the same connection as the HTTP routes, always with the signed-in user's own token.
		query := casekeeperv1.NewCaseQueryServiceClient(selfConn)
		key, err := cfg.sessionKey()
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_SESSION_KEY: %w", err)
		}
		sessions, err := sessionkv.Open(sctx, s.js, sessionkv.Config{
			Replicas: cfg.NATS.StreamReplicas, TTL: dashboard.MaxSessionAge, MaxBytes: sessionBucketBytes},
			natsbus.LogWaits(log))
		if err != nil {
			return nil, err
		}
		dash, err := dashboard.New(dashboard.Options{
			KeycloakURL: cfg.Keycloak.URL, Realm: cfg.Keycloak.Realm, Issuer: cfg.Keycloak.Issuer,
			ClientID: cfg.DashboardClientID, ClientSecret: cfg.DashboardClientSecret.Reveal(),
			PublicURL: cfg.PublicURL, CookieSecure: cfg.DashboardCookieSecure,
			Key: key, Sessions: sessions,
			Verifier: s.verifier,
			Webhooks: casekeeperv1.NewWebhookServiceClient(webhookConn),
			Cases:    query, Events: query,
			HTTPClient: o.keycloakHTTP, Log: log,
			Credentials: credentialsManager(cfg, o.keycloakHTTP),
		})
		if err != nil {
			return nil, err
		}
		s.api.Mux.Handle("/dashboard/", dash)
	}
	opshttp.Register(s.api.Mux, registry,
		opshttp.ReadinessCheck{Name: "mongodb", Check: mongodb.Ping(s.mongo)},
		opshttp.ReadinessCheck{Name: "nats", Check: natsbus.Ready(s.nc)})
	s.http = s.api.Server()
	s.http.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)

	projected := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_feed_events_projected_total", Help: "Events written to the change feed by this instance."})
	lastSeq := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gateway_feed_last_sequence", Help: "CASES stream sequence of the last event this instance projected; compare with the stream's last sequence for the feed's lag."})
	auditExpired := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_audit_records_expired_total", Help: "Access-audit records this instance deleted after GATEWAY_AUDIT_RETENTION."})
	registry.MustRegister(projected, lastSeq, auditExpired)
	announce := func(tenant string, seq int64) {
		projected.Inc()
		lastSeq.Set(float64(seq))
		hub.Notify(tenant)
		if err := notify.Publish(s.nc, tenant, seq); err != nil {
			log.Warn("feed notification not published", "tenant", tenant, "error", err)
		}
	}
	every := cmp.Or(cfg.RetentionInterval, time.Hour)
	s.workers = []lifecycle.Worker{
		lifecycle.GRPCServer("grpc", s.grpc.Server, s.grpcLis, cfg.DrainTimeout),
		{Name: "grpc-in-process", Run: func(ctx context.Context) error {
			go func() { <-ctx.Done(); _ = s.selfLis.Close() }()
			if err := s.grpc.Serve(s.selfLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) && ctx.Err() == nil {
				return err
			}
			return nil
		}},
		lifecycle.HTTPServer("http", s.http, s.httpLis, cfg.DrainTimeout),
		projector.Worker(s.js, cfg.FeedConsumer, projector.Handler{Store: feedStore, Announce: announce}, log),
		notify.Listener(s.nc, hub, log),
		{Name: "audit-log", Run: auditProjector.Run},
		feedExpiry(feedStore, cfg.FeedRetention, every, log),
		auditExpiry(auditStore, cmp.Or(cfg.AuditRetention, defaultAuditRetention), every, auditExpired, log),
	}
	return s, nil
}

// sessionBucketBytes bounds the dashboard's session bucket: a sealed session is 4 to 8 KiB, so this holds tens of
// thousands of administrators signed in at once.
const sessionBucketBytes = 256 << 20

// feedExpiry deletes feed entries older than the retention, every interval (hourly by default). Every instance
// runs it; deleting what another instance already deleted costs one scan and changes nothing.
func feedExpiry(store *mongostore.FeedStore, retention, every time.Duration, log *slog.Logger) lifecycle.Worker {
	return lifecycle.Worker{Name: "feed-expiry", Run: func(ctx context.Context) error {
		return lifecycle.Repeat(ctx, every, every, func(ctx context.Context) (bool, error) {
			n, err := store.Expire(ctx, time.Now().Add(-retention))
			if n > 0 {
				log.Info("feed entries expired", "count", n)
			}
			return false, err
		}, func(err error) { log.Warn("feed expiry failed", "error", err) })
	}}
}

// defaultAuditRetention is GATEWAY_AUDIT_RETENTION's default, for a Config that does not come from the environment.
const defaultAuditRetention = 400 * 24 * time.Hour

// Bounds of one pass of the audit's retention: the next pass comes after auditBacklogPause instead of the interval
// when a pass stopped at them (the first pass over an old audit), so that no pass holds the database for long.
const (
	auditExpiryBatch   = 500
	auditExpiryBatches = 20
	auditBacklogPause  = time.Minute
)

// auditExpiry deletes the access-audit records older than the retention, every interval. Every instance runs it,
// like feedExpiry: instances at work at once share the deletes.
func auditExpiry(store *mongostore.AuditStore, retention, every time.Duration, expired prometheus.Counter, log *slog.Logger) lifecycle.Worker {
	return lifecycle.Worker{Name: "audit-expiry", Run: func(ctx context.Context) error {
		return lifecycle.Repeat(ctx, every, auditBacklogPause, func(ctx context.Context) (bool, error) {
			n, more, err := expireAudit(ctx, store, time.Now().Add(-retention))
			expired.Add(float64(n))
			if n > 0 {
				log.Info("audit records expired", "count", n, "more", more)
			}
			return more, err
		}, func(err error) { log.Warn("audit expiry failed", "error", err) })
	}}
}

// expireAudit is one bounded pass: more reports that it stopped at its bound with records still due.
func expireAudit(ctx context.Context, store *mongostore.AuditStore, cutoff time.Time) (deleted int64, more bool, err error) {
	for range auditExpiryBatches {
		n, err := store.Expire(ctx, cutoff, auditExpiryBatch)
		deleted += n
		if err != nil {
			return deleted, false, err
		}
		if n < auditExpiryBatch {
			return deleted, false, nil
		}
	}
	return deleted, true, nil
}

// casesProjected reads the CASES stream position up to which the case service's query store is complete: the ack
// floor of its projection consumer, which acknowledges an event only once it is written. A snapshot read after it
// reflects at least every event up to it.
func casesProjected(js jetstream.JetStream, durable string) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		c, err := js.Consumer(ctx, events.Stream, durable)
		if err != nil {
			return 0, fmt.Errorf("case projection consumer %q (GATEWAY_CASE_PROJECTION): %w", durable, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("case projection consumer %q: %w", durable, err)
		}
		return int64(info.AckFloor.Stream), nil
	}
}

// webhookPolicy: every WebhookService method needs webhooks:manage (the webhook service checks it again).
func webhookPolicy(admit func(context.Context, string, auth.Principal) error) auth.Policy {
	roles := map[string]string{}
	for _, m := range casekeeperv1.WebhookService_ServiceDesc.Methods {
		roles["/"+casekeeperv1.WebhookService_ServiceDesc.ServiceName+"/"+m.MethodName] = auth.RoleWebhooksManage
	}
	return auth.Policy{Roles: roles, Admit: admit}
}

// credentialsManager is the dashboard's access to tenants' API credentials in Keycloak; nil when the operator has
// not given the gateway the service account for it.
func credentialsManager(cfg Config, httpClient *http.Client) dashboard.Credentials {
	if cfg.CredentialsClientSecret.Reveal() == "" {
		return nil
	}
	return credentials.New(cfg.Keycloak.URL, cfg.Keycloak.Realm, cfg.CredentialsClientID, cfg.CredentialsClientSecret.Reveal(), httpClient)
}

// GRPCAddr is the bound gRPC address.
func (s *Service) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound HTTP address (API, /openapi.json, /healthz, /readyz, /metrics).
func (s *Service) HTTPAddr() string { return s.httpLis.Addr().String() }

// Handle mounts an extra HTTP handler next to the API — the place for the dashboard (issue #6), e.g.
// svc.Handle("/dashboard/", dashboard). Call it before Run. The handler does its own authentication; it can use
// Verifier for bearer tokens.
func (s *Service) Handle(pattern string, h http.Handler) { s.api.Mux.Handle(pattern, h) }

// Verifier is the gateway's token verifier, for handlers mounted with Handle.
func (s *Service) Verifier() *auth.Verifier { return s.verifier }

// Run serves until ctx ends, then drains and closes the connections.
func (s *Service) Run(ctx context.Context) error {
	defer s.close()
	s.grpc.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.grpc.Health.SetServingStatus(casekeeperv1.CaseQueryService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.log.Info("gateway started", "grpc", s.GRPCAddr(), "http", s.HTTPAddr())
	err := lifecycle.Run(ctx, s.log, s.workers...)
	s.log.Info("gateway stopped")
	return err
}

func (s *Service) close() {
	for _, c := range s.conns {
		_ = c.Close()
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
