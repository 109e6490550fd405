package casesvc_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
	casesvc "github.com/casekeeper/core/services/case"
	"github.com/casekeeper/core/services/case/internal/projector"
)

// Demo clients of the casekeeper realm (deploy/keycloak/casekeeper-realm.json).
var (
	acmeProvider   = client{"acme-provider", "acmeProviderDevSecret"}
	globexProvider = client{"globex-provider", "globexProviderDevSecret"}
	acmeBackend    = client{"acme-backend", "acmeBackendDevSecret"}
)

type client struct{ id, secret string }

// token gets a real access token from Keycloak by client credentials, shared by the tests of this binary.
func token(t testing.TB, c client) string {
	t.Helper()
	return testinfra.CachedClientToken(t, c.id, c.secret)
}

// stack is a running case service on embedded NATS and FerretDB.
type stack struct {
	svc  *casesvc.Service
	cfg  casesvc.Config
	nats *testinfra.RestartableNATS
	api  pb.CaseServiceClient
	js   jetstream.JetStream
	logs *testinfra.LogBuffer // everything the service logs, as JSON, from debug up
}

type stackOption func(*casesvc.Config)

func startStack(t testing.TB, opts ...stackOption) *stack {
	t.Helper()
	st := &stack{nats: testinfra.StartRestartableNATS(t), logs: &testinfra.LogBuffer{}}
	uri, db := testinfra.Mongo(t)
	cfg, err := config.Load[casesvc.Config](map[string]string{
		"CASE_GRPC_ADDR": "127.0.0.1:0", "CASE_HTTP_ADDR": "127.0.0.1:0",
		"NATS_URL": st.nats.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": db,
		"KEYCLOAK_URL": testinfra.KeycloakURL(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	// A dead projector hands over quickly in tests; the retries of a failed round come back soon.
	cfg.Projector = projector.Options{PinnedTTL: 2 * time.Second, RetryDelay: 200 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	st.cfg = cfg
	log := slog.New(slog.NewJSONHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svcs := testinfra.StartServices(t)
	svc, err := casesvc.New(svcs.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	svcs.Run("case service", svc.Run)
	st.svc = svc
	st.api = pb.NewCaseServiceClient(testinfra.Dial(t, svc.GRPCAddr()))
	st.js = testinfra.JetStream(t, st.nats.URL())
	testinfra.WaitStream(t, st.js, events.Stream, 10*time.Second)
	return st
}

// as returns a context carrying the client's token.
func as(t testing.TB, c client) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return testinfra.Bearer(ctx, token(t, c))
}

// caseEvents reads every event of one case on the stream, in stream order.
func (st *stack) caseEvents(t *testing.T, tenant, caseID string) []*pb.CaseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := st.js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subject(tenant, caseID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.Info(ctx, jetstream.WithSubjectFilter(events.Subject(tenant, caseID)))
	if err != nil {
		t.Fatal(err)
	}
	want := int(si.State.Subjects[events.Subject(tenant, caseID)])
	var out []*pb.CaseEvent
	for len(out) < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				break
			}
			t.Fatal(err)
		}
		ev, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// url is the address of path on the service's HTTP port (/metrics, /readyz).
func (st *stack) url(path string) string { return "http://" + st.svc.HTTPAddr() + path }
