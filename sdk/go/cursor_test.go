package casekeeper

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Every CursorStore passes the same checks.
func TestCursorStores(t *testing.T) {
	stores := map[string]func(t *testing.T) (CursorStore, func() CursorStore){
		"file": func(t *testing.T) (CursorStore, func() CursorStore) {
			path := filepath.Join(t.TempDir(), "feed.cursor")
			return NewFileCursorStore(path), func() CursorStore { return NewFileCursorStore(path) }
		},
		"memory": func(t *testing.T) (CursorStore, func() CursorStore) {
			m := &MemoryCursorStore{}
			return m, func() CursorStore { return m }
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, reopen := open(t)
			if c, err := s.Load(ctx); err != nil || c != "" {
				t.Fatalf("empty store: %q, %v", c, err)
			}
			for _, c := range []string{"AQAAAAAAAAAFm0hcSA", "AQAAAAAAAAAG7kRo3g"} {
				if err := s.Save(ctx, c); err != nil {
					t.Fatal(err)
				}
				if got, err := reopen().Load(ctx); err != nil || got != c {
					t.Fatalf("after saving %q: %q, %v", c, got, err)
				}
			}
		})
	}
}

// A save replaces the file by rename and leaves no temporary file behind.
func TestFileCursorStoreLeavesOneFile(t *testing.T) {
	dir := t.TempDir()
	s := NewFileCursorStore(filepath.Join(dir, "c"))
	for range 3 {
		if err := s.Save(context.Background(), "x"); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "c" {
		t.Fatalf("directory holds %v", entries)
	}
	if err := NewFileCursorStore(filepath.Join(dir, "missing", "c")).Save(context.Background(), "x"); err == nil {
		t.Fatal("saving into a missing directory succeeded")
	}
}
