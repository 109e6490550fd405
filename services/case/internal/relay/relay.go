// Package relay moves events from the cases' outboxes to JetStream. A write hands its outbox over at once (the fast
// path); a sweep finds whatever is still pending after a crash or an outage of NATS. Each event is published with
// Nats-Msg-Id = event id, so republishing is deduplicated by the stream, and it leaves the outbox only after
// JetStream acknowledged it. Events of one case are published in version order.
package relay

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/services/case/internal/app"
	"github.com/casekeeper/core/services/case/internal/mongostore"
)

// Outbox is what the relay needs of the store.
type Outbox interface {
	Pending(ctx context.Context, olderThan time.Time, limit int) ([]mongostore.PendingCase, error)
	Clear(ctx context.Context, pc mongostore.PendingCase, eventIDs []string) error
}

// Connection reports whether NATS is reachable now.
type Connection interface {
	IsConnected() bool
}

// Options tune the relay.
type Options struct {
	// SweepInterval is how often the outbox is searched for events the fast path did not publish.
	SweepInterval time.Duration
	// SweepGrace leaves fresh events to the fast path.
	SweepGrace time.Duration
	// PublishTimeout bounds one publish; NATS being down makes it fail and the sweep retry later.
	PublishTimeout time.Duration
}

func (o *Options) defaults() {
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Second
	}
	if o.SweepGrace <= 0 {
		o.SweepGrace = 2 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 2 * time.Second
	}
}

// Relay publishes outbox events. It implements app.Publisher.
type Relay struct {
	js     jetstream.JetStream
	conn   Connection
	outbox Outbox
	log    *slog.Logger
	opts   Options
	locks  [256]sync.Mutex
	// acked holds the ids of events JetStream acknowledged recently (id → when), for writes that drop them from
	// their case's outbox and for the sweep, which then clears instead of republishing.
	acked sync.Map

	published  prometheus.Counter
	duplicates prometheus.Counter
	failures   prometheus.Counter
	swept      prometheus.Counter
	backlog    prometheus.Gauge
}

// New returns a relay; call Run to start it.
func New(js jetstream.JetStream, conn Connection, outbox Outbox, log *slog.Logger, reg prometheus.Registerer, opts Options) *Relay {
	opts.defaults()
	r := &Relay{
		js: js, conn: conn, outbox: outbox, log: log, opts: opts,
		published:  prometheus.NewCounter(prometheus.CounterOpts{Name: "case_events_published_total", Help: "Events acknowledged by JetStream."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "case_events_duplicate_total", Help: "Republished events JetStream had already (deduplicated)."}),
		failures:   prometheus.NewCounter(prometheus.CounterOpts{Name: "case_events_publish_failures_total", Help: "Publishes that failed and wait for the sweep."}),
		swept:      prometheus.NewCounter(prometheus.CounterOpts{Name: "case_events_swept_total", Help: "Cases whose pending events the sweep found."}),
		backlog:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "case_outbox_backlog_cases", Help: "Cases with events older than the sweep grace still unpublished, at the last sweep (at most 500)."}),
	}
	if reg != nil {
		reg.MustRegister(r.published, r.duplicates, r.failures, r.swept, r.backlog)
	}
	return r
}

// Publish sends a case's freshly written outbox now, in the writer's goroutine. While NATS is unreachable it
// returns at once: the sweep publishes the events when NATS is back, and writes do not wait for it.
func (r *Relay) Publish(ctx context.Context, tenant, caseID string, version int64, outbox []app.PendingEvent) {
	if len(outbox) == 0 || !r.conn.IsConnected() {
		return
	}
	r.publish(ctx, mongostore.PendingCase{Tenant: tenant, CaseID: caseID, Version: version, Outbox: outbox}, false)
}

// Acknowledged reports whether JetStream acknowledged the event recently.
func (r *Relay) Acknowledged(eventID string) bool {
	_, ok := r.acked.Load(eventID)
	return ok
}

// Run sweeps the outbox until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	ticker := time.NewTicker(r.opts.SweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			r.sweep(ctx)
		}
	}
}

func (r *Relay) sweep(ctx context.Context) {
	pending, err := r.outbox.Pending(ctx, time.Now().Add(-r.opts.SweepGrace), 500)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("outbox sweep failed", "error", err)
		}
		return
	}
	r.backlog.Set(float64(len(pending)))
	if !r.conn.IsConnected() {
		return
	}
	for _, pc := range pending {
		r.swept.Inc()
		r.publish(ctx, pc, true)
	}
	// Long enough for a sweep to see every acknowledged event past its grace and clear it.
	r.forgetAcks(10*r.opts.SweepGrace + 10*r.opts.SweepInterval)
}

// publish sends a case's pending events in order, skipping those already acknowledged, and stops at the first
// failure so a later version never overtakes an earlier one. The fast path leaves the outbox to the case's next
// write; the sweep (clear=true) removes the acknowledged events itself.
func (r *Relay) publish(ctx context.Context, pc mongostore.PendingCase, clear bool) {
	lock := &r.locks[stripe(pc.CaseID)]
	lock.Lock()
	defer lock.Unlock()

	var acked []string
	for _, ev := range pc.Outbox {
		if r.Acknowledged(ev.ID) {
			acked = append(acked, ev.ID)
			continue
		}
		msg := events.RawMessage(pc.Tenant, pc.CaseID, ev.ID, ev.Type, ev.Version, ev.Payload)
		pctx, cancel := context.WithTimeout(ctx, r.opts.PublishTimeout)
		ack, err := r.js.PublishMsg(pctx, msg)
		cancel()
		if err != nil {
			r.failures.Inc()
			if ctx.Err() == nil {
				r.log.Warn("event publish failed; the sweep will retry", "case_id", pc.CaseID, "event_id", ev.ID, "error", err)
			}
			break
		}
		if ack.Duplicate {
			r.duplicates.Inc()
		} else {
			r.published.Inc()
		}
		r.acked.Store(ev.ID, time.Now())
		acked = append(acked, ev.ID)
		if ev.Type == events.TypeRedacted {
			r.eraseHistory(ctx, pc.Tenant, pc.CaseID)
		}
	}
	if !clear || len(acked) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.outbox.Clear(cctx, pc, acked); err != nil {
		// Harmless: the events stay pending and are republished, then deduplicated by their Nats-Msg-Id.
		r.log.Warn("clearing published events failed", "case_id", pc.CaseID, "error", err)
	}
}

// forgetAcks drops acknowledgements older than keep: by then the sweep has cleared their events.
func (r *Relay) forgetAcks(keep time.Duration) {
	cutoff := time.Now().Add(-keep)
	r.acked.Range(func(id, at any) bool {
		if at.(time.Time).Before(cutoff) {
			r.acked.Delete(id)
		}
		return true
	})
}

// eraseHistory purges a redacted case's earlier events from the stream, keeping only the redaction itself: the
// erasure must reach the copies of the personal data in the event history too.
func (r *Relay) eraseHistory(ctx context.Context, tenant, caseID string) {
	stream, err := r.js.Stream(ctx, events.Stream)
	if err == nil {
		err = stream.Purge(ctx, jetstream.WithPurgeSubject(events.Subject(tenant, caseID)), jetstream.WithPurgeKeep(1))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Error("purging a redacted case's event history failed", "case_id", caseID, "error", err)
	}
}

func stripe(caseID string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(caseID))
	return h.Sum32() % 256
}
