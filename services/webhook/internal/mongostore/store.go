package mongostore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casekeeper/core/pkg/mongodb"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/keyring"
)

// Store is the MongoDB implementation of the service's storage.
type Store struct {
	keys       *keyring.Keyring
	endpoints  *mongo.Collection
	deliveries *mongo.Collection
	attempts   *mongo.Collection
	events     *mongo.Collection
	operations *mongo.Collection
	redactions *mongo.Collection
	health     *mongo.Collection
	// noticeSettings is one document per tenant: where its operational notices go.
	noticeSettings *mongo.Collection
}

// New uses the collections of db, sealing endpoints' secrets and header values with keys; call EnsureIndexes once
// at start-up.
func New(db *mongo.Database, keys *keyring.Keyring) *Store {
	return &Store{
		keys:           keys,
		endpoints:      db.Collection("webhook_endpoints"),
		deliveries:     db.Collection("webhook_deliveries"),
		attempts:       db.Collection("webhook_attempts"),
		events:         db.Collection("webhook_events"),
		operations:     db.Collection("webhook_operations"),
		redactions:     db.Collection("webhook_redactions"),
		health:         db.Collection("webhook_endpoint_health"),
		noticeSettings: db.Collection("webhook_notice_settings"),
	}
}

// EnsureIndexes creates the indexes the queries need; it is idempotent.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	// Named as the driver names them by default, which is what earlier versions created on MongoDB. On FerretDB
	// they are dropped instead: its queries use no index but _id, and each of them costs every write of a delivery
	// or an attempt an evaluation of its JSON expression (mongodb.EnsureIndexes).
	return mongodb.EnsureIndexes(ctx, s.deliveries.Database(), []mongodb.Index{
		{Collection: s.endpoints, Name: "tenant_1__id_1", Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "_id", Value: 1}}},
		{Collection: s.deliveries, Name: "tenant_1_created_at_-1__id_-1", Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}},
		{Collection: s.deliveries, Name: "status_1_next_attempt_at_1", Keys: bson.D{{Key: "status", Value: 1}, {Key: "next_attempt_at", Value: 1}}},
		{Collection: s.deliveries, Name: "endpoint_id_1_status_1_updated_at_1", Keys: bson.D{{Key: "endpoint_id", Value: 1}, {Key: "status", Value: 1}, {Key: "updated_at", Value: 1}}},
		{Collection: s.deliveries, Name: "event_id_1", Keys: bson.D{{Key: "event_id", Value: 1}}},
		// The retention's read of finished deliveries older than the cutoff (ExpireDeliveries).
		{Collection: s.deliveries, Name: "status_1_updated_at_1", Keys: bson.D{{Key: "status", Value: 1}, {Key: "updated_at", Value: 1}}},
		// For the scrub of a redacted case's deliveries (EraseCase).
		{Collection: s.deliveries, Name: "tenant_1_case_id_1", Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "case_id", Value: 1}}},
		{Collection: s.events, Name: "tenant_1_case_id_1", Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "case_id", Value: 1}}},
		{Collection: s.attempts, Name: "delivery_id_1_n_1", Keys: bson.D{{Key: "delivery_id", Value: 1}, {Key: "n", Value: 1}}},
	})
}

// --- endpoints ---

func (s *Store) CreateEndpoint(ctx context.Context, e delivery.Endpoint) error {
	doc, err := s.toEndpointDoc(e)
	if err != nil {
		return err
	}
	_, err = s.endpoints.InsertOne(ctx, doc)
	if mongo.IsDuplicateKeyError(err) {
		return delivery.ErrConflict
	}
	return err
}

func (s *Store) GetEndpoint(ctx context.Context, tenant, id string) (delivery.Endpoint, error) {
	var d endpointDoc
	err := s.endpoints.FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: tenant}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return delivery.Endpoint{}, delivery.ErrNotFound
	}
	if err != nil {
		return delivery.Endpoint{}, err
	}
	return s.endpoint(d)
}

