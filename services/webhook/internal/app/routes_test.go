package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/webhook/internal/app"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/keyring"
	"github.com/casekeeper/core/services/webhook/internal/mongostore"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// routing is what two webhook instances share: NATS (the registry, the delivery queue) and the database.
type routing struct {
	js       jetstream.JetStream
	store    *mongostore.Store
	registry *natsqueue.Registry
	queue    *natsqueue.Queue
}

func startRouting(t *testing.T) *routing {
	t.Helper()
	srv := testinfra.NATS(t)
	nc, js, err := natsbus.Connect(srv.URL(), "routing-test", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := t.Context()
	if _, err := natsbus.EnsureStream(ctx, js, natsqueue.StreamConfig(1)); err != nil {
		t.Fatal(err)
	}
	kv, err := natsbus.EnsureKeyValue(ctx, js, natsqueue.RegistryConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	uri, db := testinfra.Mongo(t)
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store := mongostore.New(testinfra.ConnectMongo(t, uri, db), kr)
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	return &routing{js: js, store: store, registry: natsqueue.NewRegistry(nc, kv), queue: natsqueue.New(js)}
}

// instance is the routing side of one webhook replica: its own in-memory table.
func (r *routing) instance(t *testing.T) *app.Routes {
	t.Helper()
	routes := app.NewRoutes(r.store, r.registry, slog.Default())
	if err := routes.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	return routes
}

type quiet struct{}

func (quiet) EndpointsChanged() {}

// TestAnEndpointCreatedOnOneInstanceIsRoutedByAnother is the stale-replica miss: instance B loaded its table
// before instance A created an endpoint and heard nothing of it (no announcement, no periodic reload). An event
// stored after the creation must still get a delivery when B's fan-out judges it, and one stored before must not.
func TestAnEndpointCreatedOnOneInstanceIsRoutedByAnother(t *testing.T) {
	r := startRouting(t)
	ctx := t.Context()
	a, b := r.instance(t), r.instance(t)
	endpoints := &app.Endpoints{Store: r.store, Queue: r.queue, Routes: a, Registry: r.registry, Notifier: quiet{},
		AllowLoopback: true, Log: slog.Default(), Now: time.Now}
	ep, _, err := endpoints.Create(ctx, "acme", delivery.Endpoint{URL: "http://127.0.0.1:9/hook"})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.ForEvent("acme", webhooks.TypeUpdated, time.Now()); len(got) != 0 {
		t.Fatalf("precondition: instance B should not have loaded the new endpoint yet, has %d", len(got))
	}

	fanout := &app.Fanout{Routes: b, Queue: r.queue}
	after := event(t, "evt_after", ep.CreatedAt.Add(time.Millisecond))
	before := event(t, "evt_before", ep.CreatedAt.Add(-time.Millisecond))
	if err := fanout.Handle(ctx, []app.Incoming{before, after}); err != nil {
		t.Fatal(err)
	}
	n, last := waiting(t, r.js, ep)
	if n != 1 || last != delivery.DeliveryID("evt_after", ep.ID) {
		t.Fatalf("instance B queued %d attempts for the new endpoint (last %q), want exactly the delivery of evt_after", n, last)
	}
}

// TestFreshReadsTheDatabaseOnlyAfterAChange: the check before every fan-out batch is one registry read; the
// table is read again only when some instance recorded a change since.
func TestFreshReadsTheDatabaseOnlyAfterAChange(t *testing.T) {
	r := startRouting(t)
	ctx := t.Context()
	counting := &countingLister{EndpointLister: r.store}
	b := app.NewRoutes(counting, r.registry, slog.Default())
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := b.Fresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if counting.loads != 1 {
		t.Fatalf("the table was read %d times without any change, want once", counting.loads)
	}
	endpoints := &app.Endpoints{Store: r.store, Queue: r.queue, Routes: r.instance(t), Registry: r.registry,
		Notifier: quiet{}, AllowLoopback: true, Log: slog.Default(), Now: time.Now}
	if _, _, err := endpoints.Create(ctx, "acme", delivery.Endpoint{URL: "http://127.0.0.1:9/hook"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := b.Fresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if counting.loads != 2 {
		t.Fatalf("the table was read %d times after one change, want twice in all", counting.loads)
	}
	if got := b.ForEvent("acme", webhooks.TypeUpdated, time.Now().Add(time.Second)); len(got) != 1 {
		t.Fatalf("after Fresh the table routes to %d endpoints, want 1", len(got))
	}
}

type countingLister struct {
	app.EndpointLister
	loads int
}

func (c *countingLister) AllEndpoints(ctx context.Context) ([]delivery.Endpoint, error) {
	c.loads++
	return c.EndpointLister.AllEndpoints(ctx)
}

func event(t *testing.T, id string, stored time.Time) app.Incoming {
	t.Helper()
	ev := &casekeeperv1.CaseEvent{Id: id, Type: webhooks.TypeUpdated, Tenant: "acme", CaseId: "case_1", CaseVersion: 2,
		Data: &casekeeperv1.Case{Id: "case_1", Tenant: "acme", Version: 2}}
	body, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return app.Incoming{Event: ev, Body: body, Stored: stored}
}

// waiting returns how many attempts are queued for the endpoint and the delivery id of the last one.
func waiting(t *testing.T, js jetstream.JetStream, ep delivery.Endpoint) (int, string) {
	t.Helper()
	ctx := t.Context()
	st, err := js.Stream(ctx, natsqueue.Stream)
	if err != nil {
		t.Fatal(err)
	}
	subject := natsqueue.DeliverSubject(ep.Tenant, ep.ID)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Subjects[subject])
	if n == 0 {
		return 0, ""
	}
	last, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	return n, last.Header.Get(natsqueue.HeaderDelivery)
}
