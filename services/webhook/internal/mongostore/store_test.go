package mongostore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// Against FerretDB (the development and test database; production runs MongoDB with the same driver).
func TestStore(t *testing.T) {
	uri, db := testinfra.Mongo(t)
	s := New(testinfra.ConnectMongo(t, uri, db))
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
			Status: delivery.StatusRetrying, NextAttemptAt: now.Add(time.Minute)})
	}
	if err := s.ApplyOutcomes(ctx, outs); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyOutcomes(ctx, outs[:1]); err != nil { // recorded twice: a no-op
		t.Fatal(err)
	}
	second := outs[0]
	second.Attempt = delivery.Attempt{Number: 2, At: now.Add(time.Minute), StatusCode: 200, Response: "ok"}
	second.Status, second.NextAttemptAt = delivery.StatusSucceeded, time.Time{}
	if err := s.ApplyOutcomes(ctx, []delivery.Outcome{second}); err != nil {
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
	re, err := s.Requeue(ctx, "acme", "msg_1", now)
	if err != nil || re.Status != delivery.StatusPending || re.AttemptCount != 2 {
		t.Fatalf("requeue %+v %v", re, err)
	}
}

func TestBatcherGroupsConcurrentCalls(t *testing.T) {
	var calls, items int
	b := NewBatcher(100, 20*time.Millisecond, 1, func(_ context.Context, in []int) ([]int, error) {
		calls++
		items += len(in)
		out := make([]int, len(in))
		for i, v := range in {
			out[i] = v * 2
		}
		return out, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	results := make(chan int, 50)
	for i := range 50 {
		go func() {
			v, err := b.Do(context.Background(), i)
			if err != nil {
				t.Error(err)
			}
			results <- v - 2*i
		}()
	}
	for range 50 {
		if d := <-results; d != 0 {
			t.Fatal("wrong result for an input")
		}
	}
	cancel()
	<-done
	if items != 50 || calls > 5 {
		t.Fatalf("%d calls for %d items", calls, items)
	}
}