// ListEndpoints returns up to limit endpoints of the tenant with ids after `after`, in id order.
func (s *Store) ListEndpoints(ctx context.Context, tenant, after string, limit int) ([]delivery.Endpoint, error) {
	filter := bson.D{{Key: "tenant", Value: tenant}}
	if after != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	return s.findEndpoints(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
}

// AllEndpoints loads every endpoint of every tenant, for the in-memory routing table.
func (s *Store) AllEndpoints(ctx context.Context) ([]delivery.Endpoint, error) {
	return s.findEndpoints(ctx, bson.D{}, options.Find())
}

func (s *Store) findEndpoints(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]delivery.Endpoint, error) {
	cur, err := s.endpoints.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	var docs []endpointDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]delivery.Endpoint, len(docs))
	for i, d := range docs {
		if out[i], err = s.endpoint(d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReplaceEndpoint writes the whole endpoint, which must exist.
func (s *Store) ReplaceEndpoint(ctx context.Context, e delivery.Endpoint) error {
	doc, err := s.toEndpointDoc(e)
	if err != nil {
		return err
	}
	res, err := s.endpoints.ReplaceOne(ctx, bson.D{{Key: "_id", Value: e.ID}, {Key: "tenant", Value: e.Tenant}}, doc)
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return delivery.ErrNotFound
	}
	return nil
}

func (s *Store) DeleteEndpoint(ctx context.Context, tenant, id string) error {
	res, err := s.endpoints.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: tenant}})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return delivery.ErrNotFound
	}
	return nil
}

// DisableEndpoint disables an endpoint unless it is already disabled; it reports whether this call disabled it, so
// that only one instance records the operational event.
func (s *Store) DisableEndpoint(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	res, err := s.endpoints.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "disabled", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "disabled", Value: true}, {Key: "disabled_reason", Value: reason},
			{Key: "updated_at", Value: now.UTC()}}}})
	if err != nil {
		return false, err
	}
	return res.ModifiedCount > 0, nil
}

// SetFailingSince starts (t not zero, only when no run is recorded) or ends (t zero) a run of failures.
func (s *Store) SetFailingSince(ctx context.Context, id string, t time.Time) error {
	var err error
	if t.IsZero() {
		_, err = s.endpoints.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "failing_since", Value: ""}}}})
	} else {
		_, err = s.endpoints.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: id}, {Key: "failing_since", Value: nil}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "failing_since", Value: t.UTC()}}}})
	}
	return err
}

// --- events and deliveries ---

// GetEvent reads an event from the store that versions before deliveries kept the event's stream position wrote
// for resends; nothing writes it any more.
func (s *Store) GetEvent(ctx context.Context, id string) (delivery.Event, error) {
	var d eventDoc
	err := s.events.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return delivery.Event{}, delivery.ErrNotFound
	}
	if err != nil {
		return delivery.Event{}, err
	}
	return delivery.Event{ID: d.ID, Tenant: d.Tenant, Type: d.Type, CaseID: d.CaseID, Version: d.Version,
		OccurredAt: d.OccurredAt, Body: d.Body}, nil
}

