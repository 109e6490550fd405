package relay_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/case/internal/app"
	"github.com/casekeeper/core/services/case/internal/kyc"
	"github.com/casekeeper/core/services/case/internal/mongostore"
	"github.com/casekeeper/core/services/case/internal/protoconv"
	"github.com/casekeeper/core/services/case/internal/relay"
)

// crashed is a publisher that never publishes: the process died right after the database write.
type crashed struct{}

func (crashed) Publish(context.Context, string, string, int64, []app.PendingEvent) {}
func (crashed) Acknowledged(string) bool                                           { return false }

func setup(t *testing.T) (*mongostore.Store, jetstream.JetStream, *nats.Conn) {
	t.Helper()
	srv := testinfra.NATS(t)
	uri, dbName := testinfra.Mongo(t)
	store := mongostore.New(testinfra.ConnectMongo(t, uri, dbName), 4)
	if err := store.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), events.StreamConfig(time.Hour, 1)); err != nil {
		t.Fatal(err)
	}
	return store, js, nc
}

func runRelay(t *testing.T, js jetstream.JetStream, nc *nats.Conn, store *mongostore.Store) (stop func()) {
	r := relay.New(js, nc, store, slog.New(slog.DiscardHandler), nil, relay.Options{SweepInterval: 50 * time.Millisecond, SweepGrace: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestCrashBetweenWriteAndPublish writes changes whose publish never happens, as if the process died after the
// database write, then starts a relay: every event appears once, in order; a second relay finds nothing left and a
// republish of an already published outbox is deduplicated by JetStream.
func TestCrashBetweenWriteAndPublish(t *testing.T) {
	store, js, nc := setup(t)
	cases := app.New(store, protoconv.EncodeEvent, crashed{})
	ctx := t.Context()
	c, err := cases.Create(ctx, "acme", kyc.NewCase{RequestID: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cases.Apply(ctx, "acme", c.ID, 0, kyc.Submit()); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, js); n != 0 {
		t.Fatalf("%d events before any relay ran", n)
	}

	stop := runRelay(t, js, nc, store)
	deadline := time.Now().Add(10 * time.Second)
	for streamMsgs(t, js) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // more sweeps: nothing may be published twice
	stop()
	if n := streamMsgs(t, js); n != 2 {
		t.Fatalf("%d events on the stream, want 2", n)
	}
	pending, err := store.Pending(ctx, time.Now().Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Fatalf("outbox still holds %d cases after publishing", len(pending))
	}

	// A relay that crashed after publishing but before clearing republishes: JetStream drops the copies.
	r := relay.New(js, nc, store, slog.New(slog.DiscardHandler), nil, relay.Options{})
	r.Publish(ctx, "acme", c.ID, 2, published(t, js))
	if n := streamMsgs(t, js); n != 2 {
		t.Fatalf("%d events after a republish, want 2", n)
	}
}

// published rebuilds the outbox entries of the published events from the stream.
func published(t *testing.T, js jetstream.JetStream) []app.PendingEvent {
	t.Helper()
	s, _ := js.Stream(t.Context(), events.Stream)
	var out []app.PendingEvent
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetCaseVersion() != int64(seq) {
			t.Fatalf("stream position %d holds version %d: out of order", seq, ev.GetCaseVersion())
		}
		out = append(out, app.PendingEvent{ID: ev.GetId(), Type: ev.GetType(), Version: ev.GetCaseVersion(), Payload: m.Data})
	}
	return out
}
