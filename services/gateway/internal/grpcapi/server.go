// Package grpcapi serves casekeeper.v1.CaseQueryService: case reads forwarded to the case service, the change feed
// and its push stream from the gateway's own store, and the access audit. It is the one place where the gateway's
// errors become gRPC codes; HTTP gets the same codes through grpc-gateway.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/grpcserver"
	"github.com/casekeeper/core/pkg/validation"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/audit"
	"github.com/casekeeper/core/services/gateway/internal/feed"
)

// FeedReader reads the change feed.
type FeedReader interface {
	Head(ctx context.Context, tenant string) (int64, error)
	After(ctx context.Context, q feed.Query) ([]feed.Entry, error)
	// Oldest is the position of the tenant's oldest stored event (ok false when it has none).
	Oldest(ctx context.Context, tenant string) (seq int64, ok bool, err error)
}

// Notifier hands out a channel closed at the tenant's next feed write.
type Notifier interface {
	Changed(tenant string) <-chan struct{}
}

// Auditor records a read before its answer leaves.
type Auditor interface {
	Record(ctx context.Context, r audit.Record) error
}

// AuditReader reads the audit for the tenant's admins.
type AuditReader interface {
	List(ctx context.Context, p audit.Page) ([]audit.Record, error)
}

// Full method names, for the policy and the audit records.
const (
	MethodGetCase          = "/casekeeper.v1.CaseQueryService/GetCase"
	MethodListCases        = "/casekeeper.v1.CaseQueryService/ListCases"
	MethodListCaseEvents   = "/casekeeper.v1.CaseQueryService/ListCaseEvents"
	MethodWatchCaseEvents  = "/casekeeper.v1.CaseQueryService/WatchCaseEvents"
	MethodListAuditRecords = "/casekeeper.v1.CaseQueryService/ListAuditRecords"
)

// Roles is the authorisation policy of the service: reads need cases:read, the audit is for the tenant's admins
// (webhooks:manage, the realm's admin role of a tenant).
var Roles = map[string]string{
	MethodGetCase:          auth.RoleCasesRead,
	MethodListCases:        auth.RoleCasesRead,
	MethodListCaseEvents:   auth.RoleCasesRead,
	MethodWatchCaseEvents:  auth.RoleCasesRead,
	MethodListAuditRecords: auth.RoleWebhooksManage,
}

// Server implements CaseQueryService.
type Server struct {
	casekeeperv1.UnimplementedCaseQueryServiceServer
	Cases    casekeeperv1.CaseServiceClient
	Feed     FeedReader
	Notifier Notifier
	Audit    Auditor
	AuditLog AuditReader
	Log      *slog.Logger
	// Recheck is how often a waiting reader looks at the store even without a notification: the safety net for a
	// notification lost between instances (default 10s).
	Recheck time.Duration
	// MaxStreamsPerClient caps the WatchCaseEvents streams one principal (tenant, client, subject) holds open on
	// this instance (default DefaultMaxStreamsPerClient).
	MaxStreamsPerClient int
	// Now is the clock that decides when a stream's token has expired and stamps cursors (default time.Now).
	Now func() time.Time
	// Retention is how long the feed keeps events (default 720h): a cursor handed out longer ago than that may have
	// lost events after it, and is refused as expired.
	Retention time.Duration
	// BookmarkEvery is how often an idle stream sends a bookmark, its renewed cursor (default 30s).
	BookmarkEvery time.Duration
	// Poll sets the interval the feed's answers ask pollers to keep (x-poll-interval).
	Poll feed.PollHint
	// CasesProjected is the CASES stream position up to which the case service's query store (what ListCases
	// reads) is complete; a snapshot start needs it. Nil refuses snapshot starts.
	CasesProjected func(ctx context.Context) (int64, error)

	streamsMu sync.Mutex
	streams   map[streamOwner]int
	// busy counts the feed reads in flight (not the long-polls waiting): the load the poll hint follows.
	busy atomic.Int64
}