func ignoreDuplicates(_ any, err error) error {
	if err == nil {
		return nil
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil {
		for _, we := range bwe.WriteErrors {
			if we.Code != 11000 {
				return err
			}
		}
		return nil
	}
	if mongo.IsDuplicateKeyError(err) {
		return nil
	}
	return err
}

// ApplyOutcomes writes outcomes read from the outcome log (delivery.Outcome.Seq set) to the delivery log. It is
// shaped by what is cheap on FerretDB/SQLite, where a batch insert costs about a tenth of a millisecond per
// document and an update a few milliseconds: a delivery's record is created by its first attempt, which it embeds
// (one batch insert for all first attempts: the common case costs one insert per delivery); later attempts are
// batch-inserted into their own collection and update the record.
//
// Applying the same outcomes again changes nothing, and neither does applying an older outcome after a newer one
// (a failed batch that comes back after the next one succeeded): a record holds the position of the outcome that
// made its state (outcome_seq) and an update applies only over an older one. An update that finds no record
// creates it, so a later outcome applied before the first attempt's is not lost; the first attempt then only adds
// its embedded copy.
//
// Redactions in the batch (delivery.Outcome.Redaction) are recorded first; then every attempt of the batch whose
// case was redacted is written erased (delivery.Attempt.Erase), and last the case's records already in the log are
// scrubbed (eraseCase). The outcome log is read in order by one projector, so every outcome recorded before a
// redaction is in the database when its scrub runs, and every one after it is erased as it is written: an attempt
// that was in flight when its case was redacted does not bring the receiver's answer back.
func (s *Store) ApplyOutcomes(ctx context.Context, outs []delivery.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	var redacted []delivery.Redaction
	for _, o := range outs {
		if o.Redaction != nil {
			redacted = append(redacted, *o.Redaction)
		}
	}
	if err := s.recordRedactions(ctx, redacted); err != nil {
		return err
	}
	outs, err := s.eraseRedacted(ctx, outs)
	if err != nil {
		return err
	}
	var firsts []deliveryDoc
	var attempts []any
	for _, o := range outs {
		if o.Redaction != nil {
			continue
		}
		if o.Attempt.Number == 1 {
			d := o.State()
			if d.CreatedAt.IsZero() {
				d.CreatedAt = o.Attempt.At
			}
			doc := toDeliveryDoc(d)
			first := toAttemptDoc(d.ID, o.Attempt)
			doc.FirstAttempt = &first
			firsts = append(firsts, doc)
			continue
		}
		attempts = append(attempts, toAttemptDoc(o.Delivery.ID, o.Attempt))
	}
	if err := s.insertFirsts(ctx, firsts); err != nil {
		return err
	}
	for _, o := range outs {
		if o.Redaction == nil && o.Attempt.Number != 1 {
			if err := s.applyLater(ctx, o); err != nil {
				return err
			}
		}
	}
	if len(attempts) > 0 {
		if err := ignoreDuplicates(s.attempts.InsertMany(ctx, attempts, options.InsertMany().SetOrdered(false))); err != nil {
			return err
		}
	}
	if err := s.applyHealth(ctx, outs); err != nil {
		return err
	}
	for _, r := range redacted {
		if err := s.eraseCase(ctx, r.Tenant, r.CaseID); err != nil {
			return err
		}
	}
	return nil
}

func redactionKey(tenant, caseID string) string { return tenant + "/" + caseID }

// recordRedactions keeps every redacted case by its key, so that attempts of its deliveries written later are
// written erased. Recording one twice changes nothing.
func (s *Store) recordRedactions(ctx context.Context, rs []delivery.Redaction) error {
	if len(rs) == 0 {
		return nil
	}
	docs := make([]any, len(rs))
	for i, r := range rs {
		docs[i] = bson.D{{Key: "_id", Value: redactionKey(r.Tenant, r.CaseID)}, {Key: "tenant", Value: r.Tenant},
			{Key: "case_id", Value: r.CaseID}, {Key: "at", Value: r.At.UTC()}}
	}
	return ignoreDuplicates(s.redactions.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)))
}

// eraseRedacted erases the attempts of the batch whose case was redacted. Only attempts that carry text (every one
// that sent a body) are looked up, all in one query by _id; on FerretDB an $in is a scan of the redactions, which
// grow by one per redacted case, not with the traffic.
func (s *Store) eraseRedacted(ctx context.Context, outs []delivery.Outcome) ([]delivery.Outcome, error) {
	var keys bson.A
	for _, o := range outs {
		if o.Redaction == nil && (o.Attempt.Response != "" || o.Attempt.Error != "" || o.Attempt.RequestBody != "") {
			keys = append(keys, redactionKey(o.Delivery.Tenant, o.Delivery.CaseID))
		}
	}
	if len(keys) == 0 {
		return outs, nil
	}
	cur, err := s.redactions.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var found []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &found); err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return outs, nil
	}
	gone := make(map[string]bool, len(found))
	for _, f := range found {
		gone[f.ID] = true
	}
	erased := make([]delivery.Outcome, len(outs))
	for i, o := range outs {
		if o.Redaction == nil && gone[redactionKey(o.Delivery.Tenant, o.Delivery.CaseID)] {
			o.Attempt = o.Attempt.Erase()
		}
		erased[i] = o
	}
	return erased, nil
}

// eraseCase scrubs every attempt of the case's deliveries in the delivery log: the bodies sent, what the receiver
// answered and the error texts (a receiver may echo the body, an error may quote it), on the record (first and last attempt, last
// error) and in the attempts of their own, and deletes the events earlier versions stored for resends. The
// deliveries are found by (tenant, case id): an index on MongoDB; FerretDB, which uses no index but _id, scans the
// delivery log, which is acceptable once per redaction (a rare, deliberate act), never per delivery. The attempts
// are then point updates by _id.
func (s *Store) eraseCase(ctx context.Context, tenant, caseID string) error {
	byCase := bson.D{{Key: "tenant", Value: tenant}, {Key: "case_id", Value: caseID}}
	cur, err := s.deliveries.Find(ctx, byCase, options.Find().SetProjection(bson.D{
		{Key: "_id", Value: 1}, {Key: "attempt_count", Value: 1}, {Key: "last_error", Value: 1},
		{Key: "first_attempt", Value: 1}, {Key: "last_attempt", Value: 1}}))
	if err != nil {
		return err
	}
	var docs []deliveryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	for _, d := range docs {
		set := bson.D{}
		if d.LastError != "" {
			set = append(set, bson.E{Key: "last_error", Value: delivery.ErasedText})
		}
		for field, a := range map[string]*attemptDoc{"first_attempt": d.FirstAttempt, "last_attempt": d.LastAttempt} {
			if a != nil && (a.Response != "" || a.Error != "" || a.RequestBody != "") {
				set = append(set, bson.E{Key: field, Value: toAttemptDoc(d.ID, a.domain().Erase())})
			}
		}
		if len(set) > 0 {
			if _, err := s.deliveries.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, bson.D{{Key: "$set", Value: set}}); err != nil {
				return err
			}
		}
		for n := 2; n <= d.AttemptCount; n++ {
			// Unconditional (a successful retry then shows the erased text too): reading each attempt first would
			// cost as much as writing it, and a filter on more than the _id is a scan on FerretDB.
			if _, err := s.attempts.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID + "#" + strconv.Itoa(n)}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "response", Value: ""}, {Key: "error", Value: delivery.ErasedText},
					{Key: "request_body", Value: ""}}}}); err != nil {
				return err
			}
		}
	}
	_, err = s.events.DeleteMany(ctx, byCase)
	return err
}

// insertFirsts creates the records of first attempts. A record that exists already holds the same or a newer
// state (this outcome applied before, or a later one applied first); it only lacks the embedded first attempt in
// the second case.
func (s *Store) insertFirsts(ctx context.Context, docs []deliveryDoc) error {
	if len(docs) == 0 {
		return nil
	}
	all := make([]any, len(docs))
	for i := range docs {
		all[i] = docs[i]
	}
	_, err := s.deliveries.InsertMany(ctx, all, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if err == nil || !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return err
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 || we.Index < 0 || we.Index >= len(docs) {
			return err
		}
		d := docs[we.Index]
		var have struct {
			First *attemptDoc `bson:"first_attempt"`
		}
		if err := s.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: d.ID}}).Decode(&have); err != nil {
			return err
		}
		if have.First != nil {
			continue
		}
		if _, err := s.deliveries.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "first_attempt", Value: d.FirstAttempt}}}}); err != nil {
			return err
		}
	}
	return nil
}

