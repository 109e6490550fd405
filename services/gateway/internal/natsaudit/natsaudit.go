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

// NewLog uses the declared stream; now stamps the records (nil: time.Now).
func NewLog(js jetstream.JetStream, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{js: js, now: now}
}

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

var errBadRecord = errors.New("not an audit record")

func decode(m jetstream.Msg) (audit.Record, error) {
	var w wire
	if err := json.Unmarshal(m.Data(), &w); err != nil || w.ID == "" || w.Tenant == "" {
		return audit.Record{}, errBadRecord
	}
	return w.record(), nil
}

// NewProjector writes the stream's records to the store in batches of up to 500, from one gateway replica at a
// time; reg receives its metrics.
func NewProjector(js jetstream.JetStream, store audit.Store, log *slog.Logger, reg prometheus.Registerer) *natsbus.Projection[audit.Record] {
	pending := prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_audit_pending_records",
		Help: "Audit records on the stream not yet in the database, as of the last batch."})
	failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "gateway_audit_write_failures_total",
		Help: "Batches of audit records the database refused; they come back."})
	if reg != nil {
		reg.MustRegister(pending, failed)
	}
	return &natsbus.Projection[audit.Record]{
		JS: js, Stream: Stream, Durable: ConsumerName, Batch: 500,
		Description: "Writes the access audit to MongoDB; pinned to one gateway replica at a time.",
		Decode:      decode,
		Write:       store.Append,
		Written:     func(_ []audit.Record, n uint64) { pending.Set(float64(n)) },
		Failed:      func([]audit.Record, error) { failed.Inc() },
		Idle:        func() { pending.Set(0) },
		Log:         log,
	}
}
