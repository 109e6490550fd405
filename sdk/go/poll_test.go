package casekeeper

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// Polls that find nothing start at least X-Poll-Interval apart, a 429 waits for its Retry-After, and the renewed
// cursor of every empty answer is stored.
func TestPollHonoursPollIntervalAndRetryAfter(t *testing.T) {
	var (
		mu     sync.Mutex
		times  []time.Time
		afters []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times, afters = append(times, time.Now()), append(afters, r.URL.Query().Get("after"))
		n := len(times)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n == 2 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"code":8,"message":"slow down"}`)
			return
		}
		w.Header().Set("X-Poll-Interval", "1")
		fmt.Fprintf(w, `{"events":[],"next_cursor":"c%d"}`, n)
	}))
	defer srv.Close()
	c, err := New(WithAPI(srv.URL), WithToken("t"), WithReconnectBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	store := &MemoryCursorStore{}
	ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
	defer cancel()
	err = c.Follow(ctx, FollowOptions{Cursor: store, Wait: -1}, func(context.Context, *casekeeperv1.CaseEvent) error {
		return errors.New("no event was served")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("follow: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// 0 s: c1; ~1 s: 429 (Retry-After 1); ~2 s: c3; ~3 s: c4.
	if len(times) < 3 || len(times) > 4 {
		t.Fatalf("%d polls in 3.5 s, want 3 or 4 (one a second)", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 950*time.Millisecond {
			t.Fatalf("poll %d came %s after the one before", i+1, gap)
		}
	}
	if afters[0] != "" || afters[1] != "c1" || afters[2] != "c1" {
		t.Fatalf("polled after %v, want \"\", c1, c1 (the 429 moved nothing)", afters)
	}
	if cur, _ := store.Load(t.Context()); cur != fmt.Sprintf("c%d", len(times)) {
		t.Fatalf("stored %q after %d polls", cur, len(times))
	}
}
