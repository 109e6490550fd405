package projector_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/case/internal/app"
	"github.com/casekeeper/core/services/case/internal/caselog"
	"github.com/casekeeper/core/services/case/internal/kyc"
	"github.com/casekeeper/core/services/case/internal/mongostore"
	"github.com/casekeeper/core/services/case/internal/projector"
)

type env struct {
	js    jetstream.JetStream
	nc    *nats.Conn
	log   *caselog.Log
	store *mongostore.Store
}

func setup(t *testing.T) env {
	t.Helper()
	srv := testinfra.NATS(t)
	uri, dbName := testinfra.Mongo(t)
	db := testinfra.ConnectMongo(t, uri, dbName)
	nc, js, err := natsbus.Connect(srv.URL(), "projector-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	stream, err := natsbus.EnsureStream(t.Context(), js, events.StreamConfig(time.Hour, 1))
	if err != nil {
		t.Fatal(err)
	}
	l := caselog.New(js, nc, 5*time.Second)
	l.Use(stream)
	store := mongostore.New(db)
	if err := store.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	return env{js: js, nc: nc, log: l, store: store}
}

// write appends versions 1..n of a case through the log, as the case service does.
func (e env) write(t *testing.T, id string, n int, last string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	c := &kyc.Case{ID: id, Tenant: "acme", Status: kyc.StatusDraft, Level: kyc.LevelBasic, CreatedAt: now, UpdatedAt: now,
		Applicant: kyc.Applicant{FullName: "Jane Roe"}}
	var seq uint64
	for v := 1; v <= n; v++ {
		c = c.Clone()
		c.Version = int64(v)
		c.Labels = []string{fmt.Sprintf("v%d", v)}
		typ := kyc.EventUpdated
		if v == n && last != "" {
			typ = last
			c.Status, c.Applicant, c.RedactedAt = kyc.StatusRedacted, kyc.Applicant{}, now
		}
		var err error
		seq, err = e.log.Append(t.Context(), app.Event{ID: fmt.Sprintf("%s-%d", id, v), Type: typ, At: now, Case: c}, seq)
		if err != nil {
			t.Fatalf("append %s v%d: %v", id, v, err)
		}
	}
}

// recordingStore checks every write the projector makes: per case, versions only ever grow.
type recordingStore struct {
	projector.Store
	mu        sync.Mutex
	versions  map[string]int64
	backwards []string
	fail      atomic.Int32
}

func (r *recordingStore) Put(ctx context.Context, cases []*kyc.Case, known map[string]int64) (map[string]int64, error) {
	if r.fail.Add(-1) >= 0 {
		return nil, errors.New("injected store failure")
	}
	n, err := r.Store.Put(ctx, cases, known)
	if err != nil {
		return n, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cases {
		stored, err := r.Store.(*mongostore.Store).Get(ctx, c.Tenant, c.ID)
		if err != nil {
			return n, err
		}
		if stored.Version < r.versions[c.ID] {
			r.backwards = append(r.backwards, fmt.Sprintf("%s: %d after %d", c.ID, stored.Version, r.versions[c.ID]))
		}
		r.versions[c.ID] = stored.Version
	}
	return n, nil
}

func run(t *testing.T, e env, store projector.Store, eraser projector.Eraser) (stop func()) {
	t.Helper()
	p := projector.New(e.js, store, eraser, slog.New(slog.DiscardHandler), nil,
		projector.Options{Batch: 50, MaxWait: 20 * time.Millisecond, PinnedTTL: time.Second, RetryDelay: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	return func() { cancel(); <-done }
}

// A projector stopped mid-stream and started again (a new process would do the same: the consumer is durable)
// resumes where its acknowledgements left off: every case ends at its last version (no gap), and no case was ever
// moved back to an older version — also not when a round fails and its messages come back later.
func TestRestartResumesWithoutGapOrBackwardsMove(t *testing.T) {
	e := setup(t)
	rec := &recordingStore{Store: e.store, versions: map[string]int64{}}
	rec.fail.Store(2)
	const cases, versions = 10, 30
	stop := run(t, e, rec, e.log)
	var wg sync.WaitGroup
	for i := range cases {
		wg.Go(func() { e.write(t, fmt.Sprintf("case-%02d", i), versions, "") })
	}
	time.Sleep(150 * time.Millisecond)
	stop() // mid-stream: some batches projected, others not
	wg.Wait()
	mid := map[string]int64{}
	rec.mu.Lock()
	for k, v := range rec.versions {
		mid[k] = v
	}
	rec.mu.Unlock()
	stop = run(t, e, rec, e.log)
	defer stop()
	testinfra.Eventually(t, 20*time.Second, "every case projected at its last version", func() bool {
		for i := range cases {
			c, err := e.store.Get(t.Context(), "acme", fmt.Sprintf("case-%02d", i))
			if err != nil || c.Version != versions {
				return false
			}
		}
		return true
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.backwards) > 0 {
		t.Fatalf("the projection moved backwards: %v", rec.backwards)
	}
	total := int64(0)
	for _, v := range mid {
		total += v
	}
	if total == int64(cases*versions) {
		t.Log("note: the first projector finished everything before it was stopped")
	}
	c, _ := e.store.Get(t.Context(), "acme", "case-03")
	if len(c.Labels) != 1 || c.Labels[0] != fmt.Sprintf("v%d", versions) {
		t.Fatalf("projected case holds %v, want the last version's data", c.Labels)
	}
}

// flakyEraser fails its first purge, as NATS might.
type flakyEraser struct {
	projector.Eraser
	calls atomic.Int32
}

func (f *flakyEraser) EraseHistory(ctx context.Context, tenant, id string) error {
	if f.calls.Add(1) == 1 {
		return errors.New("injected purge failure")
	}
	return f.Eraser.EraseHistory(ctx, tenant, id)
}

// A redaction is finished by the projector: the case's earlier events leave the stream, the tombstone stays, and a
// purge that fails is retried until it succeeds.
func TestRedactionPurgesTheHistoryEvenWhenThePurgeFailsOnce(t *testing.T) {
	e := setup(t)
	eraser := &flakyEraser{Eraser: e.log}
	stop := run(t, e, e.store, eraser)
	defer stop()
	e.write(t, "gone", 5, kyc.EventRedacted)
	e.write(t, "kept", 3, "")
	stream, err := e.js.Stream(t.Context(), events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	subjectCount := func(id string) uint64 {
		info, err := stream.Info(t.Context(), jetstream.WithSubjectFilter(events.Subject("acme", id)))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[events.Subject("acme", id)]
	}
	testinfra.Eventually(t, 15*time.Second, "history purged down to the tombstone", func() bool { return subjectCount("gone") == 1 })
	if n := eraser.calls.Load(); n < 2 {
		t.Fatalf("purge called %d times, want the failed one retried", n)
	}
	last, err := e.log.Last(t.Context(), "acme", "gone")
	if err != nil || last.Case.Status != kyc.StatusRedacted || last.Case.Applicant.FullName != "" {
		t.Fatalf("what is left of the redacted case: %+v %v", last.Case, err)
	}
	if n := subjectCount("kept"); n != 3 {
		t.Fatalf("another case lost events: %d, want 3", n)
	}
	c, err := e.store.Get(t.Context(), "acme", "gone")
	if err != nil || c.Status != kyc.StatusRedacted || c.Applicant.FullName != "" {
		t.Fatalf("projection of the redacted case: %+v %v", c, err)
	}
}