// DefaultMaxStreamsPerClient is the per-principal stream cap when none is configured.
const DefaultMaxStreamsPerClient = 8

// streamOwner is whom a stream counts against: one token's identity, so a dashboard user and a backend of the same
// tenant have caps of their own.
type streamOwner struct{ tenant, client, subject string }

// errTokenExpired ends a stream whose token expired; the client reconnects with a fresh one and the cursor of the
// last event it received.
var errTokenExpired = status.Error(codes.Unauthenticated, "access token expired: reconnect with a fresh token and the last cursor")

// openStream takes one of the principal's stream slots; release gives it back.
func (s *Server) openStream(p auth.Principal) (release func(), err error) {
	limit := s.MaxStreamsPerClient
	if limit <= 0 {
		limit = DefaultMaxStreamsPerClient
	}
	owner := streamOwner{p.Tenant, p.ClientID, p.Subject}
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams[owner] >= limit {
		return nil, status.Errorf(codes.ResourceExhausted, "at most %d open event streams per client; close one first", limit)
	}
	if s.streams == nil {
		s.streams = map[streamOwner]int{}
	}
	s.streams[owner]++
	return func() {
		s.streamsMu.Lock()
		defer s.streamsMu.Unlock()
		if s.streams[owner]--; s.streams[owner] <= 0 {
			delete(s.streams, owner)
		}
	}, nil
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// StreamOpenedHeader is sent once WatchCaseEvents has validated its request and starts streaming, so that the
// HTTP bridge can answer a bad request with a JSON error instead of an event stream that ends at once.
const StreamOpenedHeader = "x-casekeeper-stream"

// Error details of an expired cursor: ErrorInfo with this reason and domain, which the HTTP side answers with 410.
const (
	ErrorDomain         = "casekeeper.dev"
	ReasonCursorExpired = "CURSOR_EXPIRED"
)

// PollIntervalHeader carries the feed's poll interval in whole seconds (HTTP: X-Poll-Interval).
const PollIntervalHeader = "x-poll-interval"

func (s *Server) retention() time.Duration {
	if s.Retention > 0 {
		return s.Retention
	}
	return 720 * time.Hour
}

func (s *Server) bookmarkEvery() time.Duration {
	if s.BookmarkEvery > 0 {
		return s.BookmarkEvery
	}
	return 30 * time.Second
}

// start resolves where a read begins: at the head for `latest`; after the reader's cursor otherwise, unless the
// cursor is old enough that the retention may have deleted events after it. Such a cursor still stands when nothing
// came after it (the head is at it: a quiet tenant's poller, which revalidates with 304s and so keeps its old
// cursor, is never sent to resync) or when the tenant's oldest stored event is at or before it (everything deleted
// came before it); otherwise it is refused, because following the feed from it could skip events unnoticed.
func (s *Server) start(ctx context.Context, q feed.Query) (feed.Query, error) {
	if q.Latest {
		head, err := s.Feed.Head(ctx, q.Tenant)
		if err != nil {
			return q, s.backendError(ctx, "feed", err)
		}
		q.After, q.Latest = head, false
		q.From = feed.Cursor{Seq: head, Issued: s.now()}
		return q, nil
	}
	if !q.From.MayHaveExpired(s.now(), s.retention()) {
		return q, nil
	}
	head, err := s.Feed.Head(ctx, q.Tenant)
	if err != nil {
		return q, s.backendError(ctx, "feed", err)
	}
	if head <= q.After {
		return q, nil
	}
	oldest, ok, err := s.Feed.Oldest(ctx, q.Tenant)
	if err != nil {
		return q, s.backendError(ctx, "feed", err)
	}
	if ok && oldest <= q.After {
		return q, nil
	}
	return q, cursorExpired(s.retention())
}

func cursorExpired(retention time.Duration) error {
	st := status.New(codes.FailedPrecondition, "cursor expired: events after it may have passed the feed's retention of "+
		retention.String()+"; resync: list the cases, then follow the feed from after=latest")
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonCursorExpired, Domain: ErrorDomain,
		Metadata: map[string]string{"retention": retention.String()}}); err == nil {
		st = d
	}
	return st.Err()
}

