// Package app holds the case service's use cases: create, read, list and change cases. Every change is written
// together with its event in one single-document update (the outbox) and then handed to the relay for publishing.
package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/casekeeper/core/services/case/internal/kyc"
)

// PendingEvent is an event written in the case's outbox and not yet acknowledged by JetStream.
type PendingEvent struct {
	ID      string
	Type    string
	Version int64
	At      time.Time
	// Payload is the encoded casekeeper.v1.CaseEvent.
	Payload []byte
}

// Stored is a case as the store holds it: the case and the events still waiting to be published, oldest first.
type Stored struct {
	Case   *kyc.Case
	Outbox []PendingEvent
}

// ErrConflict means the case changed since it was read (another writer won the race).
var ErrConflict = errors.New("case changed concurrently")

// ErrDuplicateRequest means a case with the same request id exists for the tenant.
var ErrDuplicateRequest = errors.New("request id already used")

// Store keeps cases with their outbox. Insert and Update are single-document atomic.
type Store interface {
	Insert(ctx context.Context, c *kyc.Case, ev PendingEvent) (Stored, error)
	// Update writes c with outbox as its outbox, only if the stored version is still prevVersion.
	Update(ctx context.Context, c *kyc.Case, prevVersion int64, outbox []PendingEvent) (Stored, error)
	Get(ctx context.Context, tenant, id string) (*kyc.Case, error)
	// GetForUpdate reads a case with its outbox.
	GetForUpdate(ctx context.Context, tenant, id string) (Stored, error)
	GetByRequestID(ctx context.Context, tenant, requestID string) (*kyc.Case, error)
	List(ctx context.Context, tenant string, q ListQuery) ([]*kyc.Case, error)
}

// Encoder turns a case change into the bytes of its event envelope.
type Encoder func(eventID, eventType string, c *kyc.Case, at time.Time) ([]byte, error)

// Publisher sends freshly written outbox entries to the stream right away, so they need not wait for a sweep. It
// never fails the write: what it cannot publish now stays in the outbox for the relay's sweep.
type Publisher interface {
	Publish(ctx context.Context, tenant, caseID string, version int64, outbox []PendingEvent)
	// Acknowledged reports whether JetStream has acknowledged the event, so that the next write of its case can
	// drop it from the outbox in the same update (no separate write to clear it).
	Acknowledged(eventID string) bool
}

// ListQuery filters and pages a tenant's cases, ordered by id (creation order).
type ListQuery struct {
	Statuses     []kyc.Status
	ExternalRef  string
	UpdatedAfter time.Time
	AfterID      string
	Limit        int
}

// Cases is the application: the table of contents of what the case service does.
type Cases struct {
	writing   keyedMutex
	store     Store
	encode    Encoder
	publisher Publisher
	now       func() time.Time
	newID     func() string
}

// New wires the use cases.
func New(store Store, encode Encoder, publisher Publisher) *Cases {
	return &Cases{
		store: store, encode: encode, publisher: publisher,
		// Millisecond precision: what MongoDB stores, so a case read back equals the case returned.
		now:   func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
		newID: func() string { return uuid.Must(uuid.NewV7()).String() },
	}
}

// Create opens a draft case. A retry with the same request id returns the case created first and emits nothing.
func (a *Cases) Create(ctx context.Context, tenant string, in kyc.NewCase) (*kyc.Case, error) {
	if in.RequestID != "" {
		if c, err := a.store.GetByRequestID(ctx, tenant, in.RequestID); err == nil {
			return c, nil
		} else if !errors.Is(err, kyc.ErrNotFound) {
			return nil, err
		}
	}
	now := a.now()
	c, err := kyc.Create(a.newID(), tenant, in, a.newID, now)
	if err != nil {
		return nil, err
	}
	if c.RequestID == "" {
		// Every case gets a request id so that the (tenant, request_id) unique index needs no partial filter.
		c.RequestID = c.ID
	}
	ev, err := a.event(kyc.EventCreated, c, now)
	if err != nil {
		return nil, err
	}
	stored, err := a.store.Insert(ctx, c, ev)
	if errors.Is(err, ErrDuplicateRequest) {
		// Lost a race with a concurrent retry of the same request: the winner's case is the answer.
		return a.store.GetByRequestID(ctx, tenant, in.RequestID)
	}
	if err != nil {
		return nil, err
	}
	a.publisher.Publish(ctx, tenant, c.ID, stored.Case.Version, stored.Outbox)
	return stored.Case, nil
}

// Get reads one case of the tenant.
func (a *Cases) Get(ctx context.Context, tenant, id string) (*kyc.Case, error) {
	return a.store.Get(ctx, tenant, id)
}

// List reads one page of the tenant's cases.
func (a *Cases) List(ctx context.Context, tenant string, q ListQuery) ([]*kyc.Case, error) {
	return a.store.List(ctx, tenant, q)
}

// Apply runs a change on a case. With expectedVersion > 0 the change applies only to that version (optimistic
// concurrency for the caller); otherwise a lost race is retried on the fresh case until the context ends, so
// concurrent writers never lose an update.
func (a *Cases) Apply(ctx context.Context, tenant, id string, expectedVersion int64, change kyc.Change) (*kyc.Case, error) {
	// Writers of one case in this process queue up instead of racing: a lost race costs a read and a write, and
	// twenty writers racing on one case would mostly lose. The version check still guards against other processes.
	unlock, err := a.writing.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		stored, err := a.store.GetForUpdate(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		current := stored.Case
		if expectedVersion > 0 && current.Version != expectedVersion {
			return nil, fmt.Errorf("%w: expected %d, case is at %d", kyc.ErrVersionMismatch, expectedVersion, current.Version)
		}
		now := a.now()
		next := current.Clone()
		eventType, err := change(next, now)
		if err != nil {
			return nil, err
		}
		next.Version = current.Version + 1
		next.UpdatedAt = now
		ev, err := a.event(eventType, next, now)
		if err != nil {
			return nil, err
		}
		outbox := make([]PendingEvent, 0, len(stored.Outbox)+1)
		for _, pending := range stored.Outbox {
			if !a.publisher.Acknowledged(pending.ID) {
				outbox = append(outbox, pending)
			}
		}
		stored, err = a.store.Update(ctx, next, current.Version, append(outbox, ev))
		if errors.Is(err, ErrConflict) {
			if expectedVersion > 0 {
				return nil, fmt.Errorf("%w: the case changed concurrently", kyc.ErrVersionMismatch)
			}
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		// Still holding the case's lock: events of one case leave this process in version order.
		a.publisher.Publish(ctx, tenant, id, stored.Case.Version, stored.Outbox)
		return stored.Case, nil
	}
}

// NewID returns a fresh identifier for documents and checks.
func (a *Cases) NewID() string { return a.newID() }

func (a *Cases) event(eventType string, c *kyc.Case, at time.Time) (PendingEvent, error) {
	id := a.newID()
	payload, err := a.encode(id, eventType, c, at)
	if err != nil {
		return PendingEvent{}, err
	}
	return PendingEvent{ID: id, Type: eventType, Version: c.Version, At: at, Payload: payload}, nil
}

// backoff spreads retries of writers that lost a race, so they do not collide again in lockstep.
func backoff(ctx context.Context, attempt int) error {
	max := time.Millisecond << min(attempt, 6)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(rand.Int64N(int64(max)) + 1)):
		return nil
	}
}

// keyedMutex serialises work per key; waiting respects the context.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	ch      chan struct{}
	waiters int
}

func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l, ok := k.locks[key]
	if !ok {
		l = &keyedLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.waiters++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		l.waiters--
		if l.waiters == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
