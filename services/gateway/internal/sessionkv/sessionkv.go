// Package sessionkv keeps the dashboard's sessions in a NATS JetStream key-value bucket, shared by every gateway
// replica: one key per session, its history 1, the bucket's TTL the longest a session may last. The revision of a
// key is the compare-and-set token of dashboard.SessionStore.
package sessionkv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/services/gateway/internal/dashboard"
)

// Bucket is the KV bucket of the dashboard's sessions.
const Bucket = "DASHBOARD_SESSIONS"

// Config is the bucket's server-side settings.
type Config struct {
	// Replicas is how many NATS servers keep the bucket (EVENTS_STREAM_REPLICAS).
	Replicas int
	// TTL is how long a session is kept after its last write; at least dashboard.MaxSessionAge.
	TTL time.Duration
	// MaxBytes bounds the bucket; a full bucket refuses new sessions (a sign-in answers 503), never drops one.
	MaxBytes int64
}

// Store is a dashboard.SessionStore on a KV bucket.
type Store struct{ kv jetstream.KeyValue }

var _ dashboard.SessionStore = (*Store)(nil)

// Open declares the bucket (idempotently, as every replica does at start-up) and returns the store.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, opts ...natsbus.EnsureOption) (*Store, error) {
	if cfg.TTL < dashboard.MaxSessionAge {
		return nil, fmt.Errorf("sessionkv: TTL %s is shorter than a session may last (%s)", cfg.TTL, dashboard.MaxSessionAge)
	}
	kv, err := natsbus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Case-keeper Dashboard sessions, sealed with GATEWAY_SESSION_KEY",
		History:     1,
		TTL:         cfg.TTL,
		MaxBytes:    cfg.MaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Store{kv: kv}, nil
}

// Get returns the session's value and revision.
func (s *Store) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, dashboard.ErrSessionNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s get: %w", Bucket, err)
	}
	return e.Value(), e.Revision(), nil
}

// Create stores a new session; a key that exists is a conflict.
func (s *Store) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := s.kv.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, dashboard.ErrSessionConflict
	}
	if err != nil {
		return 0, fmt.Errorf("%s create: %w", Bucket, err)
	}
	return rev, nil
}

// Update writes the session if its revision is still rev.
func (s *Store) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	next, err := s.kv.Update(ctx, key, value, rev)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, dashboard.ErrSessionConflict
	}
	if err != nil {
		return 0, fmt.Errorf("%s update: %w", Bucket, err)
	}
	return next, nil
}

// Delete removes the session. Purge rather than Delete: nothing of a signed-out session is kept, not even its
// sealed tokens in the history.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.kv.Purge(ctx, key); err != nil {
		return fmt.Errorf("%s delete: %w", Bucket, err)
	}
	return nil
}
