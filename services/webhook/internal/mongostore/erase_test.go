package mongostore

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// A redaction in the outcome log scrubs what the case's attempts carried (a receiver echoing the body, an error
// quoting it) from the delivery log: the records already there, in every collection, and the attempts applied after
// it — a later attempt of a delivery on record, and the first attempt of a delivery that was still in flight.
// Another case's deliveries keep theirs.
func TestARedactionErasesTheCasesAttempts(t *testing.T) {
	uri, dbName := testinfra.Mongo(t)
	db := testinfra.ConnectMongo(t, uri, dbName)
	s := New(db, testKeys(t, 1))
	ctx := context.Background()
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	const echo = `{"data":{"applicant":{"full_name":"Ottilie Quarzbrunn"}}}`
	seq := uint64(0)
	out := func(id, caseID string, n int, status delivery.Status) delivery.Outcome {
		seq++
		return delivery.Outcome{Delivery: delivery.Delivery{ID: id, Tenant: "acme", EndpointID: "ep_a", EventID: "evt_" + id,
			EventType: "case.updated", CaseID: caseID, CreatedAt: now},
			Attempt: delivery.Attempt{Number: n, At: now.Add(time.Duration(n) * time.Second), StatusCode: 500,
				Response: echo, Error: "status 500: " + echo},
			Status: status, NextAttemptAt: now.Add(time.Hour), Seq: seq}
	}
	before := []delivery.Outcome{out("msg_r1", "c_red", 1, delivery.StatusRetrying), out("msg_r1", "c_red", 2, delivery.StatusRetrying),
		out("msg_r2", "c_red", 1, delivery.StatusRetrying), out("msg_k1", "c_kept", 1, delivery.StatusRetrying)}
	if err := s.ApplyOutcomes(ctx, before); err != nil {
		t.Fatal(err)
	}
	// An event stored by an earlier version for resends.
	if _, err := db.Collection("webhook_events").InsertOne(ctx, bson.D{{Key: "_id", Value: "evt_old"}, {Key: "tenant", Value: "acme"},
		{Key: "case_id", Value: "c_red"}, {Key: "body", Value: []byte(echo)}}); err != nil {
		t.Fatal(err)
	}
	// The redaction, in one batch with an attempt recorded just before it, then the attempts that were in flight.
	seq++
	redaction := delivery.Outcome{Seq: seq, Redaction: &delivery.Redaction{Tenant: "acme", CaseID: "c_red", EventID: "evt_x", At: now}}
	if err := s.ApplyOutcomes(ctx, []delivery.Outcome{out("msg_r2", "c_red", 2, delivery.StatusRetrying), redaction}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyOutcomes(ctx, []delivery.Outcome{redaction}); err != nil { // applied twice: nothing changes
		t.Fatal(err)
	}
	if err := s.ApplyOutcomes(ctx, []delivery.Outcome{out("msg_r1", "c_red", 3, delivery.StatusDead),
		out("msg_r3", "c_red", 1, delivery.StatusRetrying), out("msg_k1", "c_kept", 2, delivery.StatusRetrying)}); err != nil {
		t.Fatal(err)
	}

	for _, coll := range []string{"webhook_deliveries", "webhook_attempts", "webhook_events"} {
		cur, err := db.Collection(coll).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			raw, _ := bson.MarshalExtJSON(doc, false, false)
			kept := strings.Contains(string(raw), "c_kept") || strings.HasPrefix(doc["_id"].(string), "msg_k1")
			if has := strings.Contains(string(raw), "Quarzbrunn"); has != kept {
				t.Errorf("%s: %s (of the kept case: %v)", coll, raw, kept)
			}
		}
	}
	for _, id := range []string{"msg_r1", "msg_r2", "msg_r3"} {
		d, err := s.GetDelivery(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Attempts) != d.AttemptCount || d.LastAttempt == nil {
			t.Fatalf("%s: %d attempts of %d", id, len(d.Attempts), d.AttemptCount)
		}
		for _, a := range d.Attempts {
			if a.Response != "" || a.Error != delivery.ErasedText || a.StatusCode != 500 {
				t.Errorf("%s attempt %d: %+v, want erased with its status code", id, a.Number, a)
			}
		}
		if d.LastError != delivery.ErasedText {
			t.Errorf("%s: last error %q", id, d.LastError)
		}
	}
	if d, _ := s.GetDelivery(ctx, "acme", "msg_r1"); d.Status != delivery.StatusDead || d.AttemptCount != 3 {
		t.Errorf("msg_r1 after the redaction: %v with %d attempts, want dead with 3", d.Status, d.AttemptCount)
	}
}
