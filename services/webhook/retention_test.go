package webhooksvc_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casekeeper/core/pkg/testinfra"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// The running service deletes, on its own, the finished deliveries older than WEBHOOK_DELIVERY_RETENTION with their
// attempts, and keeps recent and open ones: the retention is wired in, not only written (one pass after
// WEBHOOK_RETENTION_INTERVAL, its shortest, 1m).
func TestServiceDeletesExpiredDeliveries(t *testing.T) {
	e := newEnv(t)
	db := testinfra.ConnectMongo(t, e.mongoURI, e.db)
	ctx := context.Background()
	now := time.Now().UTC()
	seed := func(id string, status int, updated time.Time) {
		t.Helper()
		if _, err := db.Collection("webhook_deliveries").InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: "acme"},
			{Key: "endpoint_id", Value: "ep_x"}, {Key: "event_id", Value: "evt_" + id}, {Key: "event_type", Value: "case.created"},
			{Key: "status", Value: status}, {Key: "attempt_count", Value: 2}, {Key: "created_at", Value: updated.Add(-time.Minute)},
			{Key: "updated_at", Value: updated}, {Key: "next_attempt_at", Value: updated.Add(time.Minute)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Collection("webhook_attempts").InsertOne(ctx, bson.D{{Key: "_id", Value: id + "#2"},
			{Key: "delivery_id", Value: id}, {Key: "n", Value: 2}, {Key: "at", Value: updated}}); err != nil {
			t.Fatal(err)
		}
	}
	const succeeded, retrying, dead = 2, 3, 4
	seed("msg_old_ok", succeeded, now.Add(-3*time.Hour))
	seed("msg_old_dead", dead, now.Add(-2*time.Hour))
	seed("msg_old_open", retrying, now.Add(-3*time.Hour))
	seed("msg_recent", succeeded, now.Add(-10*time.Minute))

	e.start(func(c *webhooksvc.Config) { c.DeliveryRetention, c.RetentionInterval = time.Hour, time.Minute })
	stored := func(coll, id string) bool {
		return db.Collection(coll).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Err() == nil
	}
	testinfra.Eventually(t, 90*time.Second, "the expired deliveries deleted", func() bool {
		return !stored("webhook_deliveries", "msg_old_ok") && !stored("webhook_deliveries", "msg_old_dead")
	})
	for _, id := range []string{"msg_old_ok#2", "msg_old_dead#2"} {
		if stored("webhook_attempts", id) {
			t.Errorf("attempt %s of a deleted delivery is still stored", id)
		}
	}
	for _, id := range []string{"msg_old_open", "msg_recent"} {
		if !stored("webhook_deliveries", id) || !stored("webhook_attempts", id+"#2") {
			t.Errorf("%s or its attempt was deleted", id)
		}
	}
	families, err := e.svc.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var deleted float64
	for _, f := range families {
		if f.GetName() != "webhook_retention_deleted_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == "deliveries" {
					deleted = m.GetCounter().GetValue()
				}
			}
		}
	}
	if deleted != 2 {
		t.Errorf("webhook_retention_deleted_total{kind=\"deliveries\"} = %v, want 2", deleted)
	}
}
