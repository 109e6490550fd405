package casekeeper

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/protobuf/types/known/durationpb"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// Latest, given as the position to start from, starts at the feed's head: only events that happen from now on.
const Latest = "latest"

// Page is one answer of the change feed.
type Page struct {
	// Events, oldest first; each carries its cursor.
	Events []*casekeeperv1.CaseEvent
	// NextCursor is the position after this page. For an empty page it is the request's position renewed (it stays
	// good for the feed's retention from now on) or a later one: store it either way.
	NextCursor string
	// PollInterval is the server's X-Poll-Interval: the shortest time it wants between polls that find nothing.
	PollInterval time.Duration
}

// ListEvents reads one page of the change feed (GET /v1/events). req.After is a cursor, Latest, or "" for the
// oldest retained event; with req.Wait set, an empty answer is held back until an event arrives or the wait ends.
// An expired cursor fails with an error that matches ErrResyncRequired.
func (c *Client) ListEvents(ctx context.Context, req *casekeeperv1.ListCaseEventsRequest) (*Page, error) {
	q := url.Values{}
	if req.GetAfter() != "" {
		q.Set("after", req.GetAfter())
	}
	for _, t := range req.GetTypes() {
		q.Add("types", t)
	}
	if req.GetPageSize() != 0 {
		q.Set("page_size", strconv.Itoa(int(req.GetPageSize())))
	}
	var extra time.Duration
	if w := req.GetWait(); w != nil {
		extra = w.AsDuration()
		q.Set("wait", strconv.FormatFloat(extra.Seconds(), 'f', -1, 64)+"s")
	}
	if req.GetCaseId() != "" {
		q.Set("case_id", req.GetCaseId())
	}
	var resp casekeeperv1.ListCaseEventsResponse
	hdr, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/events", query: q, extra: extra}, &resp)
	if err != nil {
		return nil, err
	}
	return &Page{Events: resp.GetEvents(), NextCursor: resp.GetNextCursor(), PollInterval: pollInterval(hdr)}, nil
}

func pollInterval(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("X-Poll-Interval"))
	if v == "" {
		return 0
	}
	s, err := strconv.ParseFloat(v, 64)
	if err != nil || s < 0 || s > 3600 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// Transport is how Follow receives the feed.
type Transport int

const (
	// ViaPoll pages through GET /v1/events with long-poll.
	ViaPoll Transport = iota
	// ViaSSE holds the Server-Sent Events stream GET /v1/events:stream open.
	ViaSSE
	// ViaGRPC holds CaseQueryService.WatchCaseEvents open on the gateway's gRPC port.
	ViaGRPC
)

func (t Transport) String() string {
	switch t {
	case ViaPoll:
		return "poll"
	case ViaSSE:
		return "sse"
	case ViaGRPC:
		return "grpc"
	}
	return "Transport(" + strconv.Itoa(int(t)) + ")"
}

// ParseTransport reads "poll", "sse" or "grpc".
func ParseTransport(s string) (Transport, error) {
	for _, t := range []Transport{ViaPoll, ViaSSE, ViaGRPC} {
		if s == t.String() {
			return t, nil
		}
	}
	return 0, fmt.Errorf("casekeeper: transport %q is not poll, sse or grpc", s)
}

// DefaultWait is the long-poll wait of Follow's polls.
const DefaultWait = 30 * time.Second

