package natsqueue

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/devinfra"
)

func startJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv, err := devinfra.StartNATS(devinfra.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// The work-queue stream accepts schedules, and a schedule reaches the endpoint's consumer when due, while the
// schedule itself leaves no message behind.
func TestScheduledRetryReachesEndpointConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := startJS(t)
	s, err := js.CreateOrUpdateStream(ctx, StreamConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	q := New(js)
	c, err := q.EnsureConsumer(ctx, "acme", "ep1", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	j := Job{DeliveryID: "msg_a", Tenant: "acme", EndpointID: "ep1", Attempt: 2, Event: []byte("x")}
	start := time.Now()
	if err := q.Schedule(ctx, j, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, err := q.HasSchedule(ctx, j); !ok || err != nil {
		t.Fatalf("HasSchedule %v %v", ok, err)
	}
	msgs, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range msgs.Messages() {
		got = append(got, m)
	}
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Fatalf("scheduled message came after %s", el)
	}
	pj, err := ParseJob(got[0])
	if err != nil || pj.DeliveryID != "msg_a" || pj.Attempt != 2 || string(pj.Event) != "x" {
		t.Fatalf("job %+v %v", pj, err)
	}
	_ = got[0].DoubleAck(ctx)
	time.Sleep(200 * time.Millisecond)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 0 {
		t.Fatalf("%d messages left in the stream", info.State.Msgs)
	}
	if ok, _ := q.HasSchedule(ctx, j); ok {
		t.Fatal("schedule still present after firing")
	}
}

// A paused endpoint stays paused when its consumer is declared again (a concurrency change restarts its loop), and
// Resume ends the pause.
func TestPauseSurvivesARedeclaration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := startJS(t)
	if _, err := js.CreateOrUpdateStream(ctx, StreamConfig(1)); err != nil {
		t.Fatal(err)
	}
	q := New(js)
	if _, err := q.EnsureConsumer(ctx, "acme", "ep1", 2, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := q.Pause(ctx, "ep1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c, err := q.EnsureConsumer(ctx, "acme", "ep1", 4, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx); err != nil || !info.Paused || info.Config.MaxAckPending != 4 {
		t.Fatalf("after the redeclaration: %+v %v, want paused with the new concurrency", info, err)
	}
	if err := q.Resume(ctx, "ep1"); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx); err != nil || info.Paused {
		t.Fatalf("after Resume: paused %v %v", info.Paused, err)
	}
	if err := q.Resume(ctx, "ep_none"); err != nil {
		t.Fatalf("resuming an endpoint without a consumer: %v", err)
	}
}

// The registry bucket as earlier versions declared it (no marker TTL) takes the new configuration in place, and a
// deleted endpoint's purge marker then carries a TTL, so that deleted endpoints do not pile up in the bucket.
func TestRegistryPurgeMarkersExpire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := startJS(t)
	earlier := RegistryConfig(1)
	earlier.LimitMarkerTTL = 0
	if _, err := js.CreateKeyValue(ctx, earlier); err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, RegistryConfig(1))
	if err != nil {
		t.Fatalf("updating the bucket of earlier versions: %v", err)
	}
	if st, err := kv.Status(ctx); err != nil || st.(*jetstream.KeyValueBucketStatus).LimitMarkerTTL() != removedTTL {
		t.Fatalf("bucket status %v, %v; want a marker TTL of %s", st, err, removedTTL)
	}
	nc := js.Conn()
	r := NewRegistry(nc, kv)
	if _, err := r.Created(ctx, "ep_gone"); err != nil {
		t.Fatal(err)
	}
	if err := r.Removed(ctx, "ep_gone"); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "KV_"+RegistryBucket)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "$KV."+RegistryBucket+".created.ep_gone")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := time.ParseDuration(m.Header.Get("Nats-TTL")); err != nil || d != removedTTL {
		t.Fatalf("purge marker TTL %q (%v), want %s; headers %v", m.Header.Get("Nats-TTL"), err, removedTTL, m.Header)
	}
}
