package grpcapi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

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
	return feed.Entry{Seq: seq, Event: &casekeeperv1.CaseEvent{Id: "e", Type: typ, Tenant: "acme", CaseId: "c", Cursor: feed.EncodeCursor(seq)}}
}

func TestEmptyPollReadsOnlyTheHead(t *testing.T) {
	f := &fakeFeed{head: 7, entries: []feed.Entry{ev(3, "case.created"), ev(7, "case.updated")}}
	a := &recordingAudit{}
	s := &Server{Feed: f, Notifier: notify.NewHub(), Audit: a, Log: logging.Discard()}
	after := feed.EncodeCursor(7)
	resp, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: after})
	if err != nil || len(resp.GetEvents()) != 0 || resp.GetNextCursor() != after {
		t.Fatalf("empty poll: %v %v", resp, err)
	}
	if f.afterCalls != 0 || len(a.recs) != 0 {
		t.Fatalf("empty poll read the feed %d times and wrote %d audit records", f.afterCalls, len(a.recs))
	}
}

func TestFilteredPollMovesTheCursorToTheHead(t *testing.T) {
	f := &fakeFeed{head: 9, entries: []feed.Entry{ev(3, "case.created"), ev(9, "case.updated")}}
	s := &Server{Feed: f, Notifier: notify.NewHub(), Audit: &recordingAudit{}, Log: logging.Discard()}
	resp, err := s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{After: feed.EncodeCursor(3), Types: []string{"case.redacted"}})
	if err != nil || len(resp.GetEvents()) != 0 || resp.GetNextCursor() != feed.EncodeCursor(9) {
		t.Fatalf("filtered poll: %v %v", resp, err)
	}
	// A full page does not jump: there may be more after it.
	resp, _ = s.ListCaseEvents(acmeCtx(), &casekeeperv1.ListCaseEventsRequest{PageSize: 1})
	if resp.GetNextCursor() != feed.EncodeCursor(3) {
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
