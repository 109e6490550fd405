package casekeeper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// CursorStore keeps the feed position a follower resumes from. Follow saves a cursor only after the handler has
// processed the event it belongs to (or when the server hands out a bookmark or a renewed cursor for an empty
// poll), so a store shared by two followers at once is a mistake: give each follower its own.
type CursorStore interface {
	// Load returns the stored cursor, "" when none is stored yet.
	Load(ctx context.Context) (string, error)
	// Save replaces the stored cursor; when it returns nil, a Load after a crash returns cursor.
	Save(ctx context.Context, cursor string) error
}

// DefaultCursorFile is the file FollowOptions uses when it is given no store.
const DefaultCursorFile = "casekeeper.cursor"

// FileCursorStore keeps the cursor in one file, replaced atomically: written to a temporary file in the same
// directory, synced, then renamed over the old one, so that a crash leaves either the old cursor or the new one,
// never a torn one.
type FileCursorStore struct{ path string }

// NewFileCursorStore stores the cursor at path; the directory must exist.
func NewFileCursorStore(path string) *FileCursorStore { return &FileCursorStore{path: path} }

// Load reads the cursor; a missing file is no cursor.
func (f *FileCursorStore) Load(context.Context) (string, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("casekeeper: reading the cursor: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Save writes the cursor atomically and durably.
func (f *FileCursorStore) Save(_ context.Context, cursor string) (err error) {
	dir, base := filepath.Split(f.path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("casekeeper: saving the cursor: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.WriteString(cursor + "\n"); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err != nil {
		return fmt.Errorf("casekeeper: saving the cursor: %w", err)
	}
	// The rename is durable once the directory is synced; without it a power cut may bring back the old cursor
	// (events handled twice, never lost). Not every file system syncs directories.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// MemoryCursorStore keeps the cursor in memory: for tests, and for a follower that resyncs at every start.
type MemoryCursorStore struct {
	mu     sync.Mutex
	cursor string
}

func (m *MemoryCursorStore) Load(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursor, nil
}

func (m *MemoryCursorStore) Save(_ context.Context, cursor string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cursor = cursor
	return nil
}
