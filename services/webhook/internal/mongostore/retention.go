package mongostore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// finished matches the deliveries that will make no further attempt of their own: only a resend reopens one.
var finished = bson.D{{Key: "$in", Value: bson.A{int(delivery.StatusSucceeded), int(delivery.StatusDead)}}}

// ExpireDeliveries deletes at most limit finished deliveries (succeeded or dead) whose last change is older than
// cutoff, with their attempts, and returns how many records it deleted. Open deliveries are never touched,
// however old. Attempts go first, then the records, so a run interrupted in between leaves records that the next
// run finds again; deleting what another instance deleted already deletes nothing.
//
// The cost is bounded by limit: one read of the candidates (on MongoDB through status_1_updated_at_1, on FerretDB
// a scan), one bulk delete of their later attempts by _id (the first attempt is embedded in the record) and one
// delete of the records, which checks status and updated_at again: a record a resend changed after the read stays.
// Its attempts from before the cutoff are gone then, as the retention says.
func (s *Store) ExpireDeliveries(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	old := bson.D{{Key: "status", Value: finished}, {Key: "updated_at", Value: bson.D{{Key: "$lt", Value: cutoff.UTC()}}}}
	cur, err := s.deliveries.Find(ctx, old, options.Find().SetLimit(int64(limit)).
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "attempt_count", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("finding expired deliveries: %w", err)
	}
	var docs []struct {
		ID           string `bson:"_id"`
		AttemptCount int    `bson:"attempt_count"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("reading expired deliveries: %w", err)
	}
	if len(docs) == 0 {
		return 0, nil
	}
	ids := make(bson.A, len(docs))
	// One delete statement per attempt, each by _id alone: FerretDB looks those up by primary key, where a filter on
	// delivery_id would scan the attempts once per delivery.
	var attempts []mongo.WriteModel
	for i, d := range docs {
		ids[i] = d.ID
		for n := 2; n <= d.AttemptCount; n++ {
			attempts = append(attempts, mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: d.ID + "#" + strconv.Itoa(n)}}))
		}
	}
	if len(attempts) > 0 {
		if _, err := s.attempts.BulkWrite(ctx, attempts, options.BulkWrite().SetOrdered(false)); err != nil {
			return 0, fmt.Errorf("deleting attempts of expired deliveries: %w", err)
		}
	}
	res, err := s.deliveries.DeleteMany(ctx, append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, old...))
	if err != nil {
		return 0, fmt.Errorf("deleting expired deliveries: %w", err)
	}
	return res.DeletedCount, nil
}

// ExpireEvents deletes the event bodies that earlier versions stored for resends (webhook_events) and stored before
// cutoff. Nothing writes that collection any more; it empties itself within one retention of the upgrade, and
// the records that still point at its events are expired with the same retention.
func (s *Store) ExpireEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.events.DeleteMany(ctx, bson.D{{Key: "stored_at", Value: bson.D{{Key: "$lt", Value: cutoff.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("expiring stored event bodies: %w", err)
	}
	return res.DeletedCount, nil
}

// ExpireOperations deletes the operational events (webhook_operations: an endpoint disabled, a transform set aside)
// recorded before cutoff.
func (s *Store) ExpireOperations(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.operations.DeleteMany(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: cutoff.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("expiring operational events: %w", err)
	}
	return res.DeletedCount, nil
}

// ExpireRedactions forgets the redactions (webhook_redactions) recorded before cutoff: no outcome of their
// deliveries can still be on its way by then.
func (s *Store) ExpireRedactions(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.redactions.DeleteMany(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: cutoff.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("expiring redactions: %w", err)
	}
	return res.DeletedCount, nil
}
