// Package projector copies the CASES stream into the change feed: one durable JetStream consumer, shared by every
// gateway instance, writes each event at its stream sequence and announces the write.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/tenant"
	"github.com/casekeeper/core/services/gateway/internal/feed"
)

// Store is where the feed is written.
type Store interface {
	Append(ctx context.Context, e feed.Entry) error
}

// Announcer wakes the feed's readers once an event is stored (the local hub and the other instances).
type Announcer func(tenant string, seq int64)

// ConsumerConfig is the durable consumer. MaxAckPending 1 is the point: the server hands out the next event only
// once the previous one is stored and acknowledged, across all instances. So the feed always holds a prefix of the
// stream, and a reader that saw position n can never later find an event at a position below n appear — which is
// what makes "resume after the cursor" lose nothing. The cost is one event per round trip (hundreds per second on
// one core), ample for case changes; a redelivered event is a no-op in the store.
func ConsumerConfig(name string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "Gateway change feed projection",
		FilterSubject: "cases.>",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1,
		// Never give up on an event: skipping one would put a hole in the feed that no cursor can see.
		MaxDeliver: -1,
	}
}

// Handler errors decide what happens to the message.
var (
	// errPoison marks a message that can never be stored (undecodable, no valid tenant): terminated and logged.
	errPoison = errors.New("poison message")
)

// Handler stores one message.
type Handler struct {
	Store    Store
	Announce Announcer
}

// Handle decodes and stores one event. An error wrapping errPoison means give up; any other error means retry.
func (h Handler) Handle(ctx context.Context, data []byte, streamSeq uint64) (tenantID string, err error) {
	ev, err := events.Decode(data)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errPoison, err)
	}
	if !tenant.Valid(ev.GetTenant()) || ev.GetId() == "" {
		return "", fmt.Errorf("%w: event %q has no valid tenant or id", errPoison, ev.GetId())
	}
	if err := h.Store.Append(ctx, feed.Entry{Seq: int64(streamSeq), Event: ev}); err != nil {
		return "", err
	}
	return ev.GetTenant(), nil
}

// Worker runs the consume loop until ctx ends.
func Worker(js jetstream.JetStream, consumerName string, h Handler, log *slog.Logger) lifecycle.Worker {
	return lifecycle.Worker{Name: "feed-projector", Run: func(ctx context.Context) error {
		cons, err := ensureConsumer(ctx, js, consumerName)
		if err != nil {
			return err
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(1))
		if err != nil {
			return fmt.Errorf("feed consumer: %w", err)
		}
		stopped := make(chan struct{})
		defer close(stopped)
		var itMu sync.Mutex
		go func() {
			select {
			case <-ctx.Done():
			case <-stopped:
			}
			itMu.Lock()
			it.Stop()
			itMu.Unlock()
		}()
		retries := 0
		for {
			msg, err := it.Next()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				// The consumer was deleted (by an operator, or with its stream): declare it again and go on from
				// where the new one starts; the store's idempotency absorbs any overlap.
				log.Warn("feed consumer interrupted", "error", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
					if cons, err = ensureConsumer(ctx, js, consumerName); err != nil {
						return err
					}
					itMu.Lock()
					it.Stop()
					it, err = cons.Messages(jetstream.PullMaxMessages(1))
					itMu.Unlock()
					if err != nil {
						return fmt.Errorf("feed consumer: %w", err)
					}
				}
				continue
			}
			meta, err := msg.Metadata()
			if err != nil {
				_ = msg.Term()
				continue
			}
			tenant, err := h.Handle(ctx, msg.Data(), meta.Sequence.Stream)
			switch {
			case err == nil:
				retries = 0
				if err := msg.DoubleAck(ctx); err != nil {
					// The event is stored; the redelivery this causes is a no-op.
					log.Warn("feed ack failed", "seq", meta.Sequence.Stream, "error", err)
				}
				h.Announce(tenant, int64(meta.Sequence.Stream))
			case errors.Is(err, errPoison):
				log.Error("feed event dropped", "seq", meta.Sequence.Stream, "error", err)
				_ = msg.TermWithReason("undecodable")
			default:
				// The store is down: this same event comes back after the delay (MaxAckPending 1 keeps the rest
				// waiting behind it, so order holds).
				retries++
				delay := min(time.Duration(retries)*200*time.Millisecond, 5*time.Second)
				log.Warn("feed write failed, retrying", "seq", meta.Sequence.Stream, "delay", delay, "error", err)
				_ = msg.NakWithDelay(delay)
			}
		}
	}}
}

func ensureConsumer(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Consumer, error) {
	for {
		cons, err := js.CreateOrUpdateConsumer(ctx, events.Stream, ConsumerConfig(name))
		if err == nil {
			return cons, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("feed consumer %s: %w", name, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
