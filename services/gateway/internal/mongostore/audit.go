package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casekeeper/core/pkg/mongodb"
	"github.com/casekeeper/core/services/gateway/internal/audit"
)

// AuditStore is the access audit: records are inserted, found, and deleted only by age (Expire).
type AuditStore struct{ c *mongo.Collection }

type auditDoc struct {
	ID       string    `bson:"_id"`
	At       time.Time `bson:"at"`
	Tenant   string    `bson:"tenant"`
	Subject  string    `bson:"subject"`
	ClientID string    `bson:"client_id"`
	Via      string    `bson:"via,omitempty"`
	API      string    `bson:"api"`
	CaseIDs  []string  `bson:"case_ids"`
}

// NewAuditStore creates the index the admins' reads need.
func NewAuditStore(ctx context.Context, db *mongo.Database) (*AuditStore, error) {
	c := db.Collection(AuditCollection)
	_, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "tenant", Value: 1}, {Key: "at", Value: 1}, {Key: "_id", Value: 1}},
		Options: options.Index().SetName("tenant_at"),
	})
	if err != nil {
		return nil, fmt.Errorf("audit index: %w", err)
	}
	// The retention's read of the oldest records (Expire); on MongoDB only, as FerretDB would scan anyway.
	if err := mongodb.EnsureIndexes(ctx, db, []mongodb.Index{{Collection: c, Name: "at_1", Keys: bson.D{{Key: "at", Value: 1}}}}); err != nil {
		return nil, fmt.Errorf("audit index: %w", err)
	}
	return &AuditStore{c: c}, nil
}

// Expire deletes at most limit records made before cutoff and returns how many it deleted: one read of their ids
// (through at_1 on MongoDB, a scan on FerretDB; unsorted, as every one of them is due) and one delete by id, so a
// pass costs the same however large the audit has grown. Deleting what another instance deleted deletes nothing.
func (s *AuditStore) Expire(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	cur, err := s.c.Find(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: cutoff.UTC()}}}}, options.Find().
		SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("finding expired audit records: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("reading expired audit records: %w", err)
	}
	if len(docs) == 0 {
		return 0, nil
	}
	ids := make(bson.A, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	res, err := s.c.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return 0, fmt.Errorf("deleting expired audit records: %w", err)
	}
	return res.DeletedCount, nil
}

// Append inserts the records in one round trip.
func (s *AuditStore) Append(ctx context.Context, recs []audit.Record) error {
	docs := make([]any, len(recs))
	for i, r := range recs {
		docs[i] = auditDoc{ID: r.ID, At: r.At, Tenant: r.Tenant, Subject: r.Subject, ClientID: r.ClientID,
			Via: r.Via, API: r.API, CaseIDs: r.CaseIDs}
	}
	// Unordered, and a record already there (same _id: a batch written again) is no error.
	_, err := s.c.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil {
		for _, we := range bwe.WriteErrors {
			if we.Code != 11000 {
				return fmt.Errorf("appending audit records: %w", err)
			}
		}
		return nil
	}
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("appending audit records: %w", err)
	}
	return nil
}

// List returns a tenant's records in time order.
func (s *AuditStore) List(ctx context.Context, p audit.Page) ([]audit.Record, error) {
	filter := bson.D{{Key: "tenant", Value: p.Tenant}}
	if !p.Since.IsZero() {
		filter = append(filter, bson.E{Key: "at", Value: bson.D{{Key: "$gte", Value: p.Since}}})
	}
	if p.AfterID != "" {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "at", Value: bson.D{{Key: "$gt", Value: p.AfterAt}}}},
			bson.D{{Key: "at", Value: p.AfterAt}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: p.AfterID}}}},
		}})
	}
	cur, err := s.c.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "at", Value: 1}, {Key: "_id", Value: 1}}).
		SetLimit(int64(p.Limit)))
	if err != nil {
		return nil, fmt.Errorf("reading audit: %w", err)
	}
	var docs []auditDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("reading audit: %w", err)
	}
	out := make([]audit.Record, len(docs))
	for i, d := range docs {
		out[i] = audit.Record{ID: d.ID, At: d.At.UTC(), Tenant: d.Tenant, Subject: d.Subject, ClientID: d.ClientID,
			Via: d.Via, API: d.API, CaseIDs: d.CaseIDs}
	}
	return out, nil
}