// applyLater applies a later attempt over an older state. Every filter is the _id alone: FerretDB turns that into a
// primary-key lookup and scans the collection for anything more, even a filter that also names the _id. So the
// position is compared after a read by _id; that is safe because one projector writes at a time (the consumer is
// pinned), as for the case projection.
func (s *Store) applyLater(ctx context.Context, o delivery.Outcome) error {
	d := o.State()
	byID := bson.D{{Key: "_id", Value: d.ID}}
	var have struct {
		Seq int64 `bson:"outcome_seq"`
	}
	err := s.deliveries.FindOne(ctx, byID, options.FindOne().SetProjection(bson.D{{Key: "outcome_seq", Value: 1}})).Decode(&have)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Its first attempt is not applied yet (that round failed and comes back): the record starts here.
		if d.CreatedAt.IsZero() {
			d.CreatedAt = d.UpdatedAt
		}
		doc := toDeliveryDoc(d)
		last := toAttemptDoc(d.ID, o.Attempt)
		doc.LastAttempt = &last
		if _, err := s.deliveries.InsertOne(ctx, doc); !mongo.IsDuplicateKeyError(err) {
			return err
		}
		return s.applyLater(ctx, o) // created meanwhile: compare with what is there
	}
	if err != nil {
		return err
	}
	if have.Seq != 0 && uint64(have.Seq) >= o.Seq {
		return nil // the record holds this or a newer state
	}
	set := bson.D{
		{Key: "status", Value: int(d.Status)},
		{Key: "updated_at", Value: d.UpdatedAt.UTC()},
		{Key: "outcome_seq", Value: int64(o.Seq)},
		{Key: "attempt_count", Value: d.AttemptCount},
		{Key: "last_status", Value: d.LastStatus},
		{Key: "last_error", Value: d.LastError},
		{Key: "last_attempt", Value: toAttemptDoc(d.ID, o.Attempt)},
	}
	if !d.NextAttemptAt.IsZero() {
		set = append(set, bson.E{Key: "next_attempt_at", Value: d.NextAttemptAt.UTC()})
	}
	_, err = s.deliveries.UpdateOne(ctx, byID, bson.D{{Key: "$set", Value: set}})
	return err
}

func (s *Store) GetDelivery(ctx context.Context, tenant, id string) (delivery.Delivery, error) {
	// By _id alone, the tenant compared here: FerretDB scans the collection for a filter of two fields.
	var d deliveryDoc
	err := s.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) || (err == nil && d.Tenant != tenant) {
		return delivery.Delivery{}, delivery.ErrNotFound
	}
	if err != nil {
		return delivery.Delivery{}, err
	}
	out := d.domain()
	if d.FirstAttempt != nil {
		out.Attempts = append(out.Attempts, d.FirstAttempt.domain())
	}
	// Point lookups by _id (pushed down to SQL by FerretDB) instead of a query on delivery_id (a scan there).
	for n := 2; n <= d.AttemptCount; n++ {
		var a attemptDoc
		err := s.attempts.FindOne(ctx, bson.D{{Key: "_id", Value: id + "#" + strconv.Itoa(n)}}).Decode(&a)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // an attempt whose record was lost in a crash between the two writes
		}
		if err != nil {
			return delivery.Delivery{}, err
		}
		out.Attempts = append(out.Attempts, a.domain())
	}
	if n := len(out.Attempts); n > 0 {
		out.LastAttempt = &out.Attempts[n-1]
	}
	return out, nil
}

// Cursor is a position in a delivery listing, newest first.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// ListDeliveries returns the tenant's deliveries matching f, newest first, after the cursor.
func (s *Store) ListDeliveries(ctx context.Context, tenant string, f delivery.DeliveryFilter, after *Cursor, limit int) ([]delivery.Delivery, error) {
	filter := bson.D{{Key: "tenant", Value: tenant}}
	if f.EndpointID != "" {
		filter = append(filter, bson.E{Key: "endpoint_id", Value: f.EndpointID})
	}
	if f.Status != 0 {
		filter = append(filter, bson.E{Key: "status", Value: int(f.Status)})
	}
	if f.EventID != "" {
		filter = append(filter, bson.E{Key: "event_id", Value: f.EventID})
	}
	created := bson.D{}
	if !f.Since.IsZero() {
		created = append(created, bson.E{Key: "$gte", Value: f.Since.UTC()})
	}
	if !f.Until.IsZero() {
		created = append(created, bson.E{Key: "$lt", Value: f.Until.UTC()})
	}
	if len(created) > 0 {
		filter = append(filter, bson.E{Key: "created_at", Value: created})
	}
	if after != nil {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: after.CreatedAt.UTC()}}}},
			bson.D{{Key: "created_at", Value: after.CreatedAt.UTC()}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: after.ID}}}},
		}})
	}
	// A page shows each delivery's outcome; the requests its attempts sent (up to 64 KiB each) are read only for a
	// delivery's own page (GetDelivery).
	cur, err := s.deliveries.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(limit)).
		SetProjection(bson.D{{Key: "first_attempt.request_headers", Value: 0}, {Key: "first_attempt.request_body", Value: 0},
			{Key: "last_attempt.request_headers", Value: 0}, {Key: "last_attempt.request_body", Value: 0}}))
	if err != nil {
		return nil, err
	}
	var docs []deliveryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]delivery.Delivery, len(docs))
	for i, d := range docs {
		out[i] = d.domain()
	}
	return out, nil
}