func (s *Server) recheck() time.Duration {
	if s.Recheck > 0 {
		return s.Recheck
	}
	return 10 * time.Second
}

// GetCase forwards to the case service, which enforces tenant isolation; the gateway checks the answer again.
func (s *Server) GetCase(ctx context.Context, req *casekeeperv1.GetCaseRequest) (*casekeeperv1.GetCaseResponse, error) {
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return nil, auth.ToStatus(err)
	}
	if err := validID(req.GetId()); err != nil {
		return nil, err
	}
	resp, err := s.Cases.GetCase(ctx, &casekeeperv1.GetCaseRequest{Id: req.GetId()})
	if err != nil {
		return nil, s.backendError(ctx, "case service", err)
	}
	if resp.GetCase().GetTenant() != p.Tenant {
		// Defence in depth: never hand out another tenant's case, whatever the case service says. Same answer as
		// for a case that does not exist, so ids of other tenants cannot be probed.
		s.Log.ErrorContext(ctx, "case service returned a case of another tenant", "case_id", req.GetId())
		return nil, status.Error(codes.NotFound, "case not found")
	}
	if err := s.record(ctx, p, MethodGetCase, []string{resp.GetCase().GetId()}); err != nil {
		return nil, err
	}
	return resp, nil
}

// ListCases forwards to the case service and keeps only the caller's tenant's cases.
func (s *Server) ListCases(ctx context.Context, req *casekeeperv1.ListCasesRequest) (*casekeeperv1.ListCasesResponse, error) {
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return nil, auth.ToStatus(err)
	}
	resp, err := s.Cases.ListCases(ctx, req)
	if err != nil {
		return nil, s.backendError(ctx, "case service", err)
	}
	kept := resp.Cases[:0]
	ids := make([]string, 0, len(resp.Cases))
	for _, c := range resp.Cases {
		if c.GetTenant() != p.Tenant {
			s.Log.ErrorContext(ctx, "case service listed a case of another tenant", "case_id", c.GetId())
			continue
		}
		kept = append(kept, c)
		ids = append(ids, c.GetId())
	}
	resp.Cases = kept
	if len(ids) > 0 {
		if err := s.record(ctx, p, MethodListCases, ids); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// ListCaseEvents reads the feed after a cursor. A poll that finds nothing costs one lookup of the tenant's head by
// primary key; only when the head moved past the cursor is the (tenant, seq) index read.
func (s *Server) ListCaseEvents(ctx context.Context, req *casekeeperv1.ListCaseEventsRequest) (*casekeeperv1.ListCaseEventsResponse, error) {
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return nil, auth.ToStatus(err)
	}
	q, err := feed.NewQuery(p.Tenant, req.GetAfter(), req.GetTypes(), req.GetPageSize())
	var errs validation.Errors
	if verrs, ok := validation.As(err); ok {
		errs = append(errs, verrs...)
	}
	q, err = q.WithCase(req.GetCaseId())
	if verrs, ok := validation.As(err); ok {
		errs = append(errs, verrs...)
	}
	var wait time.Duration
	if req.GetWait() != nil {
		if err := req.GetWait().CheckValid(); err != nil {
			errs.Add("wait", "is not a duration")
		} else if werrs, ok := validation.As(feed.ValidateWait(req.GetWait().AsDuration())); ok {
			errs = append(errs, werrs...)
		} else {
			wait = req.GetWait().AsDuration()
		}
	}
	if len(errs) > 0 {
		return nil, grpcserver.InvalidArgument(errs)
	}
	if q, err = s.start(ctx, q); err != nil {
		return nil, err
	}
	// The hint goes out with every answer, an empty one included; under load it asks pollers to come back later.
	_ = grpc.SetHeader(ctx, metadata.Pairs(PollIntervalHeader, s.Poll.Seconds(s.busy.Load())))

	deadline := time.Now().Add(wait)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-100*time.Millisecond).Before(deadline) {
		// Answer (empty) just before the caller's own deadline rather than let the call fail at it.
		deadline = dl.Add(-100 * time.Millisecond)
	}
	for {
		changed := s.Notifier.Changed(p.Tenant)
		entries, next, err := s.page(ctx, q)
		if err != nil {
			return nil, err
		}
		if len(entries) > 0 || !time.Now().Before(deadline) {
			return s.answer(ctx, p, entries, next)
		}
		q.After = next.Seq
		timer := time.NewTimer(min(time.Until(deadline), s.recheck()))
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			// The client gave up (or its deadline came): nothing to answer to.
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		timer.Stop()
	}
}

