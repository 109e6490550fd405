package natsconsumer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/services/webhook/internal/app"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// Endpoints runs one consume loop per enabled endpoint and keeps the set in step with the routing table.
type Endpoints struct {
	Queue   *natsqueue.Queue
	Handler *app.Deliverer
	Routes  *app.Routes
	Log     *slog.Logger
	// AckWait is how long JetStream waits for an attempt that stopped reporting progress (a crashed instance).
	AckWait time.Duration
	// Drain bounds the wait for attempts in flight at shutdown.
	Drain time.Duration
	// HandleTimeout bounds one attempt from message to acknowledgement: request, rate-limit wait and record.
	HandleTimeout time.Duration

	mu      sync.Mutex
	running map[string]*loop
	changes chan map[string]*app.Route
}

type loop struct {
	concurrency int
	cc          jetstream.ConsumeContext
	inflight    sync.WaitGroup
	cons        jetstream.Consumer
}

// Run reconciles the loops after every change of the routing table until ctx ends, then stops them and waits for
// attempts in flight.
func (e *Endpoints) Run(ctx context.Context) error {
	e.mu.Lock()
	e.running = map[string]*loop{}
	e.changes = make(chan map[string]*app.Route, 1)
	e.mu.Unlock()
	e.Routes.OnChange(func(table map[string]*app.Route) {
		// Latest table wins; reconciling talks to NATS, so it happens here, not in the caller of Reload.
		select {
		case <-e.changes:
		default:
		}
		e.changes <- table
	})
	select {
	case <-e.Routes.Loaded():
	case <-ctx.Done():
		return nil
	}
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	table := routeMap(e.Routes.All())
	for {
		e.reconcile(ctx, table)
		select {
		case <-ctx.Done():
			e.stopAll()
			return nil
		case table = <-e.changes:
		case <-retry.C:
			// Loops whose consumer could not be created (NATS down) are tried again.
		}
	}
}

func routeMap(rs []*app.Route) map[string]*app.Route {
	m := make(map[string]*app.Route, len(rs))
	for _, r := range rs {
		m[r.ID] = r
	}
	return m
}

func (e *Endpoints) reconcile(ctx context.Context, table map[string]*app.Route) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// A disabled endpoint keeps its loop: the fan-out gives it no new work, and what still waits for it (attempts
	// queued before it was disabled, retries falling due) is dead-lettered with the reason by the deliverer, where
	// "recover failed" finds it once the endpoint is enabled again. Stopping the loop instead would leave that work
	// in the queue, neither sent nor failed, until the queue's MaxAge drops it unrecorded.
	for id, l := range e.running {
		rt, ok := table[id]
		if !ok || rt.Concurrency() != l.concurrency {
			e.stop(l)
			delete(e.running, id)
		}
	}
	for id, rt := range table {
		if _, ok := e.running[id]; ok {
			continue
		}
		l, err := e.start(ctx, rt)
		if err != nil {
			if ctx.Err() == nil {
				e.Log.Warn("starting endpoint consumer failed", "endpoint", id, "error", err)
			}
			continue
		}
		e.running[id] = l
	}
}

func (e *Endpoints) start(ctx context.Context, rt *app.Route) (*loop, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n := rt.Concurrency()
	cons, err := e.Queue.EnsureConsumer(cctx, rt.Tenant, rt.ID, n, e.AckWait)
	if err != nil {
		return nil, err
	}
	l := &loop{concurrency: n, cons: cons}
	sem := make(chan struct{}, n)
	// Attempts outlive a stop of the loop (they are waited for, up to Drain), so they do not use ctx.
	hctx := context.WithoutCancel(ctx)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		sem <- struct{}{}
		l.inflight.Add(1)
		go func() {
			defer func() { <-sem; l.inflight.Done() }()
			e.handle(hctx, m)
		}()
	}, jetstream.PullMaxMessages(n), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			e.Log.Debug("endpoint consumer", "endpoint", rt.ID, "error", err)
		}
	}))
	if err != nil {
		return nil, err
	}
	l.cc = cc
	return l, nil
}

func (e *Endpoints) handle(ctx context.Context, m jetstream.Msg) {
	job, err := natsqueue.ParseJob(m)
	if err != nil {
		e.Log.Error("malformed delivery message terminated", "subject", m.Subject())
		_ = m.Term()
		return
	}
	// Tell JetStream the attempt is alive, so that AckWait can stay short: after a crash the endpoint's slots
	// (MaxAckPending) come back within AckWait instead of after the longest possible request.
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(e.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	// The heartbeat must not keep a stuck attempt alive forever: past HandleTimeout it gives up and is redelivered.
	hctx, cancel := context.WithTimeout(ctx, e.HandleTimeout)
	err = e.Handler.Handle(hctx, job)
	cancel()
	close(stop)
	if errors.Is(err, app.ErrBadEvent) {
		e.Log.Error("delivery message with an undecodable event terminated", "delivery", job.DeliveryID, "error", err)
		_ = m.Term()
		return
	}
	if err != nil {
		e.Log.Warn("attempt not completed, redelivering", "delivery", job.DeliveryID, "error", err)
		_ = m.NakWithDelay(2 * time.Second)
		return
	}
	_ = m.Ack()
}

func (e *Endpoints) stop(l *loop) {
	l.cc.Stop()
	done := make(chan struct{})
	go func() { l.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(e.Drain):
	}
}

func (e *Endpoints) stopAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	var wg sync.WaitGroup
	for id, l := range e.running {
		wg.Add(1)
		go func() { defer wg.Done(); e.stop(l) }()
		delete(e.running, id)
	}
	wg.Wait()
}

// Lag sums the messages waiting for or held by every running endpoint consumer.
func (e *Endpoints) Lag(ctx context.Context) (uint64, error) {
	e.mu.Lock()
	cons := make([]jetstream.Consumer, 0, len(e.running))
	for _, l := range e.running {
		cons = append(cons, l.cons)
	}
	e.mu.Unlock()
	var total uint64
	for _, c := range cons {
		info, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		total += info.NumPending + uint64(info.NumAckPending)
	}
	return total, nil
}
