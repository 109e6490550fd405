package grpcapi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/logging"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/audit"
	"github.com/casekeeper/core/services/gateway/internal/feed"
	"github.com/casekeeper/core/services/gateway/internal/notify"
)

type fakeCases struct {
	casekeeperv1.CaseServiceClient
	tenant string
	err    error
}

func (f fakeCases) GetCase(_ context.Context, r *casekeeperv1.GetCaseRequest, _ ...grpc.CallOption) (*casekeeperv1.GetCaseResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &casekeeperv1.GetCaseResponse{Case: &casekeeperv1.Case{Id: r.GetId(), Tenant: f.tenant}}, nil
}

type fakeFeed struct {
	mu          sync.Mutex
	head        int64
	entries     []feed.Entry
	afterCalls  int
	lastQueries []feed.Query
}

func (f *fakeFeed) Oldest(context.Context, string) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.entries) == 0 {
		return 0, false, nil
	}
	return f.entries[0].Seq, true, nil
}

func (f *fakeFeed) Head(context.Context, string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head, nil
}

func (f *fakeFeed) After(_ context.Context, q feed.Query) ([]feed.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afterCalls++
	f.lastQueries = append(f.lastQueries, q)
	var out []feed.Entry
	for _, e := range f.entries {
		if e.Seq > q.After && q.Wants(e.Event.GetType()) && len(out) < q.Limit {
			out = append(out, e)
		}
	}
	return out, nil
}

type recordingAudit struct {
	recs []audit.Record
	err  error
}

func (r *recordingAudit) Record(_ context.Context, rec audit.Record) error {
	if r.err != nil {
		return r.err
	}
	r.recs = append(r.recs, rec)
	return nil
}

func acmeCtx() context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{Subject: "s", ClientID: "acme-backend", Tenant: "acme", Roles: []string{auth.RoleCasesRead}})
}

func TestGetCaseRefusesAnotherTenantsCaseEvenIfTheCaseServiceReturnsIt(t *testing.T) {
	a := &recordingAudit{}
	s := &Server{Cases: fakeCases{tenant: "globex"}, Audit: a, Log: logging.Discard()}
	if _, err := s.GetCase(acmeCtx(), &casekeeperv1.GetCaseRequest{Id: "c1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("got %v, want NotFound", err)
	}
	if len(a.recs) != 0 {
		t.Fatal("a refused read was recorded as an access")
	}
}

func TestGetCaseIsRecordedOrNotAnswered(t *testing.T) {
	a := &recordingAudit{}
	s := &Server{Cases: fakeCases{tenant: "acme"}, Audit: a, Log: logging.Discard()}
	if _, err := s.GetCase(acmeCtx(), &casekeeperv1.GetCaseRequest{Id: "c1"}); err != nil {
		t.Fatal(err)
	}
	if len(a.recs) != 1 || a.recs[0].CaseIDs[0] != "c1" || a.recs[0].Tenant != "acme" || a.recs[0].API != MethodGetCase {
		t.Fatalf("audit = %+v", a.recs)
	}
	s.Audit = &recordingAudit{err: errors.New("db down")}
	if _, err := s.GetCase(acmeCtx(), &casekeeperv1.GetCaseRequest{Id: "c1"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("unrecorded read answered: %v", err)
	}
}

func TestBackendErrorsDoNotLeakInternals(t *testing.T) {
	s := &Server{Cases: fakeCases{err: status.Error(codes.Unavailable, "dial tcp 10.0.0.7:9091: connection refused")}, Audit: &recordingAudit{}, Log: logging.Discard()}
	_, err := s.GetCase(acmeCtx(), &casekeeperv1.GetCaseRequest{Id: "c1"})
	if status.Code(err) != codes.Unavailable || strings.Contains(status.Convert(err).Message(), "10.0.0.7") {
		t.Fatalf("got %v", err)
	}
	s.Cases = fakeCases{err: status.Error(codes.NotFound, "case not found")}
	if _, err := s.GetCase(acmeCtx(), &casekeeperv1.GetCaseRequest{Id: "c1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("got %v", err)
	}
}

func ev(seq int64, typ string) feed.Entry {
	return feed.Entry{Seq: seq, Event: &casekeeperv1.CaseEvent{Id: "e", Type: typ, Tenant: "acme", CaseId: "c", Cursor: cursor(seq)}}
}

func cursor(seq int64) string { return feed.Cursor{Seq: seq, Issued: time.Now()}.String() }

// position is where a cursor points, whatever its stamp.
func position(t *testing.T, c string) int64 {
	t.Helper()
	got, err := feed.ParseCursor(c)
	if err != nil {
		t.Fatalf("cursor %q: %v", c, err)
	}
	return got.Seq
}

func TestEmptyPollReadsOnlyTheHead(t *testing.T) {
	f := &fakeFeed{head: 7, entries: []feed.Entry{ev(3, "case.created"), ev(7, "case.updated")}}
	a := &recordingAudit{}
	s := &Server{Feed: f, Notifier: notify.NewHub(), Audit: a, Log: logging.Discard()}
	resp, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: cursor(7)})
	if err != nil || len(resp.GetEvents()) != 0 || position(t, resp.GetNextCursor()) != 7 {
		t.Fatalf("empty poll: %v %v", resp, err)
	}
	if f.afterCalls != 0 || len(a.recs) != 0 {
		t.Fatalf("empty poll read the feed %d times and wrote %d audit records", f.afterCalls, len(a.recs))
	}
}

func TestFilteredPollMovesTheCursorToTheHead(t *testing.T) {
	f := &fakeFeed{head: 9, entries: []feed.Entry{ev(3, "case.created"), ev(9, "case.updated")}}
	s := &Server{Feed: f, Notifier: notify.NewHub(), Audit: &recordingAudit{}, Log: logging.Discard()}
	resp, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: cursor(3), Types: []string{"case.redacted"}})
	if err != nil || len(resp.GetEvents()) != 0 || position(t, resp.GetNextCursor()) != 9 {
		t.Fatalf("filtered poll: %v %v", resp, err)
	}
	// A full page does not jump: there may be more after it.
	resp, _ = s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{PageSize: 1})
	if position(t, resp.GetNextCursor()) != 3 {
		t.Fatalf("full page cursor = %s", resp.GetNextCursor())
	}
}

