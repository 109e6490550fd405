package mongostore

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// Loader reads delivery state by id, one point lookup each: FerretDB/SQLite pushes an _id equality down to SQL
// but not an $in, so batching reads would scan the collection.
type Loader struct{ s *Store }

// NewLoader returns a loader over the store.
func (s *Store) NewLoader() Loader { return Loader{s: s} }

// Do returns the delivery, or nil when it has no record yet.
func (l Loader) Do(ctx context.Context, id string) (*delivery.Delivery, error) {
	var d deliveryDoc
	err := l.s.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := d.domain()
	return &out, nil
}