func (s *Server) answer(ctx context.Context, p auth.Principal, entries []feed.Entry, next feed.Cursor) (*casekeeperv1.ListCaseEventsResponse, error) {
	resp := &casekeeperv1.ListCaseEventsResponse{NextCursor: next.String()}
	if len(entries) == 0 {
		// Nothing about any case was disclosed, so nothing is recorded: an empty poll stays one lookup.
		return resp, nil
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		resp.Events = append(resp.Events, e.Event)
		ids[i] = e.Event.GetCaseId()
	}
	if err := s.record(ctx, p, MethodListCaseEvents, ids); err != nil {
		return nil, err
	}
	return resp, nil
}

// page reads one page after q.After and returns the cursor to continue from. When the page is not full, every
// event up to the head read before the query has been seen (the projector moves the head only after storing), so
// the position jumps to the head: a poll filtered by type then does not scan the same non-matching events again.
// Such a cursor is stamped with the time the head was read — whatever comes after the head is stored later — and
// a full page's with the storage time of its last event.
func (s *Server) page(ctx context.Context, q feed.Query) ([]feed.Entry, feed.Cursor, error) {
	s.busy.Add(1)
	defer s.busy.Add(-1)
	readAt := s.now()
	head, err := s.Feed.Head(ctx, q.Tenant)
	if err != nil {
		return nil, feed.Cursor{}, err
	}
	if head <= q.After {
		return nil, feed.Cursor{Seq: q.After, Issued: readAt}, nil
	}
	entries, err := s.Feed.After(ctx, q)
	if err != nil {
		return nil, feed.Cursor{}, err
	}
	if len(entries) == q.Limit {
		return entries, entries[len(entries)-1].Cursor(), nil
	}
	next := feed.Cursor{Seq: max(q.After, head), Issued: readAt}
	if len(entries) > 0 {
		next.Seq = max(next.Seq, entries[len(entries)-1].Seq)
	}
	return entries, next, nil
}

