package casekeeper

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// The SSE follower against a scripted stream: "latest" is resolved to a cursor first, comments and retry lines are ignored, an event is handed over and
// its id saved, a bookmark is saved without the handler, and a stream that ends with an UNAUTHENTICATED error
// event is reopened at once with a new token and Last-Event-ID set to the last position.
func TestSSEFollower(t *testing.T) {
	var (
		mu       sync.Mutex
		requests []*http.Request
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/events" && r.URL.Query().Get("after") == Latest {
			// "latest" is made a cursor before a stream is opened.
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"events":[],"next_cursor":"c0"}`)
			return
		}
		mu.Lock()
		requests = append(requests, r)
		n := len(requests)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		switch n {
		case 1:
			fmt.Fprint(w, "retry: 2000\n\n: keep-alive\n\n")
			fmt.Fprint(w, "id: c1\nevent: case.created\ndata: {\"id\":\"e1\",\"type\":\"case.created\",\"cursor\":\"c1\",\"future_field\":1}\n\n")
			fmt.Fprint(w, "id: c2\nevent: bookmark\ndata: {\"cursor\":\"c2\"}\n\n")
			fmt.Fprint(w, "event: error\ndata: {\"code\":16,\"message\":\"access token expired\"}\n\n")
		default:
			fmt.Fprint(w, "id: c3\nevent: case.updated\ndata: {\"id\":\"e3\",\"type\":\"case.updated\",\"cursor\":\"c3\"}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	defer srv.Close()

	var issued atomic.Int64
	src := tokenFunc(func() (*oauth2.Token, error) {
		n := issued.Add(1)
		return &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", n), Expiry: time.Now().Add(time.Hour)}, nil
	})
	c, err := New(WithAPI(srv.URL), WithTokenSource(src), WithReconnectBackoff(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	store := &MemoryCursorStore{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []string
	err = c.Follow(ctx, FollowOptions{Via: ViaSSE, Cursor: store, After: Latest}, func(_ context.Context, ev *casekeeperv1.CaseEvent) error {
		got = append(got, ev.GetId())
		if len(got) == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("follow: %v", err)
	}
	if strings.Join(got, ",") != "e1,e3" {
		t.Fatalf("handled %v, want e1,e3", got)
	}
	if cur, _ := store.Load(t.Context()); cur != "c3" {
		t.Fatalf("stored %q, want c3", cur)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(requests) != 2 {
		t.Fatalf("%d connections, want 2", len(requests))
	}
	first, second := requests[0], requests[1]
	if first.URL.Query().Get("after") != "c0" || first.Header.Get("Last-Event-ID") != "c0" || first.Header.Get("Authorization") != "Bearer tok-1" {
		t.Fatalf("first connection: %s %v", first.URL, first.Header)
	}
	// Reopened at once (the backoff is an hour), with a new token, after the bookmark's position.
	if second.Header.Get("Last-Event-ID") != "c2" || second.URL.Query().Get("after") != "c2" || second.Header.Get("Authorization") != "Bearer tok-2" {
		t.Fatalf("reconnect: %s %v", second.URL, second.Header)
	}
}

type tokenFunc func() (*oauth2.Token, error)

func (f tokenFunc) Token() (*oauth2.Token, error) { return f() }
