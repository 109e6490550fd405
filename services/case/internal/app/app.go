// Package app holds the case service's use cases: create, read, list and change cases.
//
// The case's subject on the CASES stream is its record. A write reads the case from the last event on that subject,
// applies the change with the pure domain (kyc), and appends the next event on the condition that the subject's
// last sequence is still the one it read. JetStream accepts exactly one successor per sequence, whichever replica
// sends it: that is the compare-and-set, and the stream's acknowledgement is the durability point. MongoDB holds a
// projection of the stream for queries and for cases whose events have aged out of the stream.
package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/casekeeper/core/services/case/internal/kyc"
)

// Sentinel errors of the ports below; the gRPC edge maps them to status codes.
var (
	// ErrConflict means the case's subject moved on since it was read: another write won.
	ErrConflict = errors.New("case changed concurrently")
	// ErrUnavailable means the stream could not take the write now; nothing was written.
	ErrUnavailable = errors.New("event stream unavailable")
	// ErrContention means a write lost the race to other writers of the same case too often in a row.
	ErrContention = errors.New("too many concurrent writes to the case")
)

// Record is a case as its subject holds it: the case after its last event, and that event's stream sequence (0
// when the subject holds no event, for a new case or one whose events aged out of the stream).
type Record struct {
	Case *kyc.Case
	Seq  uint64
	// EventID is the id of the event the record was read from.
	EventID string
}

// Log is the case's record on the stream.
type Log interface {
	// Last reads the case from the last event on its subject; kyc.ErrNotFound when the subject holds none.
	Last(ctx context.Context, tenant, id string) (Record, error)
	// Append publishes the event of a change only if the subject's last sequence is still prevSeq (0: the subject
	// must be empty). ErrConflict when another event came first; ErrUnavailable when the stream cannot take it.
	Append(ctx context.Context, ev Event, prevSeq uint64) (seq uint64, err error)
}

// Event is one change to append: its id (also the message id the stream deduplicates by), its type, and the case
// after the change.
type Event struct {
	ID   string
	Type string
	At   time.Time
	Case *kyc.Case
}

// Projection is the query store, fed from the stream.
type Projection interface {
	Get(ctx context.Context, tenant, id string) (*kyc.Case, error)
	List(ctx context.Context, tenant string, q ListQuery) ([]*kyc.Case, error)
}

// Requests records which case a creation request made, so a retry finds it.
type Requests interface {
	// Claim records caseID for (tenant, requestID) unless a case was recorded first; it returns the recorded id.
	Claim(ctx context.Context, tenant, requestID, caseID string) (string, error)
}

// ListQuery filters and pages a tenant's cases, ordered by id (creation order).
type ListQuery struct {
	Statuses     []kyc.Status
	ExternalRef  string
	UpdatedAfter time.Time
	// ApplicantName matches applicants whose full name contains it, ignoring case.
	ApplicantName string
	// NewestFirst lists by id descending (ids are UUIDv7: creation order); AfterID is then the last id of the
	// previous page in that order.
	NewestFirst bool
	AfterID     string
	Limit       int
}

// maxAttempts bounds how often a write re-reads and re-applies after losing the compare-and-set.
const maxAttempts = 64

// Cases is the application: the table of contents of what the case service does.
type Cases struct {
	log        Log
	projection Projection
	requests   Requests
	recent     *recentRecords
	now        func() time.Time
	newID      func() string
	conflicts  func()
}

// New wires the use cases. conflicts, when not nil, is called for every lost compare-and-set (a metric).
func New(log Log, projection Projection, requests Requests, conflicts func()) *Cases {
	if conflicts == nil {
		conflicts = func() {}
	}
	return &Cases{
		log: log, projection: projection, requests: requests, conflicts: conflicts, recent: newRecentRecords(8192),
		// Millisecond precision: what MongoDB stores, so a case read back from the projection equals the case
		// returned.
		now:   func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
		newID: func() string { return uuid.Must(uuid.NewV7()).String() },
	}
}

