package app

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// expiring holds n expired deliveries and hands them out a limit at a time.
type expiring struct {
	left    int64
	cutoffs []time.Time
	limits  []int
	others  int
	// redactionCutoff is the cutoff of the last ExpireRedactions.
	redactionCutoff time.Time
}

func (e *expiring) ExpireDeliveries(_ context.Context, cutoff time.Time, limit int) (int64, error) {
	e.cutoffs, e.limits = append(e.cutoffs, cutoff), append(e.limits, limit)
	n := min(e.left, int64(limit))
	e.left -= n
	return n, nil
}
func (e *expiring) ExpireEvents(context.Context, time.Time) (int64, error) { e.others++; return 2, nil }
func (e *expiring) ExpireOperations(context.Context, time.Time) (int64, error) {
	e.others++
	return 1, nil
}
func (e *expiring) ExpireRedactions(_ context.Context, cutoff time.Time) (int64, error) {
	e.others++
	e.redactionCutoff = cutoff
	return 0, nil
}

func (e *expiring) ExpireHealth(context.Context, time.Time) (int64, error) { return 0, nil }

// A pass deletes at most Batch × MaxBatches deliveries and says when more are left; the cutoff is the retention
// back from now; what was deleted is counted.
func TestRetentionPassIsBounded(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	store := &expiring{left: 25}
	r := &Retention{Store: store, Keep: 720 * time.Hour, Batch: 5, MaxBatches: 3,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }, Expired: NewExpiredCounter(nil)}

	more, err := r.Pass(context.Background())
	if err != nil || !more || store.left != 10 || len(store.limits) != 3 || store.limits[0] != 5 {
		t.Fatalf("first pass: more %v, %v, %d left, limits %v; want 15 deleted in 3 batches of 5, more", more, err, store.left, store.limits)
	}
	if want := now.Add(-720 * time.Hour); !store.cutoffs[0].Equal(want) {
		t.Fatalf("cutoff %s, want %s", store.cutoffs[0], want)
	}
	if store.others != 0 {
		t.Fatal("a pass stopped at its bound went on to the other collections")
	}
	more, err = r.Pass(context.Background())
	if err != nil || more || store.left != 0 || store.others != 3 {
		t.Fatalf("second pass: more %v, %v, %d left, %d other expiries", more, err, store.left, store.others)
	}
	if got := testutil.ToFloat64(r.Expired.WithLabelValues("deliveries")); got != 25 {
		t.Fatalf("counted %v deliveries, want 25", got)
	}
	if got := testutil.ToFloat64(r.Expired.WithLabelValues("events")); got != 2 {
		t.Fatalf("counted %v events, want 2", got)
	}
	// Redactions are kept while an outcome of their deliveries may still be on its way, however short the
	// retention.
	if want := now.Add(-720 * time.Hour); !store.redactionCutoff.Equal(want) {
		t.Fatalf("redactions cut off at %s, want the retention's %s", store.redactionCutoff, want)
	}
	r.Keep = time.Hour
	if _, err := r.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-redactionsKept); !store.redactionCutoff.Equal(want) {
		t.Fatalf("with a retention of 1h, redactions cut off at %s, want %s", store.redactionCutoff, want)
	}
}
