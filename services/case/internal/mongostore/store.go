// Package mongostore is the case projection in MongoDB (or the embedded FerretDB): one document per case, the case
// after the last event the projector applied. It is a view of the CASES stream, which is the record; the projector
// writes it in batches and never moves a case back to an older version.
//
// Every read and write of one case filters on _id alone: FerretDB turns only an _id equality into an indexed lookup
// and scans the collection for any other filter, even one that also names the _id. Callers check the tenant of what
// they read. Lists filter on the tenant and use the compound indexes on MongoDB.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casekeeper/core/pkg/mongodb"
	"github.com/casekeeper/core/services/case/internal/app"
	"github.com/casekeeper/core/services/case/internal/kyc"
)

// Store implements app.Projection and the projector's writes over the "cases" collection.
type Store struct {
	cases *mongo.Collection
}

// New returns a store on the database's "cases" collection.
func New(db *mongo.Database) *Store {
	return &Store{cases: db.Collection("cases")}
}

// EnsureIndexes creates the indexes the list queries need and drops the legacy ones; it is idempotent. On FerretDB
// the list indexes are dropped instead (mongodb.EnsureIndexes): its lists scan whatever the indexes, and each of
// them costs every projector write an evaluation of its JSON expression on the old and the new document. Without
// them the projection's p50 at 500 writes/s with 100,000 cases stored went from 750 ms to 75 ms (docs/benchmarks.md).
func (s *Store) EnsureIndexes(ctx context.Context) error {
	c := s.cases
	return mongodb.EnsureIndexes(ctx, c.Database(), []mongodb.Index{
		// ListCases pages by id within a tenant, optionally by status, reference or time.
		{Collection: c, Name: "tenant_id", Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "_id", Value: 1}}},
		{Collection: c, Name: "tenant_status_id", Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "status", Value: 1}, {Key: "_id", Value: 1}}},
		{Collection: c, Name: "tenant_external_ref", Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "external_ref", Value: 1}}},
		{Collection: c, Name: "tenant_updated_at", Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "updated_at", Value: 1}}},
	},
		// Needed when the collection was the record (idempotent creation, the outbox sweep); a unique index on a
		// field the projection no longer writes would refuse the second case on MongoDB.
		mongodb.Index{Collection: c, Name: "tenant_request_id"}, mongodb.Index{Collection: c, Name: "outbox_at"})
}

// Put writes the cases of one projector batch, each only if it is newer than what the projection holds, and returns
// the version the projection holds afterwards for each case. known gives versions the caller knows the projection
// holds (it wrote them); the others are read first, by _id. The projector is one active consumer, so nothing else
// writes between the read and the write (see docs/design.md). Cases the projection does not hold yet are inserted
// together in one command.
func (s *Store) Put(ctx context.Context, cases []*kyc.Case, known map[string]int64) (map[string]int64, error) {
	held := make(map[string]int64, len(cases))
	var fresh []any
	var freshCases []*kyc.Case
	var changed []*kyc.Case
	for _, c := range cases {
		current, ok := known[c.ID]
		if !ok {
			var cur struct {
				Version int64 `bson:"version"`
			}
			err := s.cases.FindOne(ctx, byID(c.ID), options.FindOne().SetProjection(bson.D{{Key: "version", Value: 1}})).Decode(&cur)
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
				fresh = append(fresh, toDoc(c))
				freshCases = append(freshCases, c)
				continue
			case err != nil:
				return held, fmt.Errorf("reading the projected version: %w", err)
			}
			current = cur.Version
		}
		if current < c.Version {
			changed = append(changed, c)
		} else {
			held[c.ID] = current
		}
	}
	if len(fresh) > 0 {
		// Ordered: FerretDB hangs on unordered bulk writes.
		_, err := s.cases.InsertMany(ctx, fresh)
		switch {
		case err == nil:
			for _, c := range freshCases {
				held[c.ID] = c.Version
			}
		case mongo.IsDuplicateKeyError(err):
			// Another projector wrote some of them meanwhile (a handover): compare their versions again.
			again, err := s.Put(ctx, freshCases, nil)
			for id, v := range again {
				held[id] = v
			}
			if err != nil {
				return held, err
			}
		default:
			return held, fmt.Errorf("projecting new cases: %w", err)
		}
	}
	// One document per command, on _id alone; a few at once, since the store's decoding and encoding run beside
	// each other even where its writes do not.
	var (
		mu       sync.Mutex
		firstErr error
		next     = make(chan *kyc.Case)
		workers  sync.WaitGroup
	)
	for range min(replaceWorkers, len(changed)) {
		workers.Go(func() {
			for c := range next {
				_, err := s.cases.ReplaceOne(ctx, byID(c.ID), toDoc(c), options.Replace().SetUpsert(true))
				mu.Lock()
				if err == nil {
					held[c.ID] = c.Version
				} else if firstErr == nil {
					firstErr = fmt.Errorf("projecting case: %w", err)
				}
				mu.Unlock()
			}
		})
	}
	for _, c := range changed {
		next <- c
	}
	close(next)
	workers.Wait()
	return held, firstErr
}

// replaceWorkers is how many replacements of one batch are in flight at once.
const replaceWorkers = 4

// Get reads a case of the tenant.
func (s *Store) Get(ctx context.Context, tenant, id string) (*kyc.Case, error) {
	var doc caseDoc
	err := s.cases.FindOne(ctx, byID(id)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) || err == nil && doc.Tenant != tenant {
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
	if q.ApplicantName != "" {
		filter = append(filter, bson.E{Key: "applicant.full_name", Value: bson.Regex{Pattern: regexp.QuoteMeta(q.ApplicantName), Options: "i"}})
	}
	after, order := "$gt", 1
	if q.NewestFirst {
		after, order = "$lt", -1
	}
	if q.AfterID != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: after, Value: q.AfterID}}})
	}
	cur, err := s.cases.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: order}}).SetLimit(int64(q.Limit)))
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

func byID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }
