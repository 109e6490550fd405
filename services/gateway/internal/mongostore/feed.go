// Package mongostore keeps the gateway's read models in MongoDB (FerretDB in development): the change feed, the
// per-tenant head of the feed, and the access audit. Storage models live here; driver errors become domain errors.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/mongodb"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/feed"
)

// Collection names.
const (
	FeedCollection  = "feed"
	HeadsCollection = "feed_heads"
	AuditCollection = "access_audit"
)

// FeedStore is the change feed. Documents are keyed by event id, so an event delivered twice — by JetStream after
// a lost ack, or republished by the case service under a new stream sequence — is stored once.
type FeedStore struct {
	feed  *mongo.Collection
	heads *mongo.Collection
}

type feedDoc struct {
	ID          string `bson:"_id"`
	Tenant      string `bson:"tenant"`
	Seq         int64  `bson:"seq"`
	Type        string `bson:"type"`
	CaseID      string `bson:"case_id"`
	CaseVersion int64  `bson:"case_version"`
	// Event is the CaseEvent in binary protobuf, exactly as published.
	Event []byte `bson:"event"`
	// StoredAt drives retention.
	StoredAt time.Time `bson:"stored_at"`
}

type headDoc struct {
	Tenant string `bson:"_id"`
	Seq    int64  `bson:"seq"`
}

// NewFeedStore creates the indexes the queries need.
func NewFeedStore(ctx context.Context, db *mongo.Database) (*FeedStore, error) {
	s := &FeedStore{feed: db.Collection(FeedCollection), heads: db.Collection(HeadsCollection)}
	// (tenant, seq) serves every read of the feed: equality on tenant, range and order on seq. Unique, because a
	// position holds one event.
	// One call per index: FerretDB 1.24 panics on a createIndexes of several indexes that already exist (every
	// restart), while one index at a time is a no-op there as on MongoDB.
	for _, m := range []mongo.IndexModel{
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "seq", Value: 1}}, Options: options.Index().SetName("tenant_seq").SetUnique(true)},
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "case_id", Value: 1}, {Key: "seq", Value: 1}}, Options: options.Index().SetName("tenant_case_seq")},
	} {
		if _, err := s.feed.Indexes().CreateOne(ctx, m); err != nil {
			return nil, fmt.Errorf("feed indexes: %w", err)
		}
	}
	// Expire's range on stored_at; on MongoDB only (FerretDB scans for it anyway), so that the hourly delete reads
	// an hour's worth of entries instead of the whole feed.
	if err := mongodb.EnsureIndexes(ctx, db, []mongodb.Index{{Collection: s.feed, Name: "stored_at_1", Keys: bson.D{{Key: "stored_at", Value: 1}}}}); err != nil {
		return nil, fmt.Errorf("feed indexes: %w", err)
	}
	return s, nil
}

// Append stores an event at its position and moves the tenant's head. Storing an event that is already there is
// a no-op, and the head only moves forward, so a redelivery after a crash between the two writes repairs it.
func (s *FeedStore) Append(ctx context.Context, e feed.Entry) error {
	body, err := proto.Marshal(e.Event)
	if err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	_, err = s.feed.InsertOne(ctx, feedDoc{
		ID: e.Event.GetId(), Tenant: e.Event.GetTenant(), Seq: e.Seq, Type: e.Event.GetType(),
		CaseID: e.Event.GetCaseId(), CaseVersion: e.Event.GetCaseVersion(), Event: body, StoredAt: time.Now().UTC(),
	})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("storing feed entry: %w", err)
	}
	if e.Event.GetType() == events.TypeRedacted {
		if err := s.scrub(ctx, e); err != nil {
			return err
		}
	}
	_, err = s.heads.UpdateOne(ctx, bson.D{{Key: "_id", Value: e.Event.GetTenant()}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "seq", Value: e.Seq}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("moving feed head: %w", err)
	}
	return nil
}