func TestLongPollWakesOnNotification(t *testing.T) {
	f := &fakeFeed{}
	hub := notify.NewHub()
	s := &Server{Feed: f, Notifier: hub, Audit: &recordingAudit{}, Log: logging.Discard(), Recheck: time.Hour}
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.mu.Lock()
		f.entries = []feed.Entry{ev(1, "case.created")}
		f.head = 1
		f.mu.Unlock()
		hub.Notify("acme")
	}()
	start := time.Now()
	resp, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{Wait: durationpb.New(10 * time.Second)})
	if err != nil || len(resp.GetEvents()) != 1 {
		t.Fatalf("long-poll: %v %v", resp, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("long-poll took %v", d)
	}
}

func TestNoTenantIsForbidden(t *testing.T) {
	ctx := auth.WithPrincipal(context.Background(), auth.Principal{ClientID: "svc", Roles: []string{auth.RoleCasesRead}})
	s := &Server{Feed: &fakeFeed{}, Notifier: notify.NewHub(), Audit: &recordingAudit{}, Log: logging.Discard()}
	if _, err := s.ListCaseEvents(ctx, &casekeeperv1.ListCaseEventsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v", err)
	}
}

// A cursor handed out longer ago than the retention is refused when events after it may have been deleted, and
// stands when the tenant's oldest stored event shows that nothing after it was.
func TestExpiredCursorAsksForAResync(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	f := &fakeFeed{head: 9, entries: []feed.Entry{ev(5, "case.created"), ev(9, "case.updated")}}
	s := &Server{Feed: f, Notifier: notify.NewHub(), Audit: &recordingAudit{}, Log: logging.Discard(),
		Retention: 24 * time.Hour, Now: func() time.Time { return now }}
	old := func(seq int64) string { return feed.Cursor{Seq: seq, Issued: now.Add(-25 * time.Hour)}.String() }

	_, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: old(3)})
	st := status.Convert(err)
	var reason string
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			reason = ei.GetReason() + "@" + ei.GetDomain() + " " + ei.GetMetadata()["retention"]
		}
	}
	if st.Code() != codes.FailedPrecondition || reason != "CURSOR_EXPIRED@casekeeper.dev 24h0m0s" || !strings.Contains(st.Message(), "after=latest") {
		t.Fatalf("an old cursor before the oldest event: %v (%s)", err, reason)
	}
	if err := s.WatchCaseEvents(&casekeeperv1.WatchCaseEventsRequest{After: old(3)}, &watchStream{ctx: acmeCtx()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("the stream took an expired cursor: %v", err)
	}
	// The oldest stored event is at 5: nothing after 5 (or 7) was deleted, so those old cursors still stand.
	for _, seq := range []int64{5, 7} {
		if resp, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: old(seq)}); err != nil {
			t.Fatalf("an old cursor at %d with its successors all stored: %v", seq, err)
		} else if c, _ := feed.ParseCursor(resp.GetNextCursor()); c.Issued.Before(now) {
			t.Fatalf("the answer's cursor is not renewed: %+v", c)
		}
	}
	// Every event expired, but the cursor is at the head: nothing came after it, so it stands (a quiet tenant's
	// poller that revalidates with 304s keeps its old cursor).
	f.entries = nil
	if _, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: old(9)}); err != nil {
		t.Fatalf("an old cursor at the head: %v", err)
	}
	if _, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: old(8)}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("an old cursor before expired events: %v", err)
	}
	// A fresh cursor is not checked at all.
	if _, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: feed.Cursor{Seq: 3, Issued: now}.String()}); err != nil {
		t.Fatalf("a fresh cursor: %v", err)
	}
}

func TestLatestStartsAtTheHead(t *testing.T) {
	f := &fakeFeed{head: 9, entries: []feed.Entry{ev(3, "case.created"), ev(9, "case.updated")}}
	s := &Server{Feed: f, Notifier: notify.NewHub(), Audit: &recordingAudit{}, Log: logging.Discard()}
	resp, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: feed.Latest})
	if err != nil || len(resp.GetEvents()) != 0 || position(t, resp.GetNextCursor()) != 9 {
		t.Fatalf("after=latest: %v %v", resp, err)
	}
}
