package natsconsumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// DeliveryLogConsumer is the durable consumer of the outcome stream shared by every instance.
const DeliveryLogConsumer = "delivery-log"

const deliveryLogGroup = "projector"

// OutcomeWriter is where the delivery log goes (mongostore.Store).
type OutcomeWriter interface {
	ApplyOutcomes(ctx context.Context, outs []delivery.Outcome) error
}

// DeliveryLog feeds the delivery log in the database from the outcome stream, in batches: one round trip for a
// round's first attempts, one per later attempt. The consumer is pinned to one instance at a time, so batches are
// written in the order they were recorded; a batch that fails comes back, and the store makes an older outcome
// applied late a no-op. A message is acknowledged (and so leaves the work-queue stream) only once the database has
// it.
type DeliveryLog struct {
	JS     jetstream.JetStream
	Store  OutcomeWriter
	Log    *slog.Logger
	Batch  int
	delay  prometheus.Histogram
	failed prometheus.Counter
	behind prometheus.Gauge
}

// NewDeliveryLog returns the projector; reg receives its metrics.
func NewDeliveryLog(js jetstream.JetStream, store OutcomeWriter, log *slog.Logger, reg prometheus.Registerer) *DeliveryLog {
	p := &DeliveryLog{JS: js, Store: store, Log: log, Batch: 256,
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "webhook_delivery_log_delay_seconds",
			Help:    "From an attempt to its record in the database's delivery log.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "webhook_delivery_log_failures_total",
			Help: "Batches of outcomes the database refused; they come back."}),
		behind: prometheus.NewGauge(prometheus.GaugeOpts{Name: "webhook_delivery_log_pending_outcomes",
			Help: "Outcomes on the stream not yet in the database, as of the last batch."}),
	}
	if reg != nil {
		reg.MustRegister(p.delay, p.failed, p.behind)
	}
	return p
}

func (p *DeliveryLog) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        DeliveryLogConsumer,
		Description:    "Writes attempt outcomes to the delivery log in MongoDB; pinned to one webhook instance at a time.",
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     -1,
		MaxAckPending:  4 * p.Batch,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PinnedTTL:      5 * time.Second,
		PriorityGroups: []string{deliveryLogGroup},
	}
}

// Run consumes until ctx ends, declaring the consumer again when it goes away.
func (p *DeliveryLog) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		cons, err := p.JS.CreateOrUpdateConsumer(ctx, natsqueue.OutcomesStream, p.consumerConfig())
		if err == nil {
			err = natsbus.ConsumeBatches(ctx, cons, natsbus.BatchOptions{Batch: p.Batch, Group: deliveryLogGroup,
				Idle: func() { p.behind.Set(0) }}, func(msgs []jetstream.Msg) { p.apply(ctx, msgs) })
		}
		if err != nil && ctx.Err() == nil {
			p.Log.Warn("the delivery-log consumer ended; declaring it again", "error", err)
			lifecycle.Sleep(ctx, time.Second)
		}
	}
	return nil
}

func (p *DeliveryLog) apply(ctx context.Context, msgs []jetstream.Msg) {
	outs := make([]delivery.Outcome, 0, len(msgs))
	kept := msgs[:0:0]
	for _, m := range msgs {
		o, err := natsqueue.ParseOutcome(m)
		if err != nil {
			p.Log.Error("a message on the outcome stream is not an outcome; terminated", "subject", m.Subject(), "error", err)
			_ = m.Term()
			continue
		}
		outs, kept = append(outs, o), append(kept, m)
	}
	if len(outs) == 0 {
		return
	}
	// The batch finishes even while the service stops: acknowledging it spares the next instance the repeat.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	err := p.Store.ApplyOutcomes(wctx, outs)
	cancel()
	if err != nil {
		p.failed.Inc()
		p.Log.Warn("writing outcomes to the delivery log failed; they come back", "outcomes", len(outs), "error", err)
		for _, m := range kept {
			_ = m.NakWithDelay(time.Second)
		}
		return
	}
	now := time.Now()
	for i, m := range kept {
		_ = m.Ack()
		if at := outs[i].Attempt.At; !at.IsZero() {
			p.delay.Observe(now.Sub(at).Seconds())
		}
	}
	if md, err := kept[len(kept)-1].Metadata(); err == nil {
		p.behind.Set(float64(md.NumPending))
	}
}