// WatchCaseEvents streams the feed after the cursor: what is stored first, then each new event as the projector
// writes it. Every event carries its cursor, so a client that reconnects with the last one it received continues
// exactly after it. The stream ends with UNAUTHENTICATED when the caller's token expires (it was authenticated once,
// at the start), and a principal holds at most MaxStreamsPerClient streams at a time.
func (s *Server) WatchCaseEvents(req *casekeeperv1.WatchCaseEventsRequest, stream grpc.ServerStreamingServer[casekeeperv1.WatchCaseEventsResponse]) error {
	ctx := stream.Context()
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return auth.ToStatus(err)
	}
	q, err := feed.NewQuery(p.Tenant, req.GetAfter(), req.GetTypes(), feed.DefaultPageSize)
	errs, _ := validation.As(err)
	if req.GetSnapshot() && req.GetAfter() != "" {
		errs.Add("snapshot", "starts the stream with the current cases, so after must be empty")
	}
	if len(errs) > 0 {
		return grpcserver.InvalidArgument(errs)
	}
	if req.GetSnapshot() && s.CasesProjected == nil {
		return status.Error(codes.Unimplemented, "this gateway cannot start a stream with a snapshot")
	}
	expired := func() bool { return !p.ExpiresAt.IsZero() && !s.now().Before(p.ExpiresAt) }
	if expired() {
		return errTokenExpired
	}
	if q, err = s.start(ctx, q); err != nil {
		return err
	}
	release, err := s.openStream(p)
	if err != nil {
		return err
	}
	defer release()
	var expiry <-chan time.Time // nil, never ready, when the token's expiry is unknown
	if !p.ExpiresAt.IsZero() {
		t := time.NewTimer(p.ExpiresAt.Sub(s.now()))
		defer t.Stop()
		expiry = t.C
	}
	if err := stream.SendHeader(metadata.Pairs(StreamOpenedHeader, "1")); err != nil {
		return err
	}
	if req.GetSnapshot() {
		if q, err = s.sendSnapshot(ctx, p, q, stream); err != nil {
			return err
		}
	}
	recheck := time.NewTicker(s.recheck())
	defer recheck.Stop()
	// An idle stream sends its renewed cursor now and then: a client that stores it resumes at the head, past
	// whatever its type filter left out, and its cursor never ages into expiry while it is connected.
	bookmark := time.NewTicker(s.bookmarkEvery())
	defer bookmark.Stop()
	sent, wantBookmark := false, false
	for {
		if expired() {
			return errTokenExpired
		}
		changed := s.Notifier.Changed(p.Tenant)
		entries, next, err := s.page(ctx, q)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			ids := make([]string, len(entries))
			for i, e := range entries {
				ids[i] = e.Event.GetCaseId()
			}
			if err := s.record(ctx, p, MethodWatchCaseEvents, ids); err != nil {
				return err
			}
			for _, e := range entries {
				if err := stream.Send(&casekeeperv1.WatchCaseEventsResponse{Event: e.Event}); err != nil {
					return err
				}
			}
			sent = true
		} else if wantBookmark {
			// Read just now, so the bookmark is as fresh as its stamp says.
			if err := stream.Send(&casekeeperv1.WatchCaseEventsResponse{Bookmark: &casekeeperv1.Bookmark{Cursor: next.String()}}); err != nil {
				return err
			}
		}
		wantBookmark = false
		q.After = next.Seq
		if len(entries) == q.Limit {
			continue // more is stored: no need to wait
		}
		select {
		case <-changed:
		case <-recheck.C:
		case <-bookmark.C:
			// Events carry their cursors: a bookmark is due only after an interval with none sent.
			wantBookmark, sent = !sent, false
		case <-expiry:
			return errTokenExpired
		case <-ctx.Done():
			return nil
		}
	}
}

