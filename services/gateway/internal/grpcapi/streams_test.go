package grpcapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/logging"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/feed"
	"github.com/casekeeper/core/services/gateway/internal/notify"
)

// watchStream is the server side of one WatchCaseEvents call, without a network.
type watchStream struct {
	grpc.ServerStreamingServer[casekeeperv1.WatchCaseEventsResponse]
	ctx    context.Context
	opened chan struct{}
	// sent receives what the server sends, when set.
	sent chan *casekeeperv1.WatchCaseEventsResponse
}

func (w *watchStream) Context() context.Context { return w.ctx }
func (w *watchStream) SendHeader(metadata.MD) error {
	close(w.opened)
	return nil
}
func (w *watchStream) Send(m *casekeeperv1.WatchCaseEventsResponse) error {
	if w.sent != nil {
		w.sent <- m
	}
	return nil
}

type watch struct {
	opened chan struct{}
	done   chan error
	cancel context.CancelFunc
}

func startWatch(s *Server, p auth.Principal) watch {
	ctx, cancel := context.WithCancel(auth.WithPrincipal(context.Background(), p))
	w := watch{opened: make(chan struct{}), done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- s.WatchCaseEvents(&casekeeperv1.WatchCaseEventsRequest{}, &watchStream{ctx: ctx, opened: w.opened})
	}()
	return w
}

func (w watch) waitOpened(t *testing.T) {
	t.Helper()
	select {
	case <-w.opened:
	case err := <-w.done:
		t.Fatalf("stream ended before it opened: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not open")
	}
}

func (w watch) waitEnded(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-w.done:
		return err
	case <-time.After(within):
		t.Fatalf("stream still open after %v", within)
		return nil
	}
}

func reader(subject string, expires time.Time) auth.Principal {
	return auth.Principal{Subject: subject, ClientID: "acme-backend", Tenant: "acme", Roles: []string{auth.RoleCasesRead}, ExpiresAt: expires}
}

func streamServer() *Server {
	return &Server{Feed: &fakeFeed{}, Notifier: notify.NewHub(), Audit: &recordingAudit{}, Log: logging.Discard(), Recheck: time.Hour}
}

func TestWatchEndsWhenTheTokenExpires(t *testing.T) {
	s := streamServer()
	start := time.Now()
	w := startWatch(s, reader("s", start.Add(300*time.Millisecond)))
	w.waitOpened(t)
	defer w.cancel()
	err := w.waitEnded(t, 3*time.Second)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), "expired") {
		t.Fatalf("stream ended with %v, want UNAUTHENTICATED saying the token expired", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("stream ended after %v, before the token expired", d)
	}
}

func TestWatchRefusesATokenExpiredByTheClock(t *testing.T) {
	s := streamServer()
	now := time.Now()
	s.Now = func() time.Time { return now.Add(time.Hour) } // the token's exp is behind the clock
	w := startWatch(s, reader("s", now.Add(time.Minute)))
	defer w.cancel()
	if err := w.waitEnded(t, time.Second); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("got %v, want UNAUTHENTICATED", err)
	}
	select {
	case <-w.opened:
		t.Fatal("the stream opened for an expired token")
	default:
	}
}

func TestWatchStreamsAreCappedPerPrincipal(t *testing.T) {
	s := streamServer()
	s.MaxStreamsPerClient = 2
	later := time.Now().Add(time.Hour)
	first, second := startWatch(s, reader("s", later)), startWatch(s, reader("s", later))
	first.waitOpened(t)
	second.waitOpened(t)
	defer second.cancel()

	third := startWatch(s, reader("s", later))
	defer third.cancel()
	if err := third.waitEnded(t, time.Second); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third stream: %v, want RESOURCE_EXHAUSTED", err)
	}
	// Another principal of the same tenant has a cap of its own.
	other := startWatch(s, reader("someone-else", later))
	other.waitOpened(t)
	defer other.cancel()

	// A closed stream gives its slot back.
	first.cancel()
	if err := first.waitEnded(t, time.Second); err != nil {
		t.Fatalf("cancelled stream: %v", err)
	}
	again := startWatch(s, reader("s", later))
	again.waitOpened(t)
	again.cancel()
	_ = again.waitEnded(t, time.Second)
}

// An idle stream sends its renewed cursor now and then, past what its type filter left out; a stream that sends
// events sends no bookmarks (its events carry cursors).
func TestIdleWatchSendsBookmarks(t *testing.T) {
	f := &fakeFeed{head: 4, entries: []feed.Entry{ev(2, "case.created"), ev(4, "case.updated")}}
	s := &Server{Feed: f, Notifier: notify.NewHub(), Audit: &recordingAudit{}, Log: logging.Discard(),
		Recheck: time.Hour, BookmarkEvery: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(acmeCtx())
	defer cancel()
	ws := &watchStream{ctx: ctx, opened: make(chan struct{}), sent: make(chan *casekeeperv1.WatchCaseEventsResponse, 16)}
	done := make(chan error, 1)
	go func() {
		done <- s.WatchCaseEvents(&casekeeperv1.WatchCaseEventsRequest{Types: []string{"case.redacted"}}, ws)
	}()
	select {
	case m := <-ws.sent:
		if m.GetBookmark() == nil || m.GetEvent() != nil || position(t, m.GetBookmark().GetCursor()) != 4 {
			t.Fatalf("first message of an idle filtered stream: %v", m)
		}
		if c, _ := feed.ParseCursor(m.GetBookmark().GetCursor()); time.Since(c.Issued) > 5*time.Second {
			t.Fatalf("bookmark stamped %v", c.Issued)
		}
	case err := <-done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no bookmark from an idle stream")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stream ended with %v", err)
	}
}
