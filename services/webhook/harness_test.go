package webhooksvc_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// fakeVerifier stands in for Keycloak in the tests of delivery behaviour; the auth path itself is tested against
// the real Keycloak in auth_test.go.
type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, raw string) (auth.Principal, error) {
	switch raw {
	case "acme-admin":
		return auth.Principal{Subject: "u1", Tenant: "acme", Roles: []string{auth.RoleWebhooksManage}}, nil
	case "globex-admin":
		return auth.Principal{Subject: "u2", Tenant: "globex", Roles: []string{auth.RoleWebhooksManage}}, nil
	case "acme-reader":
		return auth.Principal{Subject: "u3", Tenant: "acme", Roles: []string{auth.RoleCasesRead}}, nil
	case "":
		return auth.Principal{}, auth.ErrNoToken
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

type env struct {
	t        testing.TB
	nats     *testinfra.RestartableNATS
	natsURL  string
	mongoURI string
	db       string
	js       jetstream.JetStream

	svc    *webhooksvc.Service
	client casekeeperv1.WebhookServiceClient
	cfg    webhooksvc.Config
}

// newEnv starts NATS on a fixed port with its own store (so that it can be restarted) and FerretDB.
func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, nats: testinfra.StartRestartableNATS(t)}
	e.natsURL = e.nats.URL()
	e.mongoURI, e.db = testinfra.Mongo(t)
	e.js = testinfra.JetStream(t, e.natsURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.CreateOrUpdateStream(ctx, events.StreamConfig(time.Hour, 1)); err != nil {
		t.Fatal(err)
	}
	return e
}

// config is the service's configuration for tests: loopback allowed, short timeouts and retries.
func (e *env) config() webhooksvc.Config {
	return webhooksvc.Config{
		LogLevel:          "warn",
		GRPCAddr:          "127.0.0.1:0",
		HTTPAddr:          "127.0.0.1:0",
		AllowLoopbackHTTP: true,
		RequestTimeout:    2 * time.Second,
		RetrySchedule:     []time.Duration{0, time.Second, time.Second, time.Second, time.Second, time.Second},
		RetryJitter:       0,
		DisableAfter:      120 * time.Hour,
		GatewayPublicURL:  "https://api.example",
		SweepGrace:        5 * time.Second,
		EndpointRefresh:   time.Second,
		FanoutBatch:       256,
		DeliveryRetention: 720 * time.Hour,
		RetentionInterval: time.Hour,
		SecretsKey:        testSecretsKey,
		Verifier:          fakeVerifier{},
	}
}

// start runs the service in-process until the test ends.
func (e *env) start(mods ...func(*webhooksvc.Config)) {
	e.t.Helper()
	cfg := e.config()
	cfg.NATS.URL, cfg.NATS.StreamReplicas = e.natsURL, 1
	cfg.Mongo.URI, cfg.Mongo.Database = config.Secret(e.mongoURI), e.db
	for _, m := range mods {
		m(&cfg)
	}
	e.cfg = cfg
	log := testinfra.Logger(e.t)
	svcs := testinfra.StartServices(e.t)
	svc, err := webhooksvc.New(svcs.Context(), cfg, log)
	if err != nil {
		e.t.Fatal(err)
	}
	svcs.Run("webhook service", svc.Run)
	e.svc = svc
	e.client = casekeeperv1.NewWebhookServiceClient(testinfra.Dial(e.t, svc.GRPCAddr()))
}

func as(token string) context.Context {
	return testinfra.Bearer(context.Background(), token)
}

func (e *env) createEndpoint(url string, mod ...func(*casekeeperv1.Endpoint)) (*casekeeperv1.Endpoint, string) {
	e.t.Helper()
	ep := &casekeeperv1.Endpoint{Url: url, PayloadFormat: casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL}
	for _, m := range mod {
		m(ep)
	}
	resp, err := e.client.CreateEndpoint(as("acme-admin"), &casekeeperv1.CreateEndpointRequest{Endpoint: ep})
	if err != nil {
		e.t.Fatalf("CreateEndpoint: %v", err)
	}
	return resp.GetEndpoint(), resp.GetSecret()
}

// publish sends n case events of the tenant, the way the case service does, and returns their ids.
func (e *env) publish(tenant string, n int) []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids := make([]string, n)
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		ids[i] = fmt.Sprintf("evt_%s_%d_%d", tenant, time.Now().UnixNano(), i)
		ev := &casekeeperv1.CaseEvent{Id: ids[i], Type: events.TypeCreated, Tenant: tenant, CaseId: fmt.Sprintf("case_%d", i),
			CaseVersion: 1, OccurredAt: timestamppb.Now(),
			Data: &casekeeperv1.Case{Id: fmt.Sprintf("case_%d", i), Tenant: tenant, Version: 1, ExternalRef: "ref",
				Applicant: &casekeeperv1.Applicant{FullName: "Test Person"}}}
		m, err := events.Message(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		f, err := e.js.PublishMsgAsync(m)
		if err != nil {
			e.t.Fatal(err)
		}
		futures = append(futures, f)
		if len(futures) >= 1000 {
			waitAll(ctx, e.t, futures)
			futures = futures[:0]
		}
	}
	waitAll(ctx, e.t, futures)
	return ids
}

func waitAll(ctx context.Context, t testing.TB, fs []jetstream.PubAckFuture) {
	t.Helper()
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

// receiver is a local webhook endpoint that records what arrives and answers as told.
type receiver struct{ *testinfra.Recorder }

func newReceiver(t testing.TB, respond func(n int, r *http.Request) int) *receiver {
	return &receiver{testinfra.NewRecorder(t, respond)}
}

// distinctIDs counts distinct webhook-ids that were answered with a success, and all arrivals.
func (rc *receiver) distinctIDs() (delivered, total int) {
	got := rc.Requests()
	seen := map[string]bool{}
	for _, g := range got {
		if g.Status >= 200 && g.Status < 300 {
			seen[g.Header.Get("webhook-id")] = true
		}
	}
	return len(seen), len(got)
}

// dumpState logs delivery states and the work stream, to explain a failure.
func (e *env) dumpState(t testing.TB) {
	ctx := context.Background()
	db := testinfra.ConnectMongo(t, e.mongoURI, e.db)
	for st := 1; st <= 4; st++ {
		n, _ := db.Collection("webhook_deliveries").CountDocuments(ctx, bson.D{{Key: "status", Value: st}})
		t.Logf("deliveries with status %d: %d", st, n)
	}
	if s, err := e.js.Stream(ctx, "WEBHOOK_DELIVERIES"); err == nil {
		if info, err := s.Info(ctx, jetstream.WithSubjectFilter(">")); err == nil {
			t.Logf("WEBHOOK_DELIVERIES holds %d messages on %d subjects", info.State.Msgs, len(info.State.Subjects))
		}
		for name := range s.ConsumerNames(ctx).Name() {
			c, _ := s.Consumer(ctx, name)
			if c != nil {
				info, _ := c.Info(ctx)
				t.Logf("consumer %s: pending %d ack-pending %d redelivered %d", name, info.NumPending, info.NumAckPending, info.NumRedelivered)
			}
		}
	}
	if c, err := e.js.Consumer(ctx, events.Stream, "webhook-fanout"); err == nil {
		info, _ := c.Info(ctx)
		t.Logf("fan-out: pending %d ack-pending %d", info.NumPending, info.NumAckPending)
	}
}

func fieldMask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
