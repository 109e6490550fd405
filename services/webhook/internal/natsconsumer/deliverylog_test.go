package natsconsumer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/keyring"
	"github.com/casekeeper/core/services/webhook/internal/mongostore"
	"github.com/casekeeper/core/services/webhook/internal/natsconsumer"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// flakyWriter fails the first `fail` batches, then writes through.
type flakyWriter struct {
	store *mongostore.Store
	fail  atomic.Int32
}

func (f *flakyWriter) ApplyOutcomes(ctx context.Context, outs []delivery.Outcome) error {
	if f.fail.Add(-1) >= 0 {
		return errors.New("database unavailable")
	}
	return f.store.ApplyOutcomes(ctx, outs)
}

// Outcomes recorded on the stream reach the database's delivery log in order, through two projecting instances
// and a database that refuses the first batches; a delivery's state reads the same from the stream before the
// projection and from the database after it, and the stream keeps nothing once the database has it.
func TestDeliveryLogProjectsOutcomesInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := testinfra.NATS(t)
	uri, dbName := testinfra.Mongo(t)
	kr, err := keyring.New(bytes.Repeat([]byte{1}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store := mongostore.New(testinfra.ConnectMongo(t, uri, dbName), kr)
	js := testinfra.JetStream(t, srv.URL())
	stream, err := js.CreateOrUpdateStream(ctx, natsqueue.OutcomesStreamConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	outcomes := natsqueue.NewOutcomes(js, stream)

	// Before any projector runs: the stream alone answers for the state.
	now := time.Now().UTC().Truncate(time.Millisecond)
	d := delivery.Delivery{ID: "msg_first", Tenant: "acme", EndpointID: "ep_a", EventID: "evt_1", EventType: "case.created", CaseID: "c1"}
	if err := outcomes.Record(ctx, delivery.Outcome{Delivery: d, Attempt: delivery.Attempt{Number: 1, At: now, StatusCode: 500},
		Status: delivery.StatusRetrying, NextAttemptAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	last, err := outcomes.Last(ctx, "acme", d.ID)
	if err != nil || last == nil || last.AttemptCount != 1 || last.Status != delivery.StatusRetrying || last.OutcomeSeq == 0 {
		t.Fatalf("state from the stream %+v %v", last, err)
	}
	if other, err := outcomes.Last(ctx, "globex", d.ID); other != nil || err != nil {
		t.Fatalf("another tenant's subject %+v %v", other, err)
	}

	// 50 deliveries × (attempt 1 failed, attempt 2 failed, attempt 3 after a resend succeeded), recorded while two
	// instances project and the database refuses the first three batches.
	writer := &flakyWriter{store: store}
	writer.fail.Store(3)
	pctx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	for range 2 {
		p := natsconsumer.NewDeliveryLog(testinfra.JetStream(t, srv.URL()), writer, slog.New(slog.DiscardHandler), nil)
		running.Go(func() { _ = p.Run(pctx) })
	}
	defer func() { stop(); running.Wait() }()
	const n = 50
	for i := range n {
		di := d
		di.ID, di.EventID = fmt.Sprintf("msg_%02d", i), fmt.Sprintf("evt_%02d", i)
		steps := []delivery.Outcome{
			{Delivery: di, Attempt: delivery.Attempt{Number: 1, At: now, StatusCode: 500}, Status: delivery.StatusRetrying, NextAttemptAt: now.Add(time.Second)},
			{Delivery: di, Attempt: delivery.Attempt{Number: 2, At: now.Add(time.Second), StatusCode: 502}, Status: delivery.StatusDead},
		}
		for _, o := range steps {
			if err := outcomes.Record(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		if err := outcomes.Record(ctx, delivery.Outcome{Delivery: di, Attempt: delivery.Attempt{Number: 3, At: now.Add(3 * time.Second), StatusCode: 204},
			Status: delivery.StatusSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	loader := store.NewLoader()
	testinfra.Eventually(t, 30*time.Second, "every delivery succeeded after three attempts, in the database", func() bool {
		for i := range n {
			got, err := loader.Do(ctx, fmt.Sprintf("msg_%02d", i))
			if err != nil || got == nil || got.Status != delivery.StatusSucceeded || got.AttemptCount != 3 {
				return false
			}
		}
		return true
	})
	testinfra.Eventually(t, 10*time.Second, "the outcome stream emptied", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	if writer.fail.Load() >= 0 {
		t.Fatal("the refused batches were never tried")
	}
	for i := range n {
		got, err := store.GetDelivery(ctx, "acme", fmt.Sprintf("msg_%02d", i))
		if err != nil || len(got.Attempts) != 3 || got.Attempts[0].StatusCode != 500 || got.Attempts[1].StatusCode != 502 ||
			got.Attempts[2].StatusCode != 204 || got.EventID != fmt.Sprintf("evt_%02d", i) {
			t.Fatalf("delivery %d: %+v %v", i, got, err)
		}
		if fromLog, err := outcomes.Last(ctx, "acme", got.ID); fromLog != nil || err != nil {
			t.Fatalf("delivery %d still on the stream: %+v %v", i, fromLog, err)
		}
	}
	first, err := loader.Do(ctx, d.ID)
	if err != nil || first == nil || first.OutcomeSeq != last.OutcomeSeq || first.Status != delivery.StatusRetrying {
		t.Fatalf("state from the database %+v %v, from the stream before %+v", first, err, last)
	}
}
