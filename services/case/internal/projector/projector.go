// Package projector feeds the case projection (MongoDB) from the CASES stream, the cases' record. It consumes the
// stream with one durable consumer shared by every replica of the case service; the consumer pins its messages to
// one replica at a time (JetStream priority group, pinned client), so batches are applied in stream order and a
// replica that dies hands over after the pin's time-out. A batch keeps only the newest version of each case, the
// store writes a case only over an older version, and a message is acknowledged only once it is projected: a
// restart resumes where the last acknowledged message left off, with no gap and no backwards move.
//
// The projector also finishes every redaction: after the tombstone is projected it purges the case's earlier events
// from the stream, and acknowledges the tombstone only once the purge succeeded, so a failed purge comes back.
package projector

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/services/case/internal/kyc"
	"github.com/casekeeper/core/services/case/internal/protoconv"
)

// Store is where the projection goes.
type Store interface {
	// Put writes each case unless the store holds the same or a newer version, and returns the version the store
	// holds afterwards for each case it could tell. known are versions the caller knows the store holds.
	Put(ctx context.Context, cases []*kyc.Case, known map[string]int64) (map[string]int64, error)
}

// Eraser purges a redacted case's history from the stream, keeping the tombstone.
type Eraser interface {
	EraseHistory(ctx context.Context, tenant, id string) error
}

// Options tune the projector; zero values take the defaults.
type Options struct {
	// Durable names the shared consumer.
	Durable string
	// Batch is the most messages one round applies.
	Batch int
	// MaxWait is how long a round waits for one more message before it writes what it has.
	MaxWait time.Duration
	// PinnedTTL is how long a silent replica keeps the pin before another takes over.
	PinnedTTL time.Duration
	// RetryDelay is when a message whose projection or purge failed comes back.
	RetryDelay time.Duration
}

func (o *Options) defaults() {
	if o.Durable == "" {
		o.Durable = "case-projection"
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * time.Millisecond
	}
	if o.PinnedTTL <= 0 {
		o.PinnedTTL = 5 * time.Second
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
}

// DelayBuckets are the bounds of case_projection_delay_seconds: fine below a second, where the target is.
var DelayBuckets = []float64{0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30}

// Projector is the consume loop; Run it as a worker.
type Projector struct {
	js     jetstream.JetStream
	store  Store
	eraser Eraser
	log    *slog.Logger
	opts   Options

	projected     prometheus.Counter
	erased        prometheus.Counter
	failures      *prometheus.CounterVec
	lag           prometheus.Gauge
	pending       prometheus.Gauge
	batchDuration prometheus.Histogram
	delay         prometheus.Histogram

	// held are the versions this projector wrote (or read) under its current pin: while no other replica held the
	// pin, nobody else wrote the projection, so they need not be read again. A new pin forgets them.
	held    map[string]int64
	heldPin string
}

// New returns a projector; reg receives its metrics.
func New(js jetstream.JetStream, store Store, eraser Eraser, log *slog.Logger, reg prometheus.Registerer, opts Options) *Projector {
	opts.defaults()
	p := &Projector{
		js: js, store: store, eraser: eraser, log: log, opts: opts,
		projected: prometheus.NewCounter(prometheus.CounterOpts{Name: "case_projection_writes_total", Help: "Case documents written by the projector."}),
		erased:    prometheus.NewCounter(prometheus.CounterOpts{Name: "case_history_purges_total", Help: "Redacted cases whose earlier events were purged from the stream."}),
		failures:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "case_projection_failures_total", Help: "Projector rounds that failed, by stage; their messages come back."}, []string{"stage"}),
		lag:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "case_projection_lag_seconds", Help: "Age of the newest event the projector applied, when it applied it (0 when idle)."}),
		pending:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "case_projection_pending_events", Help: "Events on the stream the projector has not received yet."}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "case_projection_batch_seconds", Help: "Time to apply one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "case_projection_delay_seconds",
			Help:    "From a case change to its projection in the database, per projected case.",
			Buckets: DelayBuckets}),
	}
	if reg != nil {
		reg.MustRegister(p.projected, p.erased, p.failures, p.lag, p.pending, p.batchDuration, p.delay)
	}
	return p
}

// ConsumerConfig is the shared durable consumer.
func (p *Projector) ConsumerConfig() jetstream.ConsumerConfig {
	return natsbus.PinnedConsumer(p.opts.Durable, "Feeds the case projection in MongoDB; pinned to one case-service replica at a time.",
		p.opts.Batch, p.opts.PinnedTTL)
}

