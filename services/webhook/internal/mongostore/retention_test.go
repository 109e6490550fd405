package mongostore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// On FerretDB: finished deliveries whose last change is older than the cutoff go with their attempts; recent ones
// and open ones, however old, stay; so do recent stored events and operational events.
func TestRetentionDeletesOnlyOldFinishedHistory(t *testing.T) {
	uri, dbName := testinfra.Mongo(t)
	db := testinfra.ConnectMongo(t, uri, dbName)
	s := New(db, testKeys(t, 1))
	ctx := context.Background()
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	cutoff := now.Add(-30 * 24 * time.Hour)
	old, recent := cutoff.Add(-time.Hour), cutoff.Add(time.Hour)

	var seq uint64
	// record writes a delivery whose attempts were made at the given times and whose last attempt left status.
	record := func(id string, status delivery.Status, at ...time.Time) {
		t.Helper()
		d := delivery.Delivery{ID: id, Tenant: "acme", EndpointID: "ep_a", EventID: "evt_" + id, EventType: "case.created",
			CaseID: "c1", CreatedAt: at[0]}
		for i, a := range at {
			seq++
			o := delivery.Outcome{Delivery: d, Attempt: delivery.Attempt{Number: i + 1, At: a, StatusCode: 500}, Seq: seq,
				Status: delivery.StatusRetrying, NextAttemptAt: a.Add(time.Minute)}
			if i == len(at)-1 {
				o.Status, o.NextAttemptAt = status, time.Time{}
				if status.Open() {
					o.NextAttemptAt = a.Add(time.Minute)
				}
			}
			if err := s.ApplyOutcomes(ctx, []delivery.Outcome{o}); err != nil {
				t.Fatal(err)
			}
		}
	}
	record("old_ok", delivery.StatusSucceeded, old)
	record("old_dead", delivery.StatusDead, old.Add(-2*time.Hour), old.Add(-time.Hour), old)
	record("old_open", delivery.StatusRetrying, old.Add(-time.Hour), old)         // a retry still waiting, long overdue
	record("old_pending", delivery.StatusPending, old)                            // as a record after a restore
	record("finished_recently", delivery.StatusDead, old.Add(-time.Hour), recent) // attempts span the cutoff
	record("recent_ok", delivery.StatusSucceeded, recent)
	for i := range 5 {
		record(fmt.Sprintf("bulk_%d", i), delivery.StatusSucceeded, old.Add(-time.Duration(i)*time.Minute))
	}

	// A bounded pass deletes at most its limit; the next ones go on until nothing old is left.
	n, err := s.ExpireDeliveries(ctx, cutoff, 3)
	if err != nil || n != 3 {
		t.Fatalf("first pass deleted %d, %v; want 3", n, err)
	}
	total := n
	for range 5 {
		n, err := s.ExpireDeliveries(ctx, cutoff, 3)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n == 0 {
			break
		}
	}
	if total != 7 {
		t.Fatalf("deleted %d deliveries, want 7 (old_ok, old_dead, bulk_0..4)", total)
	}
	if n, err := s.ExpireDeliveries(ctx, cutoff, 3); err != nil || n != 0 {
		t.Fatalf("a pass over what is already expired deleted %d, %v", n, err)
	}

	for _, id := range []string{"old_ok", "old_dead", "bulk_0", "bulk_4"} {
		if _, err := s.GetDelivery(ctx, "acme", id); !errors.Is(err, delivery.ErrNotFound) {
			t.Errorf("%s: %v, want deleted", id, err)
		}
	}
	for id, attempts := range map[string]int{"old_open": 2, "old_pending": 1, "finished_recently": 2, "recent_ok": 1} {
		d, err := s.GetDelivery(ctx, "acme", id)
		if err != nil || len(d.Attempts) != attempts {
			t.Errorf("%s: %d attempts, %v; want kept with %d", id, len(d.Attempts), err, attempts)
		}
	}
	// No attempt of a deleted delivery is left behind.
	for _, id := range []string{"old_dead#2", "old_dead#3"} {
		if err := db.Collection("webhook_attempts").FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Err(); err == nil {
			t.Errorf("attempt %s of a deleted delivery is still stored", id)
		}
	}
	if n, err := db.Collection("webhook_attempts").CountDocuments(ctx, bson.D{}); err != nil || n != 2 {
		t.Errorf("%d attempts stored, %v; want 2 (old_open#2, finished_recently#2)", n, err)
	}

	// The event bodies earlier versions stored, and operational events.
	for id, at := range map[string]time.Time{"evt_old": old, "evt_recent": recent} {
		if _, err := db.Collection("webhook_events").InsertOne(ctx, eventDoc{ID: id, Tenant: "acme", Type: "case.created",
			CaseID: "c1", Version: 1, OccurredAt: at, Body: []byte("x"), StoredAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	for _, at := range []time.Time{old, recent} {
		if err := s.RecordOperation(ctx, delivery.Operation{Kind: "endpoint.disabled", Tenant: "acme", EndpointID: "ep_a", At: at}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.ExpireEvents(ctx, cutoff); err != nil || n != 1 {
		t.Fatalf("expired %d events, %v; want 1", n, err)
	}
	if _, err := s.GetEvent(ctx, "evt_old"); !errors.Is(err, delivery.ErrNotFound) {
		t.Errorf("old event: %v, want deleted", err)
	}
	if _, err := s.GetEvent(ctx, "evt_recent"); err != nil {
		t.Errorf("recent event: %v, want kept", err)
	}
	if n, err := s.ExpireOperations(ctx, cutoff); err != nil || n != 1 {
		t.Fatalf("expired %d operations, %v; want 1", n, err)
	}
	ops, err := s.Operations(ctx, "acme")
	if err != nil || len(ops) != 1 || !ops[0].At.Equal(recent) {
		t.Fatalf("operations left %+v, %v; want the recent one", ops, err)
	}

	// Redactions.
	if err := s.recordRedactions(ctx, []delivery.Redaction{{Tenant: "acme", CaseID: "c_old", At: old}, {Tenant: "acme", CaseID: "c_recent", At: recent}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ExpireRedactions(ctx, cutoff); err != nil || n != 1 {
		t.Fatalf("expired %d redactions, %v; want 1", n, err)
	}
	if n, err := db.Collection("webhook_redactions").CountDocuments(ctx, bson.D{{Key: "_id", Value: "acme/c_recent"}}); err != nil || n != 1 {
		t.Fatalf("the recent redaction: %d, %v; want kept", n, err)
	}
}