// DeadSince lists an endpoint's dead deliveries that died at or after since.
func (s *Store) DeadSince(ctx context.Context, tenant, endpointID string, since time.Time, limit int) ([]delivery.Delivery, error) {
	return s.findDeliveries(ctx, bson.D{{Key: "endpoint_id", Value: endpointID}, {Key: "tenant", Value: tenant},
		{Key: "status", Value: int(delivery.StatusDead)}, {Key: "updated_at", Value: bson.D{{Key: "$gte", Value: since.UTC()}}}}, limit)
}

// Overdue lists open deliveries whose next attempt is due before `before`: candidates for the sweeper.
func (s *Store) Overdue(ctx context.Context, before time.Time, limit int) ([]delivery.Delivery, error) {
	return s.findDeliveries(ctx, bson.D{
		{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{int(delivery.StatusPending), int(delivery.StatusRetrying)}}}},
		{Key: "next_attempt_at", Value: bson.D{{Key: "$lt", Value: before.UTC()}}}}, limit)
}

func (s *Store) findDeliveries(ctx context.Context, filter bson.D, limit int) ([]delivery.Delivery, error) {
	cur, err := s.deliveries.Find(ctx, filter, options.Find().SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var docs []deliveryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]delivery.Delivery, len(docs))
	for i, d := range docs {
		out[i] = d.domain()
	}
	return out, nil
}

// RecordOperation appends an operational event.
func (s *Store) RecordOperation(ctx context.Context, op delivery.Operation) error {
	doc := bson.D{{Key: "kind", Value: op.Kind}, {Key: "tenant", Value: op.Tenant},
		{Key: "endpoint_id", Value: op.EndpointID}, {Key: "endpoint_url", Value: op.EndpointURL}, {Key: "reason", Value: op.Reason},
		{Key: "at", Value: op.At.UTC()}}
	if op.ID != "" {
		doc = append(bson.D{{Key: "_id", Value: op.ID}}, doc...)
	}
	_, err := s.operations.InsertOne(ctx, doc)
	if mongo.IsDuplicateKeyError(err) {
		return nil // recorded already: the same notice raised again after a failure
	}
	return err
}

type operationDoc struct {
	ID          any       `bson:"_id"`
	Kind        string    `bson:"kind"`
	Tenant      string    `bson:"tenant"`
	EndpointID  string    `bson:"endpoint_id"`
	EndpointURL string    `bson:"endpoint_url"`
	Reason      string    `bson:"reason"`
	At          time.Time `bson:"at"`
}

func (d operationDoc) operation() delivery.Operation {
	id, _ := d.ID.(string) // records of earlier versions have an ObjectID and no notice id
	return delivery.Operation{ID: id, Kind: d.Kind, Tenant: d.Tenant, EndpointID: d.EndpointID, EndpointURL: d.EndpointURL,
		Reason: d.Reason, At: d.At}
}

// Operations lists the operational events of a tenant, oldest first (for tests and support).
func (s *Store) Operations(ctx context.Context, tenant string) ([]delivery.Operation, error) {
	return s.findOperations(ctx, bson.D{{Key: "tenant", Value: tenant}}, options.Find().SetSort(bson.D{{Key: "at", Value: 1}}))
}