// sendSnapshot sends every case of the tenant as it is now, then a bookmark with end_of_snapshot, and returns the
// query that continues after it. The position comes first: every event up to where the case projection stands is
// reflected in what ListCases then reads, so following the feed from that position misses nothing. An event just
// after it may show a state the snapshot already had (the list can be newer than the position): compare versions.
// The position's stamp is when it was read; events after it were stored in the feed after that, unless the case
// projection lags by more than the clock skew the cursor's expiry allows for.
func (s *Server) sendSnapshot(ctx context.Context, p auth.Principal, q feed.Query, stream grpc.ServerStreamingServer[casekeeperv1.WatchCaseEventsResponse]) (feed.Query, error) {
	readAt := s.now()
	pos, err := s.CasesProjected(ctx)
	if err != nil {
		return q, s.backendError(ctx, "case projection", err)
	}
	req := &casekeeperv1.ListCasesRequest{PageSize: 500}
	for {
		resp, err := s.Cases.ListCases(ctx, req)
		if err != nil {
			return q, s.backendError(ctx, "case service", err)
		}
		ids := make([]string, 0, len(resp.GetCases()))
		var page []*casekeeperv1.Case
		for _, c := range resp.GetCases() {
			if c.GetTenant() == p.Tenant { // defence in depth, as in ListCases
				page = append(page, c)
				ids = append(ids, c.GetId())
			}
		}
		if len(page) > 0 {
			if err := s.record(ctx, p, MethodWatchCaseEvents, ids); err != nil {
				return q, err
			}
		}
		for _, c := range page {
			if err := stream.Send(&casekeeperv1.WatchCaseEventsResponse{Snapshot: c}); err != nil {
				return q, err
			}
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	end := feed.Cursor{Seq: pos, Issued: readAt}
	if err := stream.Send(&casekeeperv1.WatchCaseEventsResponse{Bookmark: &casekeeperv1.Bookmark{Cursor: end.String(), EndOfSnapshot: true}}); err != nil {
		return q, err
	}
	q.After, q.From = pos, end
	return q, nil
}

// ListAuditRecords reads the tenant's access audit.
func (s *Server) ListAuditRecords(ctx context.Context, req *casekeeperv1.ListAuditRecordsRequest) (*casekeeperv1.ListAuditRecordsResponse, error) {
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return nil, auth.ToStatus(err)
	}
	var since time.Time
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	page, err := audit.NewPage(p.Tenant, since, req.GetPageSize(), req.GetPageToken())
	if errs, ok := validation.As(err); ok {
		return nil, grpcserver.InvalidArgument(errs)
	}
	recs, err := s.AuditLog.List(ctx, page)
	if err != nil {
		return nil, err
	}
	resp := &casekeeperv1.ListAuditRecordsResponse{}
	for _, r := range recs {
		resp.Records = append(resp.Records, &casekeeperv1.AuditRecord{
			Id: r.ID, At: timestamppb.New(r.At), Tenant: r.Tenant, Subject: r.Subject, ClientId: r.ClientID,
			Api: r.API, CaseIds: r.CaseIDs, Via: r.Via,
		})
	}
	if len(recs) == page.Limit {
		resp.NextPageToken = audit.NextToken(recs[len(recs)-1])
	}
	return resp, nil
}

// record writes the audit record of a read; the data is not returned unless that succeeded.
func (s *Server) record(ctx context.Context, p auth.Principal, api string, caseIDs []string) error {
	err := s.Audit.Record(ctx, audit.Record{
		Tenant: p.Tenant, Subject: p.Subject, ClientID: p.ClientID, Via: p.Via, API: api, CaseIDs: caseIDs,
	})
	if err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		s.Log.ErrorContext(ctx, "audit record not written, read refused", "api", api, "error", err)
		return status.Error(codes.Unavailable, "the access cannot be recorded now; try again")
	}
	return nil
}

// backendError passes on what the caller can act on and hides the rest: addresses, stack details and the like of
// a backing service are not the caller's business.
func (s *Server) backendError(ctx context.Context, backend string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return status.FromContextError(err).Err()
		}
		st = status.New(codes.Unknown, err.Error())
	}
	switch st.Code() {
	case codes.NotFound, codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated,
		codes.FailedPrecondition, codes.Aborted, codes.OutOfRange, codes.ResourceExhausted,
		codes.DeadlineExceeded, codes.Canceled:
		return st.Err()
	case codes.Unavailable:
		s.Log.WarnContext(ctx, "backing service unavailable", "backend", backend, "error", err)
		return status.Error(codes.Unavailable, backend+" unavailable; try again")
	default:
		s.Log.ErrorContext(ctx, "backing service failed", "backend", backend, "code", st.Code().String(), "error", err)
		return status.Error(codes.Internal, "internal error")
	}
}

func validID(id string) error {
	var errs validation.Errors
	switch {
	case id == "":
		errs.Add("id", "is required")
	case len(id) > 128:
		errs.Add("id", "is longer than 128 characters")
	}
	if len(errs) > 0 {
		return grpcserver.InvalidArgument(errs)
	}
	return nil
}
