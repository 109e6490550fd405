package audit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/logging"
)

type slowStore struct {
	mu      sync.Mutex
	batches [][]Record
	err     error
}

func (s *slowStore) Append(_ context.Context, recs []Record) error {
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, recs)
	return s.err
}

func (s *slowStore) List(context.Context, Page) ([]Record, error) { return nil, nil }

func TestGroupCommitBatchesConcurrentReads(t *testing.T) {
	st := &slowStore{}
	w := NewWriter(st, logging.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Record(context.Background(), Record{Tenant: "acme", API: "x", CaseIDs: []string{"c"}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	cancel()
	<-done
	total := 0
	for _, b := range st.batches {
		total += len(b)
	}
	if total != 200 {
		t.Fatalf("stored %d records, want 200", total)
	}
	if len(st.batches) > 50 {
		t.Fatalf("200 concurrent reads took %d inserts: no batching", len(st.batches))
	}
}

func TestFailedWriteFailsTheRead(t *testing.T) {
	st := &slowStore{err: errors.New("down")}
	w := NewWriter(st, logging.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	if err := w.Record(context.Background(), Record{Tenant: "acme"}); err == nil {
		t.Fatal("record reported stored")
	}
}

func TestPageTokenRoundTrip(t *testing.T) {
	at := time.Now().UTC().Truncate(time.Millisecond)
	r := Record{ID: NewID(at), At: at}
	p, err := NewPage("acme", time.Time{}, 0, NextToken(r))
	if err != nil || !p.AfterAt.Equal(at) || p.AfterID != r.ID || p.Limit != DefaultPageSize {
		t.Fatalf("page %+v %v", p, err)
	}
	if _, err := NewPage("acme", time.Time{}, 0, "junk"); err == nil {
		t.Fatal("junk token accepted")
	}
}