// Notices lists the tenant's operational events since a time, newest first, at most limit. Operational events are
// rare and expire with the delivery log, so the scan they are on FerretDB stays small.
func (s *Store) Notices(ctx context.Context, tenant string, since time.Time, limit int) ([]delivery.Operation, error) {
	return s.findOperations(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: "at", Value: bson.D{{Key: "$gte", Value: since.UTC()}}}},
		options.Find().SetSort(bson.D{{Key: "at", Value: -1}}).SetLimit(int64(limit)))
}

func (s *Store) findOperations(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]delivery.Operation, error) {
	cur, err := s.operations.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	var docs []operationDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]delivery.Operation, len(docs))
	for i, d := range docs {
		out[i] = d.operation()
	}
	return out, nil
}

// noticeSettingsDoc is a tenant's notice settings, the secret sealed like an endpoint's (its own data key).
type noticeSettingsDoc struct {
	Tenant    string    `bson:"_id"`
	URL       string    `bson:"url"`
	Secret    string    `bson:"secret"`
	DataKey   string    `bson:"data_key"`
	UpdatedAt time.Time `bson:"updated_at"`
}

func noticeKeyID(tenant string) string { return "notices/" + tenant }

// NoticeSettings reads the tenant's notice settings; ErrNotFound when none were ever saved.
func (s *Store) NoticeSettings(ctx context.Context, tenant string) (delivery.NoticeSettings, error) {
	var d noticeSettingsDoc
	err := s.noticeSettings.FindOne(ctx, bson.D{{Key: "_id", Value: tenant}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return delivery.NoticeSettings{}, delivery.ErrNotFound
	}
	if err != nil {
		return delivery.NoticeSettings{}, err
	}
	dk, err := s.keys.Open(noticeKeyID(tenant), d.DataKey)
	if err != nil {
		return delivery.NoticeSettings{}, err
	}
	secret, err := dk.Open("secret", d.Secret)
	if err != nil {
		return delivery.NoticeSettings{}, err
	}
	return delivery.NoticeSettings{Tenant: tenant, URL: d.URL, Secret: secret, UpdatedAt: d.UpdatedAt}, nil
}

// PutNoticeSettings writes the tenant's notice settings whole.
func (s *Store) PutNoticeSettings(ctx context.Context, n delivery.NoticeSettings) error {
	dk, wrapped, err := s.keys.NewDataKey(noticeKeyID(n.Tenant))
	if err != nil {
		return err
	}
	d := noticeSettingsDoc{Tenant: n.Tenant, URL: n.URL, Secret: dk.Seal("secret", n.Secret), DataKey: wrapped, UpdatedAt: n.UpdatedAt.UTC()}
	_, err = s.noticeSettings.ReplaceOne(ctx, bson.D{{Key: "_id", Value: n.Tenant}}, d, options.Replace().SetUpsert(true))
	return err
}

// Reseal rewrites the sealed fields of every endpoint whose values are plaintext (rows from before sealing) or
// wrapped by an old key, so that a key rotation completes at start-up instead of at each endpoint's next change.
// Only those fields are written, and only while the row still has the data key that was read: a concurrent write
// has sealed it already.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	cur, err := s.endpoints.Find(ctx, bson.D{})
	if err != nil {
		return 0, err
	}
	var docs []endpointDoc
	if err := cur.All(ctx, &docs); err != nil {
		return 0, err
	}
	n := 0
	for _, d := range docs {
		if keyring.Wrapped(d.DataKey) == s.keys.CurrentID() {
			continue
		}
		e, err := s.endpoint(d)
		if err != nil {
			return n, err
		}
		next, err := s.toEndpointDoc(e)
		if err != nil {
			return n, err
		}
		res, err := s.endpoints.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "data_key", Value: nullable(d.DataKey)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "data_key", Value: next.DataKey}, {Key: "headers", Value: next.Headers},
				{Key: "secrets", Value: next.Secrets}}}})
		if err != nil {
			return n, err
		}
		n += int(res.ModifiedCount)
	}
	return n, nil
}

// nullable matches a missing field for the empty string.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
