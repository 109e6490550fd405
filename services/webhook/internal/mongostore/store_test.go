package mongostore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/keyring"
)

// Against FerretDB (the development and test database; production runs MongoDB with the same driver).
func TestStore(t *testing.T) {
	uri, db := testinfra.Mongo(t)
	s := New(testinfra.ConnectMongo(t, uri, db), testKeys(t, 1))
	ctx := context.Background()
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)

	ep := delivery.Endpoint{ID: "ep_a", Tenant: "acme", URL: "https://x.example", Format: delivery.FormatJQ, JQ: ".",
		EventTypes: []string{"case.created"}, Headers: map[string]string{"X-A": "1"}, RateLimit: 3, MaxConcurrency: 2,
		Secrets: []delivery.Secret{{Value: "whsec_a", CreatedAt: now}}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEndpoint(ctx, ep); !errors.Is(err, delivery.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	got, err := s.GetEndpoint(ctx, "acme", "ep_a")
	if err != nil || got.JQ != "." || got.Headers["X-A"] != "1" || got.Secrets[0].Value != "whsec_a" || got.MaxConcurrency != 2 {
		t.Fatalf("get %+v %v", got, err)
	}
	if _, err := s.GetEndpoint(ctx, "globex", "ep_a"); !errors.Is(err, delivery.ErrNotFound) {
		t.Fatalf("other tenant: %v", err)
	}
	changed, err := s.DisableEndpoint(ctx, "ep_a", "gone", now)
	if err != nil || !changed {
		t.Fatalf("disable %v %v", changed, err)
	}
	if changed, _ := s.DisableEndpoint(ctx, "ep_a", "gone", now); changed {
		t.Fatal("disabled twice")
	}

	base := delivery.Delivery{Tenant: "acme", EndpointID: "ep_a", EventType: "case.created", CaseID: "c1"}
	var outs []delivery.Outcome
	for i, id := range []string{"msg_1", "msg_2", "msg_3"} {
		d := base
		d.ID, d.EventID, d.CreatedAt = id, "evt_"+id, now.Add(time.Duration(i)*time.Second)
		outs = append(outs, delivery.Outcome{Delivery: d, Attempt: delivery.Attempt{Number: 1, At: d.CreatedAt, StatusCode: 500, Error: "boom"},
			Status: delivery.StatusRetrying, NextAttemptAt: now.Add(time.Minute), Seq: uint64(i + 1)})
	}
	if err := s.ApplyOutcomes(ctx, outs); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyOutcomes(ctx, outs[:1]); err != nil { // recorded twice: a no-op
		t.Fatal(err)
	}
	second := outs[0]
	second.Attempt = delivery.Attempt{Number: 2, At: now.Add(time.Minute), StatusCode: 200, Response: "ok"}
	second.Status, second.NextAttemptAt, second.Seq = delivery.StatusSucceeded, time.Time{}, 10
	if err := s.ApplyOutcomes(ctx, []delivery.Outcome{second}); err != nil {
		t.Fatal(err)
	}
	// An older outcome applied late (its batch failed and came back after this one) changes nothing.
	late := outs[0]
	late.Attempt.Number, late.Seq = 2, 5
	if err := s.ApplyOutcomes(ctx, []delivery.Outcome{late}); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDelivery(ctx, "acme", "msg_1")
	if err != nil || d.Status != delivery.StatusSucceeded || d.AttemptCount != 2 || len(d.Attempts) != 2 ||
		d.Attempts[0].StatusCode != 500 || d.Attempts[1].Response != "ok" {
		t.Fatalf("delivery %+v %v", d, err)
	}
	loaded, err := s.NewLoader().Do(ctx, "msg_2")
	if err != nil || loaded == nil || loaded.AttemptCount != 1 || loaded.Status != delivery.StatusRetrying {
		t.Fatalf("load %+v %v", loaded, err)
	}
	if missing, err := s.NewLoader().Do(ctx, "msg_none"); missing != nil || err != nil {
		t.Fatalf("load missing %+v %v", missing, err)
	}

	page, err := s.ListDeliveries(ctx, "acme", delivery.DeliveryFilter{EndpointID: "ep_a"}, nil, 2)
	if err != nil || len(page) != 2 || page[0].ID != "msg_3" || page[1].ID != "msg_2" {
		t.Fatalf("page 1 %+v %v", page, err)
	}
	// A listing carries each delivery's latest attempt: the first while it is the only one.
	if la := page[0].LastAttempt; la == nil || la.Number != 1 || la.StatusCode != 500 || la.Error != "boom" {
		t.Fatalf("last attempt of a first attempt %+v", la)
	}
	page, err = s.ListDeliveries(ctx, "acme", delivery.DeliveryFilter{}, &Cursor{CreatedAt: page[1].CreatedAt, ID: page[1].ID}, 2)
	if err != nil || len(page) != 1 || page[0].ID != "msg_1" {
		t.Fatalf("page 2 %+v %v", page, err)
	}
	if la := page[0].LastAttempt; la == nil || la.Number != 2 || la.StatusCode != 200 || la.Response != "ok" {
		t.Fatalf("last attempt of a second attempt %+v", la)
	}
	page, _ = s.ListDeliveries(ctx, "acme", delivery.DeliveryFilter{Status: delivery.StatusRetrying}, nil, 10)
	if len(page) != 2 {
		t.Fatalf("retrying %d", len(page))
	}
	overdue, err := s.Overdue(ctx, now.Add(2*time.Minute), 10)
	if err != nil || len(overdue) != 2 {
		t.Fatalf("overdue %d %v", len(overdue), err)
	}
	// A second attempt applied before the first (the first's batch failed): the record has the second's state and,
	// once the first comes back, the first attempt too.
	d4 := base
	d4.ID, d4.EventID, d4.CreatedAt = "msg_4", "evt_msg_4", now
	first4 := delivery.Outcome{Delivery: d4, Attempt: delivery.Attempt{Number: 1, At: now, StatusCode: 503},
		Status: delivery.StatusRetrying, NextAttemptAt: now.Add(time.Second), Seq: 20}
	second4 := delivery.Outcome{Delivery: d4, Attempt: delivery.Attempt{Number: 2, At: now.Add(time.Second), StatusCode: 204},
		Status: delivery.StatusSucceeded, Seq: 21}
	for _, batch := range [][]delivery.Outcome{{second4}, {first4}, {first4, second4}} {
		if err := s.ApplyOutcomes(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	got4, err := s.GetDelivery(ctx, "acme", "msg_4")
	if err != nil || got4.Status != delivery.StatusSucceeded || got4.AttemptCount != 2 || len(got4.Attempts) != 2 ||
		got4.Attempts[0].StatusCode != 503 || got4.Attempts[1].StatusCode != 204 || got4.EndpointID != "ep_a" || got4.EventID != "evt_msg_4" {
		t.Fatalf("out of order %+v %v", got4, err)
	}
}

func testKeys(t *testing.T, current byte, old ...byte) *keyring.Keyring {
	t.Helper()
	var olds [][]byte
	for _, o := range old {
		olds = append(olds, bytes.Repeat([]byte{o}, keyring.KeySize))
	}
	kr, err := keyring.New(bytes.Repeat([]byte{current}, keyring.KeySize), olds...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// Signing secrets and header values are sealed at rest; rows written in plaintext before stay readable and are
// sealed by Reseal; after a key rotation the old key still opens and Reseal moves every row to the new one.
func TestSecretsSealedAtRest(t *testing.T) {
	uri, dbName := testinfra.Mongo(t)
	db := testinfra.ConnectMongo(t, uri, dbName)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	raw := func(id string) string {
		var doc bson.M
		if err := db.Collection("webhook_endpoints").FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		b, _ := bson.MarshalExtJSON(doc, false, false)
		return string(b)
	}
	ep := delivery.Endpoint{ID: "ep_sealed", Tenant: "acme", URL: "https://x.example", Format: delivery.FormatFull,
		Headers: map[string]string{"Authorization": "Bearer receiver-credential"},
		Secrets: []delivery.Secret{{Value: "whsec_c2VjcmV0LXZhbHVl", CreatedAt: now}}, CreatedAt: now, UpdatedAt: now}
	s1 := New(db, testKeys(t, 1))
	if err := s1.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if doc := raw("ep_sealed"); strings.Contains(doc, "receiver-credential") || strings.Contains(doc, "c2VjcmV0LXZhbHVl") {
		t.Fatalf("stored in plaintext: %s", doc)
	}
	check := func(s *Store, id string) {
		t.Helper()
		got, err := s.GetEndpoint(ctx, "acme", id)
		if err != nil || got.Headers["Authorization"] != "Bearer receiver-credential" || got.Secrets[0].Value != "whsec_c2VjcmV0LXZhbHVl" {
			t.Fatalf("%s read back as %+v, %v", id, got, err)
		}
	}
	check(s1, "ep_sealed")

	// A row from before sealing: plaintext values, no data key.
	if _, err := db.Collection("webhook_endpoints").InsertOne(ctx, bson.D{{Key: "_id", Value: "ep_legacy"}, {Key: "tenant", Value: "acme"},
		{Key: "url", Value: "https://x.example"}, {Key: "format", Value: 1}, {Key: "event_types", Value: bson.A{}},
		{Key: "headers", Value: bson.D{{Key: "Authorization", Value: "Bearer receiver-credential"}}},
		{Key: "secrets", Value: bson.A{bson.D{{Key: "value", Value: "whsec_c2VjcmV0LXZhbHVl"}, {Key: "created_at", Value: now}}}},
		{Key: "created_at", Value: now}, {Key: "updated_at", Value: now}}); err != nil {
		t.Fatal(err)
	}
	check(s1, "ep_legacy")

	// Rotation: key 2 is current, key 1 old. Both rows read; Reseal moves both to key 2.
	s2 := New(db, testKeys(t, 2, 1))
	check(s2, "ep_sealed")
	n, err := s2.Reseal(ctx)
	if err != nil || n != 2 {
		t.Fatalf("resealed %d, %v; want 2", n, err)
	}
	if doc := raw("ep_legacy"); strings.Contains(doc, "receiver-credential") || strings.Contains(doc, "c2VjcmV0LXZhbHVl") {
		t.Fatalf("legacy row still in plaintext after Reseal: %s", doc)
	}
	if n, _ := s2.Reseal(ctx); n != 0 {
		t.Fatalf("a second Reseal rewrote %d rows", n)
	}
	// Once resealed, the old key is not needed any more; without the current key nothing opens.
	check(New(db, testKeys(t, 2)), "ep_sealed")
	check(New(db, testKeys(t, 2)), "ep_legacy")
	if _, err := New(db, testKeys(t, 1)).GetEndpoint(ctx, "acme", "ep_sealed"); !errors.Is(err, keyring.ErrOpen) {
		t.Fatalf("read with a key that did not seal it: %v", err)
	}
}
