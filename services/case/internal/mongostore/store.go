// Package mongostore keeps cases in MongoDB (or the embedded FerretDB). Each case is one document that also holds
// its outbox: every change and its event are written by one single-document update, so neither exists without the
// other, with no multi-document transaction (FerretDB has none).
//
// Concurrency: an update is a compare-and-set on the case's version. MongoDB runs each update atomically, so that is
// enough for any number of case-service instances. FerretDB runs an update as "query, then replace by _id", so two
// compare-and-sets on one document can both win; the store therefore also serialises its own writes per case
// within the process. Against FerretDB (development, tests) run one case-service instance; in production MongoDB
// makes several safe.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casekeeper/core/services/case/internal/app"
	"github.com/casekeeper/core/services/case/internal/kyc"
)

// Store implements app.Store and the relay's outbox access over one collection.
type Store struct {
	cases  *mongo.Collection
	locks  [256]sync.Mutex
	writes chan struct{}
}

// New returns a store on the database's "cases" collection. maxWrites bounds the writes in flight at once (0: no
// bound): FerretDB on SQLite has one writer at a time, and many concurrent writers make it back off and retry until
// latency explodes; a short queue in front of it keeps throughput up.
func New(db *mongo.Database, maxWrites int) *Store {
	s := &Store{cases: db.Collection("cases")}
	if maxWrites > 0 {
		s.writes = make(chan struct{}, maxWrites)
	}
	return s
}

// admit waits for a write slot; the returned func gives it back.
func (s *Store) admit(ctx context.Context) (func(), error) {
	if s.writes == nil {
		return func() {}, nil
	}
	select {
	case s.writes <- struct{}{}:
		return func() { <-s.writes }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// EnsureIndexes creates the indexes every query needs; it is idempotent. One index per call: FerretDB drops the
// connection when one createIndexes names two or more indexes that already exist (a restart on kept data).
func (s *Store) EnsureIndexes(ctx context.Context) error {
	for _, idx := range []mongo.IndexModel{
		// Idempotent creation: one case per (tenant, request id).
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "request_id", Value: 1}}, Options: options.Index().SetUnique(true).SetName("tenant_request_id")},
		// Listing pages by id within a tenant, optionally by status.
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("tenant_id")},
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "status", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("tenant_status_id")},
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "external_ref", Value: 1}}, Options: options.Index().SetName("tenant_external_ref")},
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "updated_at", Value: 1}}, Options: options.Index().SetName("tenant_updated_at")},
		// The relay's sweep for events still pending after a crash or an outage of NATS.
		{Keys: bson.D{{Key: "outbox.at", Value: 1}}, Options: options.Index().SetName("outbox_at")},
	} {
		if _, err := s.cases.Indexes().CreateOne(ctx, idx); err != nil {
			return fmt.Errorf("creating case index: %w", err)
		}
	}
	return nil
}

// Insert writes a new case with its creation event in the outbox.
func (s *Store) Insert(ctx context.Context, c *kyc.Case, ev app.PendingEvent) (app.Stored, error) {
	doc := toDoc(c)
	doc.Outbox = []outboxDoc{toOutbox(ev)}
	release, err := s.admit(ctx)
	if err != nil {
		return app.Stored{}, err
	}
	defer release()
	if _, err := s.cases.InsertOne(ctx, doc); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return app.Stored{}, app.ErrDuplicateRequest
		}
		return app.Stored{}, fmt.Errorf("inserting case: %w", err)
	}
	return doc.stored(), nil
}

// Update replaces the case's fields and its outbox, only if the stored version is prevVersion.
func (s *Store) Update(ctx context.Context, c *kyc.Case, prevVersion int64, outbox []app.PendingEvent) (app.Stored, error) {
	doc := toDoc(c)
	doc.Outbox = make([]outboxDoc, len(outbox))
	for i, ev := range outbox {
		doc.Outbox[i] = toOutbox(ev)
	}
	fields, err := setFields(doc)
	if err != nil {
		return app.Stored{}, err
	}
	unlock := s.lock(c.ID)
	defer unlock()
	release, err := s.admit(ctx)
	if err != nil {
		return app.Stored{}, err
	}
	defer release()
	var out caseDoc
	err = s.cases.FindOneAndUpdate(ctx,
		// The tenant was checked when the case was read; _id and version make the compare-and-set.
		bson.D{{Key: "_id", Value: c.ID}, {Key: "version", Value: prevVersion}},
		bson.D{{Key: "$set", Value: fields}},
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&out)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Either the case is gone (it never is: cases are only redacted) or another writer moved its version.
		return app.Stored{}, app.ErrConflict
	}
	if err != nil {
		return app.Stored{}, fmt.Errorf("updating case: %w", err)
	}
	return out.stored(), nil
}

// Get reads a case of the tenant.
func (s *Store) Get(ctx context.Context, tenant, id string) (*kyc.Case, error) {
	c, err := s.findOne(ctx, byID(id))
	if err == nil && c.Tenant != tenant {
		return nil, kyc.ErrNotFound
	}
	return c, err
}

// GetForUpdate reads a case with its outbox.
func (s *Store) GetForUpdate(ctx context.Context, tenant, id string) (app.Stored, error) {
	// The read of a write waits for a slot too: it is the first half of the write.
	release, err := s.admit(ctx)
	if err != nil {
		return app.Stored{}, err
	}
	defer release()
	var doc caseDoc
	err = s.cases.FindOne(ctx, byID(id)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) || err == nil && doc.Tenant != tenant {
		return app.Stored{}, kyc.ErrNotFound
	}
	if err != nil {
		return app.Stored{}, fmt.Errorf("reading case: %w", err)
	}
	return doc.stored(), nil
}

