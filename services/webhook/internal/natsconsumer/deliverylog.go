package natsconsumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// DeliveryLogConsumer is the durable consumer of the outcome stream shared by every instance.
const DeliveryLogConsumer = "delivery-log"

// OutcomeWriter is where the delivery log goes (mongostore.Store).
type OutcomeWriter interface {
	ApplyOutcomes(ctx context.Context, outs []delivery.Outcome) error
}

// NewDeliveryLog feeds the delivery log in the database from the outcome stream, in batches of up to 256: one
// round trip for a batch's first attempts, two point operations per later attempt (mongostore.ApplyOutcomes). One
// instance writes at a time, in the order the outcomes were recorded; a batch that fails comes back, and the store
// makes an older outcome applied late a no-op. An outcome leaves the work-queue stream once the database has it.
// reg receives its metrics.
func NewDeliveryLog(js jetstream.JetStream, store OutcomeWriter, log *slog.Logger, reg prometheus.Registerer) *natsbus.Projection[delivery.Outcome] {
	delay := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "webhook_delivery_log_delay_seconds",
		Help:    "From an attempt to its record in the database's delivery log.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}})
	failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "webhook_delivery_log_failures_total",
		Help: "Batches of outcomes the database refused; they come back."})
	behind := prometheus.NewGauge(prometheus.GaugeOpts{Name: "webhook_delivery_log_pending_outcomes",
		Help: "Outcomes on the stream not yet in the database, as of the last batch."})
	if reg != nil {
		reg.MustRegister(delay, failed, behind)
	}
	return &natsbus.Projection[delivery.Outcome]{
		JS: js, Stream: natsqueue.OutcomesStream, Durable: DeliveryLogConsumer,
		Description: "Writes attempt outcomes to the delivery log in MongoDB; pinned to one webhook instance at a time.",
		Decode:      natsqueue.ParseOutcome,
		Write:       store.ApplyOutcomes,
		Written: func(outs []delivery.Outcome, pending uint64) {
			now := time.Now()
			for _, o := range outs {
				if o.Redaction != nil {
					continue // no attempt
				}
				delay.Observe(now.Sub(o.Attempt.At).Seconds())
			}
			behind.Set(float64(pending))
		},
		Failed: func([]delivery.Outcome, error) { failed.Inc() },
		Idle:   func() { behind.Set(0) },
		Log:    log,
	}
}