// Run consumes until ctx ends. It waits for NATS and the stream when they are not there yet.
func (p *Projector) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		cons, err := p.js.CreateOrUpdateConsumer(ctx, events.Stream, p.ConsumerConfig())
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("declaring the projection consumer failed; retrying", "error", err)
				lifecycle.Sleep(ctx, 200*time.Millisecond)
			}
			continue
		}
		if err := p.consume(ctx, cons); err != nil && ctx.Err() == nil {
			p.log.Warn("the projection consumer ended; declaring it again", "error", err)
			lifecycle.Sleep(ctx, p.opts.RetryDelay)
		}
	}
	return nil
}

// consume applies what the consumer delivers until ctx ends or the consumer goes away: a round takes everything
// that is there (up to Batch) and waits no longer than MaxWait for more, so while one batch is being written the
// next one accumulates. Under low load a round is one event written at once; under high load rounds grow and cost
// less per event.
func (p *Projector) consume(ctx context.Context, cons jetstream.Consumer) error {
	return natsbus.ConsumeBatches(ctx, cons, natsbus.BatchOptions{Batch: p.opts.Batch, MaxWait: p.opts.MaxWait,
		Group: natsbus.PinnedGroup, Idle: func() { p.lag.Set(0) }}, func(msgs []jetstream.Msg) { p.apply(ctx, msgs) })
}

// apply projects one batch and acknowledges what is done; what failed comes back after RetryDelay.
func (p *Projector) apply(ctx context.Context, msgs []jetstream.Msg) {
	start := time.Now()
	latest := map[string]*kyc.Case{}
	var order []string
	var tombstones []jetstream.Msg
	var tombstoneCases []*kyc.Case
	var newest time.Time
	for _, m := range msgs {
		ev, err := protoconv.DecodeEvent(m.Data())
		if err != nil {
			// Not a case record: nothing to project, and coming back would not change it.
			p.failures.WithLabelValues("decode").Inc()
			p.log.Error("an event on the stream cannot be projected", "subject", m.Subject(), "error", err)
			_ = m.Term()
			continue
		}
		c := ev.Case
		if prev, ok := latest[c.ID]; !ok {
			order = append(order, c.ID)
			latest[c.ID] = c
		} else if c.Version > prev.Version {
			latest[c.ID] = c
		}
		if ev.Type == kyc.EventRedacted {
			tombstones = append(tombstones, m)
			tombstoneCases = append(tombstoneCases, c)
		}
		newest = ev.OccurredAt
	}
	cases := make([]*kyc.Case, 0, len(order))
	for _, id := range order {
		cases = append(cases, latest[id])
	}
	known := p.knownVersions(msgs[len(msgs)-1].Headers().Get("Nats-Pin-Id"))
	held, err := p.store.Put(ctx, cases, known)
	written := time.Now()
	for _, c := range cases {
		v, ok := held[c.ID]
		if !ok {
			continue
		}
		if before, wasKnown := known[c.ID]; v == c.Version && (!wasKnown || before != v) {
			p.projected.Inc()
			p.delay.Observe(written.Sub(c.UpdatedAt).Seconds())
		}
		p.remember(c.ID, v)
	}
	if err != nil {
		p.failures.WithLabelValues("store").Inc()
		if ctx.Err() == nil {
			p.log.Warn("projecting a batch failed; it comes back", "events", len(msgs), "error", err)
		}
		for _, m := range msgs {
			_ = m.NakWithDelay(p.opts.RetryDelay)
		}
		return
	}
	retry := map[jetstream.Msg]bool{}
	for i, m := range tombstones {
		c := tombstoneCases[i]
		if err := p.eraser.EraseHistory(ctx, c.Tenant, c.ID); err != nil {
			p.failures.WithLabelValues("purge").Inc()
			p.log.Warn("purging a redacted case's history failed; it is retried", "case_id", c.ID, "error", err)
			retry[m] = true
			_ = m.NakWithDelay(p.opts.RetryDelay)
			continue
		}
		p.erased.Inc()
	}
	for _, m := range msgs {
		if !retry[m] {
			_ = m.Ack()
		}
	}
	if md, err := msgs[len(msgs)-1].Metadata(); err == nil {
		p.pending.Set(float64(md.NumPending))
	}
	if !newest.IsZero() {
		p.lag.Set(time.Since(newest).Seconds())
	}
	p.batchDuration.Observe(time.Since(start).Seconds())
}

// heldLimit bounds the remembered versions; past it they are forgotten and read again.
const heldLimit = 100_000

// knownVersions returns the versions remembered under pin, forgetting them when the pin changed; nil (remember
// nothing) when the messages carry no pin.
func (p *Projector) knownVersions(pin string) map[string]int64 {
	if pin == "" {
		p.held, p.heldPin = nil, ""
		return nil
	}
	if pin != p.heldPin || p.held == nil || len(p.held) > heldLimit {
		p.held, p.heldPin = map[string]int64{}, pin
	}
	return p.held
}

func (p *Projector) remember(id string, v int64) {
	if p.held != nil {
		p.held[id] = v
	}
}
