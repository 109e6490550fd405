package natsbus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BatchOptions shape ConsumeBatches; zero values take the defaults.
type BatchOptions struct {
	// Batch is the most messages one round hands over (default 256).
	Batch int
	// MaxWait is how long a round waits in all for more messages once it has one (default 2 ms). Messages that
	// arrived while the previous round was handled are taken at once, so under high load rounds fill up without
	// waiting; under low load a round is handed over at most MaxWait after its first message arrived.
	MaxWait time.Duration
	// Group is the priority group to pull in, for a consumer with PriorityPolicyPinned ("" for none).
	Group string
	// Idle is called when no message arrived for a second.
	Idle func()
}

// minNextWait is the shortest wait for the next message: long enough that a message already buffered wins over the
// timer (Next selects between the two at random when both are ready).
const minNextWait = 100 * time.Microsecond

// ConsumeBatches pulls continuously (up to 2 × Batch messages ahead of what is handled) and calls handle with each
// round, in the order the consumer delivered them, until ctx ends (nil) or the consumer goes away (its error: the
// caller declares it again). handle decides every message's acknowledgement.
func ConsumeBatches(ctx context.Context, cons jetstream.Consumer, o BatchOptions, handle func(msgs []jetstream.Msg)) error {
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * time.Millisecond
	}
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(2 * o.Batch)}
	if o.Group != "" {
		opts = append(opts, jetstream.PullPriorityGroup(o.Group))
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for ctx.Err() == nil {
		first, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, jetstream.ErrConsumerNotFound) {
				return err
			}
			// A time-out is an idle second; anything else (a heartbeat missed while NATS restarts) is retried by
			// the iterator itself.
			if o.Idle != nil && errors.Is(err, nats.ErrTimeout) {
				o.Idle()
			}
			continue
		}
		msgs := []jetstream.Msg{first}
		deadline := time.Now().Add(o.MaxWait)
		for len(msgs) < o.Batch {
			m, err := it.Next(jetstream.NextMaxWait(max(time.Until(deadline), minNextWait)))
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		handle(msgs)
	}
	return nil
}
