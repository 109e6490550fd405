// Package natsaudit keeps the access audit on JetStream: a read's record is on record once the GATEWAY_AUDIT stream
// acknowledged it (the answer waits for that, never for the database), and a consumer pinned to one gateway replica
// at a time writes the records to MongoDB in batches. The stream is a work queue: it holds only what the database
// does not have yet.
package natsaudit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/services/gateway/internal/audit"
)

// Stream holds the records on their way to the database, on audit.<tenant>.
const Stream = "GATEWAY_AUDIT"

// StreamConfig is the audit stream.
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Stream,
		Description: "Access-audit records of the gateway, until the audit collection in the database has them.",
		Subjects:    []string{"audit.>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		// Far longer than any projector outage: a record is never aged out before it reached the database.
		MaxAge:     14 * 24 * time.Hour,
		Duplicates: 2 * time.Minute,
	}
}

// Log records reads on the stream.
type Log struct {
	js  jetstream.JetStream
	now func() time.Time
}

// NewLog uses the declared stream.
func NewLog(js jetstream.JetStream, now func() time.Time) *Log { return &Log{js: js, now: now} }

// Record stores one record and returns once JetStream has it; on an error the caller must not return the data.
func (l *Log) Record(ctx context.Context, r audit.Record) error {
	r = audit.Stamp(r, l.now())
	body, err := json.Marshal(toWire(r))
	if err != nil {
		return err
	}
	m := nats.NewMsg("audit." + r.Tenant)
	m.Data = body
	if _, err := l.js.PublishMsg(ctx, m, jetstream.WithMsgID(r.ID)); err != nil {
		return fmt.Errorf("recording the read in the audit log: %w", err)
	}
	return nil
}

type wire struct {
	ID       string    `json:"id"`
	At       time.Time `json:"at"`
	Tenant   string    `json:"tenant"`
	Subject  string    `json:"subject"`
	ClientID string    `json:"client_id"`
	Via      string    `json:"via,omitempty"`
	API      string    `json:"api"`
	CaseIDs  []string  `json:"case_ids"`
}

func toWire(r audit.Record) wire {
	return wire{ID: r.ID, At: r.At, Tenant: r.Tenant, Subject: r.Subject, ClientID: r.ClientID, Via: r.Via, API: r.API, CaseIDs: r.CaseIDs}
}

func (w wire) record() audit.Record {
	return audit.Record{ID: w.ID, At: w.At.UTC(), Tenant: w.Tenant, Subject: w.Subject, ClientID: w.ClientID, Via: w.Via,
		API: w.API, CaseIDs: w.CaseIDs}
}

// ConsumerName is the projector's durable consumer, shared by every gateway replica.
const ConsumerName = "audit-log"

const group = "projector"

// Projector writes the stream's records to the store.
type Projector struct {
	JS    jetstream.JetStream
	Store audit.Store
	Log   *slog.Logger
	// Batch is the most records one insert takes.
	Batch   int
	pending prometheus.Gauge
	failed  prometheus.Counter
}

// NewProjector returns the projector; reg receives its metrics.
func NewProjector(js jetstream.JetStream, store audit.Store, log *slog.Logger, reg prometheus.Registerer) *Projector {
	p := &Projector{JS: js, Store: store, Log: log, Batch: 500,
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_audit_pending_records",
			Help: "Audit records on the stream not yet in the database, as of the last batch."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "gateway_audit_write_failures_total",
			Help: "Batches of audit records the database refused; they come back."}),
	}
	if reg != nil {
		reg.MustRegister(p.pending, p.failed)
	}
	return p
}

// Run consumes until ctx ends, declaring the consumer again when it goes away.
func (p *Projector) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		cons, err := p.JS.CreateOrUpdateConsumer(ctx, Stream, jetstream.ConsumerConfig{
			Durable:        ConsumerName,
			Description:    "Writes the access audit to MongoDB; pinned to one gateway replica at a time.",
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        30 * time.Second,
			MaxDeliver:     -1,
			MaxAckPending:  4 * p.Batch,
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PinnedTTL:      5 * time.Second,
			PriorityGroups: []string{group},
		})
		if err == nil {
			err = natsbus.ConsumeBatches(ctx, cons, natsbus.BatchOptions{Batch: p.Batch, Group: group,
				Idle: func() { p.pending.Set(0) }}, func(msgs []jetstream.Msg) { p.apply(ctx, msgs) })
		}
		if err != nil && ctx.Err() == nil {
			p.Log.Warn("the audit-log consumer ended; declaring it again", "error", err)
			lifecycle.Sleep(ctx, time.Second)
		}
	}
	return nil
}

var errBadRecord = errors.New("not an audit record")

func (p *Projector) apply(ctx context.Context, msgs []jetstream.Msg) {
	recs := make([]audit.Record, 0, len(msgs))
	kept := msgs[:0:0]
	for _, m := range msgs {
		var w wire
		if err := json.Unmarshal(m.Data(), &w); err != nil || w.ID == "" || w.Tenant == "" {
			p.Log.Error("a message on the audit stream is not a record; terminated", "subject", m.Subject(), "error", errBadRecord)
			_ = m.Term()
			continue
		}
		recs, kept = append(recs, w.record()), append(kept, m)
	}
	if len(recs) == 0 {
		return
	}
	// The batch finishes even while the gateway stops: acknowledging it spares the next replica the repeat.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	err := p.Store.Append(wctx, recs)
	cancel()
	if err != nil {
		p.failed.Inc()
		p.Log.Warn("writing audit records failed; they come back", "records", len(recs), "error", err)
		for _, m := range kept {
			_ = m.NakWithDelay(time.Second)
		}
		return
	}
	for _, m := range kept {
		_ = m.Ack()
	}
	if md, err := kept[len(kept)-1].Metadata(); err == nil {
		p.pending.Set(float64(md.NumPending))
	}
}