// Create opens a draft case. A retry with the same request id returns the case the first attempt created and emits
// nothing more, across replicas: the request id is claimed first (one winner), and the creation event is appended
// only to an empty subject (one successor), so even a retry that finds the claim of a creator that crashed before
// appending completes that same case instead of making a second one.
func (a *Cases) Create(ctx context.Context, tenant string, in kyc.NewCase) (*kyc.Case, error) {
	now := a.now()
	id := a.newID()
	c, err := kyc.Create(id, tenant, in, a.newID, now)
	if err != nil {
		return nil, err
	}
	if in.RequestID != "" {
		owner, err := a.requests.Claim(ctx, tenant, in.RequestID, id)
		if err != nil {
			return nil, err
		}
		if owner != id {
			if existing, err := a.read(ctx, tenant, owner); err == nil {
				return existing.Case, nil
			} else if !errors.Is(err, kyc.ErrNotFound) {
				return nil, err
			}
			// The first attempt claimed the id but its event is not on the stream (yet): create that case.
			c.ID = owner
		}
	}
	ev := Event{ID: a.newID(), Type: kyc.EventCreated, At: now, Case: c}
	seq, err := a.log.Append(ctx, ev, 0)
	if errors.Is(err, ErrConflict) {
		// A concurrent attempt of the same request appended first: its case is the answer.
		existing, err := a.read(ctx, tenant, c.ID)
		if err != nil {
			return nil, err
		}
		return existing.Case, nil
	}
	if err != nil {
		return nil, err
	}
	a.recent.put(Record{Case: c, Seq: seq, EventID: ev.ID})
	return c, nil
}

// Get reads one case of the tenant: from its subject when the stream holds it (always current), else from the
// projection (a case whose events aged out of the stream, or any case while the stream cannot be reached: a read
// may then be a little behind, a write never is).
func (a *Cases) Get(ctx context.Context, tenant, id string) (*kyc.Case, error) {
	rec, err := a.read(ctx, tenant, id)
	if errors.Is(err, ErrUnavailable) {
		return a.projection.Get(ctx, tenant, id)
	}
	if err != nil {
		return nil, err
	}
	return rec.Case, nil
}

// List reads one page of the tenant's cases from the projection.
func (a *Cases) List(ctx context.Context, tenant string, q ListQuery) ([]*kyc.Case, error) {
	return a.projection.List(ctx, tenant, q)
}

// Apply runs a change on a case. With expectedVersion > 0 the change applies only to that version (optimistic
// concurrency for the caller); otherwise a lost race is re-read and re-applied, a bounded number of times.
func (a *Cases) Apply(ctx context.Context, tenant, id string, expectedVersion int64, change kyc.Change) (*kyc.Case, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		rec, cached := a.recent.get(tenant, id)
		if cached && expectedVersion > 0 && rec.Case.Version != expectedVersion {
			// The caller may know a version another replica wrote: only the subject can refuse it.
			cached = false
		}
		if !cached {
			var err error
			if rec, err = a.read(ctx, tenant, id); err != nil {
				return nil, err
			}
		}
		current := rec.Case
		if expectedVersion > 0 && current.Version != expectedVersion {
			return nil, fmt.Errorf("%w: expected %d, case is at %d", kyc.ErrVersionMismatch, expectedVersion, current.Version)
		}
		now := a.now()
		next := current.Clone()
		eventType, err := change(next, now)
		if err != nil && cached {
			// Refused on a guess: the subject may hold a case that accepts the change.
			a.recent.drop(tenant, id)
			continue
		}
		if err != nil {
			return nil, err
		}
		next.Version = current.Version + 1
		next.UpdatedAt = now
		ev := Event{ID: a.newID(), Type: eventType, At: now, Case: next}
		seq, err := a.log.Append(ctx, ev, rec.Seq)
		if errors.Is(err, ErrConflict) {
			a.conflicts()
			a.recent.drop(tenant, id)
			if cached {
				// Only the guess was stale: read the subject and try again at once.
				continue
			}
			if expectedVersion > 0 {
				return nil, fmt.Errorf("%w: the case changed concurrently", kyc.ErrVersionMismatch)
			}
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			a.recent.drop(tenant, id)
			return nil, err
		}
		a.recent.put(Record{Case: next, Seq: seq, EventID: ev.ID})
		return next, nil
	}
	return nil, ErrContention
}

// NewID returns a fresh identifier for documents and checks.
func (a *Cases) NewID() string { return a.newID() }

// read finds the case's record: its subject, or the projection when the subject holds nothing (Seq 0, so that the
// next write is still the one successor of an empty subject).
func (a *Cases) read(ctx context.Context, tenant, id string) (Record, error) {
	rec, err := a.log.Last(ctx, tenant, id)
	if err == nil {
		return rec, nil
	}
	if !errors.Is(err, kyc.ErrNotFound) {
		return Record{}, err
	}
	c, err := a.projection.Get(ctx, tenant, id)
	if err != nil {
		return Record{}, err
	}
	return Record{Case: c}, nil
}

// backoff spreads retries of writers that lost a race, so they do not collide again in lockstep.
func backoff(ctx context.Context, attempt int) error {
	max := 200 * time.Microsecond << min(attempt, 5)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(rand.Int64N(int64(max)) + 1)):
		return nil
	}
}
