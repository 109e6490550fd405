package natsqueue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/natsbus"
)

// ErasedBucket is the KV bucket of the cases redacted lately, one key per case ("<tenant>.<case id>"). A first
// attempt carries its event in the queue; when it comes to be sent after its case was redacted (its endpoint paused
// or behind), the deliverer sends the thin form instead. The fan-out writes a key on every case.redacted; every
// replica watches the bucket into memory, so the check on the hot path is a map lookup, not a request.
const ErasedBucket = "WEBHOOK_ERASED_CASES"

// erasedTTL outlives anything the queue can still hold of a redacted case (its messages live MaxAge at most).
const erasedTTL = MaxAge + 24*time.Hour

// ErasedConfig is the bucket.
func ErasedConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      ErasedBucket,
		Description: "Cases redacted in the last 15 days: a queued first attempt of theirs is sent in the thin form.",
		History:     1,
		TTL:         erasedTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// ErasedCases is this replica's copy of the bucket, kept current by Run.
type ErasedCases struct {
	kv      jetstream.KeyValue
	watcher jetstream.KeyWatcher
	now     func() time.Time

	mu    sync.RWMutex
	cases map[string]time.Time // key → when it was redacted
}

// OpenErasedCases declares the bucket and reads what it holds, so that the replica knows every redaction before it
// sends anything.
func OpenErasedCases(ctx context.Context, js jetstream.JetStream, replicas int) (*ErasedCases, error) {
	kv, err := natsbus.EnsureKeyValue(ctx, js, ErasedConfig(replicas))
	if err != nil {
		return nil, err
	}
	// The watch outlives ctx (the start-up's): Run, and the end of it, own it.
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", ErasedBucket, err)
	}
	e := &ErasedCases{kv: kv, watcher: w, now: time.Now, cases: map[string]time.Time{}}
	for {
		select {
		case u, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("watching %s: the watch ended", ErasedBucket)
			}
			if u == nil { // every key held so far has been delivered
				return e, nil
			}
			e.apply(u)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, fmt.Errorf("reading %s: %w", ErasedBucket, ctx.Err())
		}
	}
}

// Stop ends the watch; Run ends it too.
func (e *ErasedCases) Stop() { _ = e.watcher.Stop() }

func erasedKey(tenant, caseID string) string { return tenant + "." + caseID }

// Mark records that a case was redacted. Writing it again is harmless.
func (e *ErasedCases) Mark(ctx context.Context, tenant, caseID string) error {
	if _, err := e.kv.Put(ctx, erasedKey(tenant, caseID), nil); err != nil {
		return fmt.Errorf("recording the redaction of case %s: %w", caseID, err)
	}
	return nil
}

// Has reports whether the case was redacted (as far as this replica has heard: within milliseconds of the mark).
func (e *ErasedCases) Has(tenant, caseID string) bool {
	e.mu.RLock()
	at, ok := e.cases[erasedKey(tenant, caseID)]
	e.mu.RUnlock()
	return ok && e.now().Sub(at) < erasedTTL
}

func (e *ErasedCases) apply(u jetstream.KeyValueEntry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u.Operation() == jetstream.KeyValuePut {
		e.cases[u.Key()] = u.Created()
	} else {
		delete(e.cases, u.Key())
	}
}

// Run follows the bucket until ctx ends. The bucket's TTL removes old keys without telling watchers, so the copy
// drops them by age itself, hourly.
func (e *ErasedCases) Run(ctx context.Context) error {
	defer e.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-e.watcher.Updates():
			if !ok {
				return errors.New(ErasedBucket + ": the watch ended")
			}
			if u != nil {
				e.apply(u)
			}
		case <-prune.C:
			e.mu.Lock()
			for k, at := range e.cases {
				if e.now().Sub(at) >= erasedTTL {
					delete(e.cases, k)
				}
			}
			e.mu.Unlock()
		}
	}
}