// FollowOptions configure Follow.
type FollowOptions struct {
	Via Transport
	// Cursor keeps the position; nil means a FileCursorStore at DefaultCursorFile in the working directory.
	Cursor CursorStore
	// After is where to start when Cursor holds nothing: "" for the oldest retained event, Latest, or a cursor.
	After string
	// Types keeps only these event types (Type* constants); empty means all. The position still moves past the
	// others.
	Types []string
	// PageSize of a poll (1 to 500; 0 means the server's default, 100).
	PageSize int
	// Wait is a poll's long-poll wait (0 means DefaultWait; negative, no long-poll).
	Wait time.Duration
	// MinPollInterval is the shortest time between the starts of two polls that found nothing; the server's
	// X-Poll-Interval wins when it is longer.
	MinPollInterval time.Duration
	// UntilCaughtUp ends a poll follower (nil error) at the first page that finds nothing new, and at the first
	// failed poll (with its error) instead of retrying: an interval job run by a scheduler, which resumes from the
	// stored cursor next time.
	UntilCaughtUp bool
	// OnRetry, if set, is told why a poll failed or a stream ended, and how long the follower waits before it
	// tries again (for logs).
	OnRetry func(err error, wait time.Duration)
}

// Handler processes one event. Returning an error stops Follow with it, the event's cursor unsaved: after a restart
// that event comes again.
type Handler func(ctx context.Context, ev *casekeeperv1.CaseEvent) error

// Follow hands every event of the feed to h, oldest first, from the stored cursor (or o.After), saving each
// event's cursor after h returned nil; bookmarks of an idle stream and the renewed cursor of an empty poll are
// saved as well. It reconnects after failures and ended streams with a capped, jittered backoff, with a fresh
// token when the old one expired, and resumes from the last saved position, so nothing is skipped and nothing
// handled twice while the process lives. It returns when ctx ends (ctx.Err()), when h fails, for errors that
// waiting does not fix (a refused token, a missing role), and with ErrResyncRequired when the stored cursor has
// expired — it never restarts from another position by itself.
func (c *Client) Follow(ctx context.Context, o FollowOptions, h Handler) error {
	if h == nil {
		return errors.New("casekeeper: nil handler")
	}
	if o.Cursor == nil {
		o.Cursor = NewFileCursorStore(DefaultCursorFile)
	}
	cur, err := o.Cursor.Load(ctx)
	if err != nil {
		return err
	}
	f := &follower{c: c, o: o, h: h, cursor: cur, stored: cur}
	if f.cursor == "" {
		f.cursor = o.After
	}
	if f.cursor == Latest && o.Via != ViaPoll {
		// A stream opened at "latest" that broke before its first event or bookmark would reopen at a later head
		// and skip what happened in between: the head is made a cursor first.
		if err := f.resolveLatest(ctx); err != nil {
			return err
		}
	}
	switch o.Via {
	case ViaPoll:
		return f.poll(ctx)
	case ViaSSE:
		return f.stream(ctx, f.sseOnce)
	case ViaGRPC:
		return f.stream(ctx, f.watchOnce)
	}
	return fmt.Errorf("casekeeper: unknown transport %s", o.Via)
}

// follower is one Follow call's state: the position reached and what is saved of it.
type follower struct {
	c      *Client
	o      FollowOptions
	h      Handler
	cursor string // where to continue: a cursor, Latest or ""
	stored string // what the store holds
}

// handle runs the handler on one event and saves its cursor.
func (f *follower) handle(ctx context.Context, ev *casekeeperv1.CaseEvent) error {
	if err := f.h(ctx, ev); err != nil {
		return &handlerError{id: ev.GetId(), err: err}
	}
	return f.advance(ctx, ev.GetCursor())
}

// advance moves the position to cursor and saves it.
func (f *follower) advance(ctx context.Context, cursor string) error {
	if cursor == "" || cursor == Latest {
		return nil
	}
	f.cursor = cursor
	if cursor == f.stored {
		return nil
	}
	if err := f.o.Cursor.Save(ctx, cursor); err != nil {
		return &handlerError{err: err}
	}
	f.stored = cursor
	return nil
}

// handlerError is a failure on the client's side (its handler, its cursor store): never retried here.
type handlerError struct {
	id  string
	err error
}

func (e *handlerError) Error() string {
	if e.id == "" {
		return e.err.Error()
	}
	return "casekeeper: handling event " + e.id + ": " + e.err.Error()
}

