package mongostore

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// ErrStopped answers callers still waiting when a batcher stops.
var ErrStopped = errors.New("mongostore: batcher stopped")

// Batcher turns many concurrent small requests into few round trips: it collects requests until it has max of
// them or the oldest waited linger, then runs them as one. Attempt records and state reads go through it, so that
// the database is never the bottleneck of deliveries: the number of round trips grows with time, not with load.
type Batcher[In, Out any] struct {
	run      func(ctx context.Context, in []In) ([]Out, error)
	max      int
	linger   time.Duration
	parallel int
	reqs     chan batchReq[In, Out]
}

type batchReq[In, Out any] struct {
	in    In
	reply chan batchReply[Out]
}

type batchReply[Out any] struct {
	out Out
	err error
}

// NewBatcher builds a batcher; run must return one Out per In, in order.
func NewBatcher[In, Out any](size int, linger time.Duration, parallel int, run func(ctx context.Context, in []In) ([]Out, error)) *Batcher[In, Out] {
	return &Batcher[In, Out]{run: run, max: size, linger: linger, parallel: max(parallel, 1), reqs: make(chan batchReq[In, Out], size*4)}
}

// Do submits one request and waits for its result.
func (b *Batcher[In, Out]) Do(ctx context.Context, in In) (Out, error) {
	r := batchReq[In, Out]{in: in, reply: make(chan batchReply[Out], 1)}
	var zero Out
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case rep := <-r.reply:
		return rep.out, rep.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Run collects and runs batches until ctx ends, then answers what is still queued with ErrStopped. At most
// `parallel` batches run at once: while one waits for the database, the next one fills up.
func (b *Batcher[In, Out]) Run(ctx context.Context) error {
	pending := make([]batchReq[In, Out], 0, b.max)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	slots := make(chan struct{}, b.parallel)
	var running sync.WaitGroup
	flush := func() {
		if len(pending) == 0 {
			return
		}
		batch := pending
		pending = make([]batchReq[In, Out], 0, b.max)
		slots <- struct{}{}
		running.Go(func() {
			defer func() { <-slots }()
			b.runBatch(ctx, batch)
		})
	}
	for {
		select {
		case <-ctx.Done():
			flush()
			running.Wait()
			for {
				select {
				case r := <-b.reqs:
					r.reply <- batchReply[Out]{err: ErrStopped}
				default:
					return nil
				}
			}
		case r := <-b.reqs:
			if len(pending) == 0 {
				timer.Reset(b.linger)
			}
			pending = append(pending, r)
			if len(pending) >= b.max {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

func (b *Batcher[In, Out]) runBatch(ctx context.Context, batch []batchReq[In, Out]) {
	in := make([]In, len(batch))
	for i, r := range batch {
		in[i] = r.in
	}
	// The batch finishes even while stopping: its callers are waiting for it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	outs, err := b.run(rctx, in)
	cancel()
	for i, r := range batch {
		var rep batchReply[Out]
		if err != nil {
			rep.err = err
		} else if i < len(outs) {
			rep.out = outs[i]
		}
		r.reply <- rep
	}
}

// Loader reads delivery state by id, one point lookup each: FerretDB/SQLite pushes an _id equality down to SQL
// but not an $in, so batching reads would scan the collection.
type Loader struct{ s *Store }

// NewLoader returns a loader over the store.
func (s *Store) NewLoader() Loader { return Loader{s: s} }

// Do returns the delivery, or nil when it has no record yet.
func (l Loader) Do(ctx context.Context, id string) (*delivery.Delivery, error) {
	var d deliveryDoc
	err := l.s.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := d.domain()
	return &out, nil
}

// NewRecorder batches attempt records.
func (s *Store) NewRecorder(max int, linger time.Duration, parallel int) *Batcher[delivery.Outcome, struct{}] {
	return NewBatcher(max, linger, parallel, func(ctx context.Context, outs []delivery.Outcome) ([]struct{}, error) {
		return make([]struct{}, len(outs)), s.ApplyOutcomes(ctx, outs)
	})
}