// scrub removes the personal data from the earlier events of a redacted case: the right to erasure covers the
// feed's copies too. What stays is what the redacted case itself keeps — ids, status, version, timestamps.
func (s *FeedStore) scrub(ctx context.Context, redacted feed.Entry) error {
	cur, err := s.feed.Find(ctx, bson.D{
		{Key: "tenant", Value: redacted.Event.GetTenant()},
		{Key: "case_id", Value: redacted.Event.GetCaseId()},
		{Key: "seq", Value: bson.D{{Key: "$lt", Value: redacted.Seq}}},
	})
	if err != nil {
		return fmt.Errorf("finding events to redact: %w", err)
	}
	var docs []feedDoc
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("reading events to redact: %w", err)
	}
	for _, d := range docs {
		ev, err := events.Decode(d.Event)
		if err != nil {
			return err
		}
		ev.Data = tombstone(ev.GetData(), redacted.Event.GetOccurredAt())
		body, err := proto.Marshal(ev)
		if err != nil {
			return err
		}
		if _, err := s.feed.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "event", Value: body}}}}); err != nil {
			return fmt.Errorf("redacting feed entry: %w", err)
		}
	}
	return nil
}

func tombstone(c *casekeeperv1.Case, redactedAt *timestamppb.Timestamp) *casekeeperv1.Case {
	if c == nil {
		return nil
	}
	return &casekeeperv1.Case{
		Id: c.GetId(), Tenant: c.GetTenant(), Level: c.GetLevel(), Status: c.GetStatus(), Version: c.GetVersion(),
		CreatedAt: c.GetCreatedAt(), UpdatedAt: c.GetUpdatedAt(), SubmittedAt: c.GetSubmittedAt(),
		ReviewedAt: c.GetReviewedAt(), RedactedAt: redactedAt,
	}
}

// Expire deletes the events stored before cutoff: the feed keeps what the CASES stream keeps, no longer (it is a
// copy of personal data). The heads stay; a cursor from before the deleted events is refused as expired by the
// readers (feed.Cursor.MayHaveExpired, then Oldest).
func (s *FeedStore) Expire(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.feed.DeleteMany(ctx, bson.D{{Key: "stored_at", Value: bson.D{{Key: "$lt", Value: cutoff}}}})
	if err != nil {
		return 0, fmt.Errorf("expiring feed entries: %w", err)
	}
	return res.DeletedCount, nil
}

// Head returns the position of the tenant's newest event, 0 when it has none: one lookup by primary key, which is
// all an empty poll costs.
func (s *FeedStore) Head(ctx context.Context, tenant string) (int64, error) {
	var h headDoc
	err := s.heads.FindOne(ctx, bson.D{{Key: "_id", Value: tenant}}).Decode(&h)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading feed head: %w", err)
	}
	return h.Seq, nil
}

// Oldest returns the position of the tenant's oldest stored event; ok is false when it has none. It is read only
// for a cursor old enough that the retention may have deleted events after it.
func (s *FeedStore) Oldest(ctx context.Context, tenant string) (seq int64, ok bool, err error) {
	var d feedDoc
	err = s.feed.FindOne(ctx, bson.D{{Key: "tenant", Value: tenant}}, options.FindOne().
		SetSort(bson.D{{Key: "seq", Value: 1}}).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading the oldest feed entry: %w", err)
	}
	return d.Seq, true, nil
}

// After returns up to q.Limit events of the tenant after q.After, oldest first, through the (tenant, seq) index.
func (s *FeedStore) After(ctx context.Context, q feed.Query) ([]feed.Entry, error) {
	filter := bson.D{
		{Key: "tenant", Value: q.Tenant},
		{Key: "seq", Value: bson.D{{Key: "$gt", Value: q.After}}},
	}
	if len(q.Types) > 0 {
		filter = append(filter, bson.E{Key: "type", Value: bson.D{{Key: "$in", Value: q.Types}}})
	}
	if q.CaseID != "" {
		filter = append(filter, bson.E{Key: "case_id", Value: q.CaseID})
	}
	cur, err := s.feed.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "seq", Value: 1}}).
		SetLimit(int64(q.Limit)).
		SetProjection(bson.D{{Key: "seq", Value: 1}, {Key: "event", Value: 1}, {Key: "stored_at", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("reading feed: %w", err)
	}
	var docs []feedDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("reading feed: %w", err)
	}
	out := make([]feed.Entry, 0, len(docs))
	for _, d := range docs {
		ev, err := events.Decode(d.Event)
		if err != nil {
			return nil, err
		}
		e := feed.Entry{Seq: d.Seq, Event: ev, StoredAt: d.StoredAt}
		ev.Cursor = e.Cursor().String()
		out = append(out, e)
	}
	return out, nil
}