// GetByRequestID finds the case created by a request id.
func (s *Store) GetByRequestID(ctx context.Context, tenant, requestID string) (*kyc.Case, error) {
	return s.findOne(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: "request_id", Value: requestID}})
}

func (s *Store) findOne(ctx context.Context, filter bson.D) (*kyc.Case, error) {
	var doc caseDoc
	err := s.cases.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "outbox", Value: 0}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, kyc.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading case: %w", err)
	}
	return doc.toDomain(), nil
}

// List reads one page of a tenant's cases in id order.
func (s *Store) List(ctx context.Context, tenant string, q app.ListQuery) ([]*kyc.Case, error) {
	filter := bson.D{{Key: "tenant", Value: tenant}}
	if len(q.Statuses) > 0 {
		statuses := make(bson.A, len(q.Statuses))
		for i, st := range q.Statuses {
			statuses[i] = string(st)
		}
		filter = append(filter, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: statuses}}})
	}
	if q.ExternalRef != "" {
		filter = append(filter, bson.E{Key: "external_ref", Value: q.ExternalRef})
	}
	if !q.UpdatedAfter.IsZero() {
		filter = append(filter, bson.E{Key: "updated_at", Value: bson.D{{Key: "$gt", Value: q.UpdatedAfter}}})
	}
	if q.AfterID != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: q.AfterID}}})
	}
	cur, err := s.cases.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(int64(q.Limit)).
		SetProjection(bson.D{{Key: "outbox", Value: 0}}))
	if err != nil {
		return nil, fmt.Errorf("listing cases: %w", err)
	}
	var docs []caseDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("listing cases: %w", err)
	}
	out := make([]*kyc.Case, len(docs))
	for i, d := range docs {
		out[i] = d.toDomain()
	}
	return out, nil
}

// PendingCase is a case whose outbox is not empty, as read at Version.
type PendingCase struct {
	Tenant  string
	CaseID  string
	Version int64
	Outbox  []app.PendingEvent
}

// Pending finds cases holding events written before olderThan and still not acknowledged, oldest first.
func (s *Store) Pending(ctx context.Context, olderThan time.Time, limit int) ([]PendingCase, error) {
	cur, err := s.cases.Find(ctx,
		bson.D{{Key: "outbox.at", Value: bson.D{{Key: "$lt", Value: olderThan}}}},
		options.Find().
			SetLimit(int64(limit)).
			SetProjection(bson.D{{Key: "tenant", Value: 1}, {Key: "version", Value: 1}, {Key: "outbox", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("finding pending events: %w", err)
	}
	var docs []caseDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("finding pending events: %w", err)
	}
	out := make([]PendingCase, 0, len(docs))
	for _, d := range docs {
		out = append(out, PendingCase{Tenant: d.Tenant, CaseID: d.ID, Version: d.Version, Outbox: d.stored().Outbox})
	}
	return out, nil
}

// Clear removes acknowledged events from a case's outbox. The new outbox is $set under the version it was read at
// (FerretDB cannot $pull by a field condition); when a writer got there first, the outbox is read again.
func (s *Store) Clear(ctx context.Context, pc PendingCase, eventIDs []string) error {
	unlock := s.lock(pc.CaseID)
	defer unlock()
	release, err := s.admit(ctx)
	if err != nil {
		return err
	}
	defer release()
	version, outbox := pc.Version, pc.Outbox
	for {
		remaining := make([]outboxDoc, 0, len(outbox))
		for _, o := range outbox {
			if !slices.Contains(eventIDs, o.ID) {
				remaining = append(remaining, toOutbox(o))
			}
		}
		if len(remaining) == len(outbox) {
			return nil
		}
		res, err := s.cases.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: pc.CaseID}, {Key: "tenant", Value: pc.Tenant}, {Key: "version", Value: version}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "outbox", Value: remaining}}}})
		if err != nil {
			return fmt.Errorf("clearing published events: %w", err)
		}
		if res.MatchedCount == 1 {
			return nil
		}
		var doc caseDoc
		err = s.cases.FindOne(ctx, bson.D{{Key: "_id", Value: pc.CaseID}, {Key: "tenant", Value: pc.Tenant}},
			options.FindOne().SetProjection(bson.D{{Key: "version", Value: 1}, {Key: "outbox", Value: 1}})).Decode(&doc)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("clearing published events: %w", err)
		}
		version, outbox = doc.Version, doc.stored().Outbox
	}
}

// lock serialises this process's writes to one case (see the package comment) and returns the unlock.
func (s *Store) lock(caseID string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(caseID))
	m := &s.locks[h.Sum32()%uint32(len(s.locks))]
	m.Lock()
	return m.Unlock
}

// byID filters on _id alone: FerretDB turns only an _id equality into an indexed lookup and scans the collection
// for any other filter, even one that also names the _id. Callers check the tenant of what they read.
func byID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

// setFields is the document without _id: what an update replaces.
func setFields(doc caseDoc) (bson.D, error) {
	raw, err := bson.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding case: %w", err)
	}
	var all bson.D
	if err := bson.Unmarshal(raw, &all); err != nil {
		return nil, fmt.Errorf("encoding case: %w", err)
	}
	fields := all[:0]
	for _, e := range all {
		if e.Key != "_id" {
			fields = append(fields, e)
		}
	}
	return fields, nil
}
