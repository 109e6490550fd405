package mongostore

import (
	"context"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// TestEndpointHealthCountsEachAttemptOnce: the buckets count every attempt that sent a request, once even when the
// projector's batch comes back, by hour and by day, and are read by the endpoint's tenant only.
func TestEndpointHealthCountsEachAttemptOnce(t *testing.T) {
	uri, db := testinfra.Mongo(t)
	s := New(testinfra.ConnectMongo(t, uri, db), testKeys(t, 1))
	ctx := context.Background()
	now := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	sent := []delivery.Header{{Name: "Webhook-Id", Value: "msg_x"}}
	attempt := func(seq int, at time.Time, code int, latency time.Duration) delivery.Outcome {
		d := delivery.Delivery{ID: "msg_" + string(rune('a'+seq)), Tenant: "acme", EndpointID: "ep_h", EventType: "case.created",
			CaseID: "c1", EventID: "evt_h", CreatedAt: at}
		return delivery.Outcome{Delivery: d, Status: delivery.StatusSucceeded, Seq: uint64(seq),
			Attempt: delivery.Attempt{Number: 1, At: at, StatusCode: code, Latency: latency, RequestHeaders: sent}}
	}
	batch := []delivery.Outcome{
		attempt(1, now, 200, 20*time.Millisecond),
		attempt(2, now.Add(time.Minute), 200, 40*time.Millisecond),
		attempt(3, now.Add(2*time.Minute), 503, 3*time.Second),
		attempt(4, now.Add(-2*time.Hour), 200, 8*time.Millisecond),
		attempt(5, now.Add(-26*time.Hour), 200, 8*time.Millisecond), // yesterday: the days only
	}
	// An attempt that sent nothing (the endpoint was disabled) is no measure of the endpoint.
	nothing := attempt(6, now, 0, 0)
	nothing.Attempt.RequestHeaders, nothing.Attempt.Error = nil, "the endpoint is disabled"
	batch = append(batch, nothing)
	for range 2 { // the second time: a batch redelivered after a failure
		if err := s.ApplyOutcomes(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	hours, err := s.EndpointHealth(ctx, "acme", "ep_h", delivery.Hourly, 24, now)
	if err != nil || len(hours) != 24 {
		t.Fatalf("hours: %d %v", len(hours), err)
	}
	last, earlier := hours[23], hours[21]
	if !last.Start.Equal(now.Truncate(time.Hour)) || last.Attempts != 3 || last.Succeeded != 2 {
		t.Errorf("this hour: %+v, want 3 attempts, 2 succeeded, from 10:00", last)
	}
	if last.Percentile(0.5) != 50*time.Millisecond || last.Percentile(0.99) != 5*time.Second {
		t.Errorf("this hour's p50 %s p99 %s, want 50ms and 5s (the bounds of their histogram buckets)", last.Percentile(0.5), last.Percentile(0.99))
	}
	if earlier.Attempts != 1 || hours[22].Attempts != 0 || hours[0].Attempts != 0 {
		t.Errorf("hours: 08:00 %+v, 09:00 %+v", earlier, hours[22])
	}
	days, err := s.EndpointHealth(ctx, "acme", "ep_h", delivery.Daily, 7, now)
	if err != nil {
		t.Fatal(err)
	}
	if days[6].Attempts != 4 || days[5].Attempts != 1 || !days[6].Start.Equal(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("today %+v, yesterday %+v", days[6], days[5])
	}
	if total := delivery.Merge(days); total.Attempts != 5 || total.Succeeded != 4 {
		t.Errorf("7 days together: %+v", total)
	}
	// Later attempts add to the same bucket.
	if err := s.ApplyOutcomes(ctx, []delivery.Outcome{attempt(7, now.Add(3*time.Minute), 200, time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if hours, _ = s.EndpointHealth(ctx, "acme", "ep_h", delivery.Hourly, 24, now); hours[23].Attempts != 4 {
		t.Errorf("after one more attempt this hour holds %d", hours[23].Attempts)
	}
	other, err := s.EndpointHealth(ctx, "globex", "ep_h", delivery.Hourly, 24, now)
	if err != nil || delivery.Merge(other).Attempts != 0 {
		t.Fatalf("another tenant read %d attempts (%v)", delivery.Merge(other).Attempts, err)
	}
	if n, err := s.ExpireHealth(ctx, now.Add(-24*time.Hour)); err != nil || n != 2 {
		t.Fatalf("expired %d buckets (%v), want the two of 26 hours ago", n, err)
	}
}
