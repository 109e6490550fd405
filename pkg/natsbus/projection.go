package natsbus

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/lifecycle"
)

// Projection writes what a stream holds to a store in batches, through one durable consumer shared by every
// replica and served to one replica at a time (a priority group with the pinned-client policy; another replica
// takes over PinnedTTL after the pinned one goes silent), so batches are written in stream order. A message is
// acknowledged only once its batch is written; a batch the store refuses comes back after a second, so Write must
// make an item written twice, or an older one written after a newer, change nothing.
type Projection[T any] struct {
	JS          jetstream.JetStream
	Stream      string
	Durable     string
	Description string
	// Batch is the most items one Write takes (default 256).
	Batch int
	// Decode reads an item; a message it refuses is terminated and logged.
	Decode func(jetstream.Msg) (T, error)
	// Write stores a batch.
	Write func(ctx context.Context, items []T) error
	// Written, when set, is told of every batch written, with what the consumer still had to deliver then.
	Written func(items []T, pending uint64)
	// Failed, when set, is told of every batch Write refused.
	Failed func(items []T, err error)
	// Idle, when set, is called after a second without messages.
	Idle func()
	Log  *slog.Logger
}

// PinnedGroup is the priority group the pinned consumers of PinnedConsumer pull in.
const PinnedGroup = "projector"

// PinnedConsumer is a durable consumer shared by every replica and served to one of them at a time: JetStream pins
// it to the replica that pulls, and hands it to another once that one has not pulled for pinnedTTL. With up to
// 4 × batch messages unacknowledged, the next batch is on its way while one is written.
func PinnedConsumer(durable, description string, batch int, pinnedTTL time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        durable,
		Description:    description,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     -1,
		MaxAckPending:  4 * batch,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PinnedTTL:      pinnedTTL,
		PriorityGroups: []string{PinnedGroup},
	}
}

// ConsumerConfig is the shared consumer.
func (p *Projection[T]) ConsumerConfig() jetstream.ConsumerConfig {
	return PinnedConsumer(p.Durable, p.Description, p.batch(), 5*time.Second)
}

func (p *Projection[T]) batch() int {
	if p.Batch <= 0 {
		return 256
	}
	return p.Batch
}

// Run projects until ctx ends, declaring the consumer again whenever it goes away.
func (p *Projection[T]) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		cons, err := p.JS.CreateOrUpdateConsumer(ctx, p.Stream, p.ConsumerConfig())
		if err == nil {
			err = ConsumeBatches(ctx, cons, BatchOptions{Batch: p.batch(), Group: PinnedGroup, Idle: p.Idle},
				func(msgs []jetstream.Msg) { p.apply(ctx, msgs) })
		}
		if err != nil && ctx.Err() == nil {
			p.Log.Warn("a projection consumer ended; declaring it again", "consumer", p.Durable, "error", err)
			lifecycle.Sleep(ctx, time.Second)
		}
	}
	return nil
}

func (p *Projection[T]) apply(ctx context.Context, msgs []jetstream.Msg) {
	items := make([]T, 0, len(msgs))
	kept := msgs[:0:0]
	for _, m := range msgs {
		it, err := p.Decode(m)
		if err != nil {
			p.Log.Error("a message a projection cannot read was terminated", "consumer", p.Durable, "subject", m.Subject(), "error", err)
			_ = m.Term()
			continue
		}
		items, kept = append(items, it), append(kept, m)
	}
	if len(items) == 0 {
		return
	}
	// The batch finishes even while the service stops: acknowledging it spares the next replica the repeat.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	err := p.Write(wctx, items)
	cancel()
	if err != nil {
		if p.Failed != nil {
			p.Failed(items, err)
		}
		p.Log.Warn("a projection batch failed; it comes back", "consumer", p.Durable, "items", len(items), "error", err)
		for _, m := range kept {
			_ = m.NakWithDelay(time.Second)
		}
		return
	}
	for _, m := range kept {
		_ = m.Ack()
	}
	if p.Written != nil {
		var pending uint64
		if md, err := kept[len(kept)-1].Metadata(); err == nil {
			pending = md.NumPending
		}
		p.Written(items, pending)
	}
}
