package dashboard

import (
	"bytes"
	"context"
	"sync"
)

// testKey is the session key of the tests.
var testKey = bytes.Repeat([]byte{7}, 32)

// memStore is a SessionStore for the tests of this package, with the compare-and-set of the real one
// (internal/sessionkv, tested against NATS itself).
type memStore struct {
	mu   sync.Mutex
	rev  uint64
	vals map[string]memEntry
}

type memEntry struct {
	value []byte
	rev   uint64
}

func newMemStore() *memStore { return &memStore{vals: map[string]memEntry{}} }

func (m *memStore) Get(_ context.Context, key string) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.vals[key]
	if !ok {
		return nil, 0, ErrSessionNotFound
	}
	return e.value, e.rev, nil
}

func (m *memStore) Create(_ context.Context, key string, value []byte) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.vals[key]; ok {
		return 0, ErrSessionConflict
	}
	m.rev++
	m.vals[key] = memEntry{value: value, rev: m.rev}
	return m.rev, nil
}

func (m *memStore) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.vals[key]; !ok || e.rev != rev {
		return 0, ErrSessionConflict
	}
	m.rev++
	m.vals[key] = memEntry{value: value, rev: m.rev}
	return m.rev, nil
}

func (m *memStore) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.vals, key)
	return nil
}
