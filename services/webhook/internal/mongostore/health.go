package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// Health keeps, per endpoint, one document per hour and one per UTC day (webhook_endpoint_health) with the count
// of attempts, of successes and a latency histogram. Its key is the endpoint, the period and the period's start,
// so that writing a batch and reading a chart are point operations by _id, the one lookup FerretDB indexes.

type healthDoc struct {
	ID         string    `bson:"_id"`
	Tenant     string    `bson:"tenant"`
	EndpointID string    `bson:"endpoint_id"`
	Period     string    `bson:"period"`
	Start      time.Time `bson:"start"`
	Attempts   int64     `bson:"attempts"`
	Succeeded  int64     `bson:"succeeded"`
	// Latency is the histogram by delivery.LatencyBounds: one top-level field per bucket (l0, l1, …), which an
	// $inc names.
	Latency map[string]int64 `bson:",inline"`
	// AppliedSeq is the outcome log position of the last outcome counted: a batch that comes back after a failure
	// is not counted twice.
	AppliedSeq int64 `bson:"applied_seq"`
}

func healthKey(endpointID, period string, start time.Time) string {
	return endpointID + "/" + period + "/" + strconv.FormatInt(start.Unix(), 10)
}

func latencyField(i int) string { return "l" + strconv.Itoa(i) }

// healthDelta is what a batch adds to one bucket.
type healthDelta struct {
	tenant, endpointID, period string
	start                      time.Time
	outcomes                   []delivery.Outcome
}

// applyHealth adds the batch's attempts to their endpoints' buckets: per bucket one read of what was counted and
// one upsert, whatever the number of attempts. The delivery-log projector is the one writer (one active instance,
// in log order), so nothing changes a bucket between its read and its write.
func (s *Store) applyHealth(ctx context.Context, outs []delivery.Outcome) error {
	deltas := map[string]*healthDelta{}
	var order []string
	for _, o := range outs {
		if o.Redaction != nil || !o.Attempt.Counted() {
			continue
		}
		for _, period := range []string{delivery.Hourly, delivery.Daily} {
			start := delivery.PeriodStart(period, o.Attempt.At)
			key := healthKey(o.Delivery.EndpointID, period, start)
			d, ok := deltas[key]
			if !ok {
				d = &healthDelta{tenant: o.Delivery.Tenant, endpointID: o.Delivery.EndpointID, period: period, start: start}
				deltas[key] = d
				order = append(order, key)
			}
			d.outcomes = append(d.outcomes, o)
		}
	}
	for _, key := range order {
		if err := s.applyHealthDelta(ctx, key, deltas[key]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) applyHealthDelta(ctx context.Context, key string, d *healthDelta) error {
	var held struct {
		AppliedSeq int64 `bson:"applied_seq"`
	}
	err := s.health.FindOne(ctx, byID(key), options.FindOne().SetProjection(bson.D{{Key: "applied_seq", Value: 1}})).Decode(&held)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("reading health bucket %s: %w", key, err)
	}
	var add delivery.HealthBucket
	applied := held.AppliedSeq
	for _, o := range d.outcomes {
		// An outcome not read from the log (Seq 0) is counted as it comes.
		if o.Seq != 0 && int64(o.Seq) <= held.AppliedSeq {
			continue
		}
		add.Add(o.Attempt)
		applied = max(applied, int64(o.Seq))
	}
	if add.Attempts == 0 {
		return nil
	}
	inc := bson.D{{Key: "attempts", Value: add.Attempts}, {Key: "succeeded", Value: add.Succeeded}}
	for i, n := range add.Latency {
		if n != 0 {
			inc = append(inc, bson.E{Key: latencyField(i), Value: n})
		}
	}
	update := bson.D{
		{Key: "$inc", Value: inc},
		{Key: "$set", Value: bson.D{{Key: "tenant", Value: d.tenant}, {Key: "endpoint_id", Value: d.endpointID},
			{Key: "period", Value: d.period}, {Key: "start", Value: d.start}, {Key: "applied_seq", Value: applied}}},
	}
	if _, err := s.health.UpdateOne(ctx, byID(key), update, options.UpdateOne().SetUpsert(true)); err != nil {
		return fmt.Errorf("writing health bucket %s: %w", key, err)
	}
	return nil
}

// EndpointHealth reads the endpoint's buckets of the count periods of the given length (Hourly or Daily) ending
// with the one that holds now, oldest first; a period without attempts is an empty bucket. The caller has checked
// that the endpoint is the tenant's; the tenant is checked again on every bucket read.
func (s *Store) EndpointHealth(ctx context.Context, tenant, endpointID, period string, count int, now time.Time) ([]delivery.HealthBucket, error) {
	out := make([]delivery.HealthBucket, count)
	last := delivery.PeriodStart(period, now)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range out {
		start := last.Add(time.Duration(i-(count-1)) * time.Hour)
		if period == delivery.Daily {
			start = last.AddDate(0, 0, i-(count-1))
		}
		out[i].Start = start
		g.Go(func() error {
			var doc healthDoc
			err := s.health.FindOne(gctx, byID(healthKey(endpointID, period, start))).Decode(&doc)
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
				return nil
			case err != nil:
				return fmt.Errorf("reading endpoint health: %w", err)
			case doc.Tenant != tenant:
				return nil
			}
			out[i].Attempts, out[i].Succeeded = doc.Attempts, doc.Succeeded
			out[i].Latency = make([]int64, len(delivery.LatencyBounds)+1)
			for j := range out[i].Latency {
				out[i].Latency[j] = doc.Latency[latencyField(j)]
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// ExpireHealth deletes the health buckets of periods that started before cutoff.
func (s *Store) ExpireHealth(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.health.DeleteMany(ctx, bson.D{{Key: "start", Value: bson.D{{Key: "$lt", Value: cutoff.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("expiring endpoint health: %w", err)
	}
	return res.DeletedCount, nil
}

func byID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }
