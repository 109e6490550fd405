// Package natsconsumer runs the JetStream consume loops: the fan-out of case events into deliveries, and one loop
// per endpoint that makes the attempts. The loops only move messages; the handlers in app decide, and the kind of
// error they return decides ack (nil), redelivery (app.ErrRetryLater) or termination (a malformed message).
package natsconsumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/pkg/tracing"
	"github.com/casekeeper/core/services/webhook/internal/app"
)

// handleTimeout bounds the handling of one batch of events.
const handleTimeout = 15 * time.Second

// FanoutConsumer is the durable consumer of the CASES stream shared by every instance.
const FanoutConsumer = "webhook-fanout"

// Fanout reads case events in batches and hands them to app.Fanout.
type Fanout struct {
	JS      jetstream.JetStream
	Handler *app.Fanout
	Routes  *app.Routes
	Log     *slog.Logger
	// Batch is how many events one round of fan-out takes at most.
	Batch int
}

func (f *Fanout) consumer(ctx context.Context) (jetstream.Consumer, error) {
	return f.JS.CreateOrUpdateConsumer(ctx, events.Stream, jetstream.ConsumerConfig{
		Durable:       FanoutConsumer,
		Description:   "Webhook fan-out: one delivery per event and matching endpoint.",
		FilterSubject: "cases.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		// A batch takes two round trips (database, bus) and is bounded by handleTimeout; after a crash its events
		// come back this soon.
		AckWait:       handleTimeout + 5*time.Second,
		MaxAckPending: 4 * max(f.Batch, 1),
		MaxDeliver:    -1,
		// All: events stored before the consumer first existed are not skipped (the service may start after the
		// case service). An endpoint still gets only events that occurred after it was created (app.Routes).
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
}

// Lag reports how many events wait for the fan-out.
func (f *Fanout) Lag(ctx context.Context) (uint64, error) {
	c, err := f.JS.Consumer(ctx, events.Stream, FanoutConsumer)
	if err != nil {
		return 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// Run consumes until ctx ends. It starts after the routing table is loaded, so that no event is judged against an
// empty table.
func (f *Fanout) Run(ctx context.Context) error {
	select {
	case <-f.Routes.Loaded():
	case <-ctx.Done():
		return nil
	}
	// The batch is whatever has arrived, up to Batch, without waiting for more: one event at a time when idle (no
	// added latency), full batches under load, when events arrive while the previous batch is enqueued.
	for ctx.Err() == nil {
		cons, err := f.consumer(ctx)
		if err == nil {
			err = natsbus.ConsumeBatches(ctx, cons, natsbus.BatchOptions{Batch: f.Batch, MaxWait: time.Nanosecond},
				func(batch []jetstream.Msg) { f.handle(ctx, batch) })
		}
		if err != nil && ctx.Err() == nil {
			f.Log.Warn("the fan-out consumer ended; declaring it again", "error", err)
			lifecycle.Sleep(ctx, time.Second)
		}
	}
	return nil
}

func (f *Fanout) handle(ctx context.Context, batch []jetstream.Msg) {
	var (
		msgs []jetstream.Msg
		in   []app.Incoming
	)
	for _, m := range batch {
		ev, err := events.Decode(m.Data())
		if err != nil {
			f.Log.Error("undecodable case event terminated", "subject", m.Subject(), "error", err)
			_ = m.Term()
			continue
		}
		md, err := m.Metadata()
		if err != nil {
			f.Log.Error("case event without stream metadata terminated", "subject", m.Subject(), "error", err)
			_ = m.Term()
			continue
		}
		msgs = append(msgs, m)
		in = append(in, app.Incoming{Event: ev, Body: m.Data(), Stored: md.Timestamp, Seq: md.Sequence.Stream,
			Trace: tracing.Extract(tracing.Headers(m.Headers()))})
	}
	if len(msgs) == 0 {
		return
	}
	// The batch finishes even when the service is stopping, so that its acknowledgements are not lost.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handleTimeout)
	err := f.Handler.Handle(hctx, in)
	cancel()
	if err != nil {
		f.Log.Warn("fan-out batch failed, redelivering", "events", len(msgs), "error", err)
		for _, m := range msgs {
			_ = m.NakWithDelay(time.Second)
		}
		return
	}
	for _, m := range msgs {
		_ = m.Ack()
	}
}