func (e *handlerError) Unwrap() error { return e.err }

func (f *follower) poll(ctx context.Context) error {
	wait := f.o.Wait
	switch {
	case wait == 0:
		wait = DefaultWait
	case wait < 0:
		wait = 0
	}
	failures := 0
	for {
		started := time.Now()
		req := &casekeeperv1.ListCaseEventsRequest{After: f.cursor, Types: f.o.Types, PageSize: int32(f.o.PageSize)}
		if wait > 0 && !f.o.UntilCaughtUp {
			req.Wait = durationpb.New(wait)
		}
		page, err := f.c.ListEvents(ctx, req)
		if err != nil {
			d, retry := f.c.retryAfter(ctx, err, failures, nil)
			if !retry || f.o.UntilCaughtUp {
				return err
			}
			failures++
			f.retrying(err, d)
			if !sleep(ctx, d) {
				return ctx.Err()
			}
			continue
		}
		failures = 0
		for _, ev := range page.Events {
			if err := f.handle(ctx, ev); err != nil {
				return err
			}
		}
		// Past events the type filter left out, or renewed: stored either way.
		if err := f.advance(ctx, page.NextCursor); err != nil {
			return err
		}
		if len(page.Events) > 0 {
			continue
		}
		if f.o.UntilCaughtUp {
			return nil
		}
		interval := max(f.o.MinPollInterval, page.PollInterval)
		if !sleep(ctx, time.Until(started.Add(interval))) {
			return ctx.Err()
		}
	}
}

// resolveLatest replaces Latest by the cursor of the head, retrying like a poll.
func (f *follower) resolveLatest(ctx context.Context) error {
	for failures := 0; ; failures++ {
		page, err := f.c.ListEvents(ctx, &casekeeperv1.ListCaseEventsRequest{After: Latest, Types: f.o.Types})
		if err == nil {
			return f.advance(ctx, page.NextCursor)
		}
		d, retry := f.c.retryAfter(ctx, err, failures, nil)
		if !retry {
			return err
		}
		f.retrying(err, d)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

func (f *follower) retrying(err error, d time.Duration) {
	if f.o.OnRetry != nil {
		f.o.OnRetry(err, d)
	}
}

// errStreamEnded is a stream the server closed without an error: reconnect.
var errStreamEnded = errors.New("casekeeper: the stream ended")

// stream keeps one push stream open after another. once returns whether the stream had opened, and why it ended.
func (f *follower) stream(ctx context.Context, once func(context.Context) (bool, *oauth2.Token, error)) error {
	failures := 0
	for {
		opened, tok, err := once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if opened {
			failures = 0
		}
		d, retry := f.c.retryAfter(ctx, err, failures, tok)
		if !retry {
			return err
		}
		failures++
		f.retrying(err, d)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// retryAfter decides whether a failed call is tried again and after how long. tok is the token the call used:
// when the server refused it, it is dropped and the next try, with a new one, goes at once.
func (c *Client) retryAfter(ctx context.Context, err error, failures int, tok *oauth2.Token) (time.Duration, bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	var he *handlerError
	if errors.As(err, &he) {
		return 0, false
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
		return 0, false // Keycloak refused the credentials
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return c.backoff.delay(failures), true // the network, an ended stream, Keycloak unreachable
	}
	switch {
	case ae.Is(ErrResyncRequired):
		return 0, false
	case ae.Is(ErrUnauthenticated):
		// A stream ends so when its token expires. One immediate retry with a new token; a new token refused
		// again is not going to change by waiting.
		if tok == nil || !c.tokens.refused(tok) || failures > 0 {
			return 0, false
		}
		return 0, true
	case ae.Is(ErrRateLimited):
		if ae.RetryAfter > 0 {
			return ae.RetryAfter, true
		}
		return c.backoff.delay(failures), true
	case ae.temporary():
		return c.backoff.delay(failures), true
	}
	return 0, false
}
