package casekeeper

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// sseIdle is how long a stream may stay silent before it is taken for dead and reopened: the gateway writes a
// comment every 15 s, so three missed ones mean a connection that a proxy or a network change cut without telling.
const sseIdle = 45 * time.Second

// maxSSELine bounds one line of the stream (one event's JSON, a whole case).
const maxSSELine = 16 << 20

// sseOnce opens GET /v1/events:stream from the position reached and handles what arrives until the stream ends.
func (f *follower) sseOnce(ctx context.Context) (opened bool, tok *oauth2.Token, err error) {
	tok, err = f.c.tokens.get(ctx)
	if err != nil {
		return false, nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	q := url.Values{}
	if f.cursor != "" {
		q.Set("after", f.cursor)
	}
	for _, t := range f.o.Types {
		q.Add("types", t)
	}
	u := f.c.api + "/v1/events:stream"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, tok, fmt.Errorf("casekeeper: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "text/event-stream")
	if f.cursor != "" && f.cursor != Latest {
		req.Header.Set("Last-Event-ID", f.cursor)
	}
	idle := time.AfterFunc(requestTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	resp, err := f.c.http.Do(req)
	if err != nil {
		return false, tok, streamErr(ctx, fmt.Errorf("casekeeper: opening the event stream: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return false, tok, httpError(resp, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, tok, fmt.Errorf("casekeeper: the event stream answered %q, not text/event-stream", ct)
	}

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	var ev sseEvent
	for {
		idle.Reset(sseIdle)
		if !sc.Scan() {
			break
		}
		line := sc.Text()
		if line != "" {
			ev.add(line)
			continue
		}
		if err := f.dispatch(ctx, ev); err != nil {
			return true, tok, err
		}
		ev = sseEvent{}
	}
	if err := sc.Err(); err != nil {
		return true, tok, streamErr(ctx, fmt.Errorf("casekeeper: reading the event stream: %w", err))
	}
	return true, tok, errStreamEnded
}

var errIdle = errors.New("casekeeper: the event stream went silent")

// streamErr names the silence when the watchdog cut the stream.
func streamErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errIdle) {
		return cause
	}
	return err
}

// sseEvent is one event of the stream as the lines before a blank line gave it.
type sseEvent struct {
	id, name string
	data     strings.Builder
	hasData  bool
}

func (e *sseEvent) add(line string) {
	if strings.HasPrefix(line, ":") {
		return // a comment: the keep-alive
	}
	field, value, _ := strings.Cut(line, ":")
	value = strings.TrimPrefix(value, " ")
	switch field {
	case "id":
		e.id = value
	case "event":
		e.name = value
	case "data":
		if e.hasData {
			e.data.WriteByte('\n')
		}
		e.data.WriteString(value)
		e.hasData = true
	}
}

func (f *follower) dispatch(ctx context.Context, e sseEvent) error {
	switch {
	case !e.hasData:
		return nil // the retry: field, or an empty event
	case e.name == "error":
		return httpError(&http.Response{StatusCode: http.StatusOK, Header: http.Header{}}, []byte(e.data.String())).withoutHTTP()
	case e.name == "bookmark":
		var b struct {
			Cursor string `json:"cursor"`
		}
		if err := json.Unmarshal([]byte(e.data.String()), &b); err != nil || b.Cursor == "" {
			b.Cursor = e.id
		}
		return f.advance(ctx, b.Cursor)
	case e.name == "" || strings.HasPrefix(e.name, "case."):
		var ev casekeeperv1.CaseEvent
		if err := unmarshal.Unmarshal([]byte(e.data.String()), &ev); err != nil {
			return fmt.Errorf("casekeeper: decoding a streamed event: %w", err)
		}
		if ev.GetCursor() == "" {
			ev.Cursor = e.id
		}
		return f.handle(ctx, &ev)
	}
	return nil // an event kind added later
}

// withoutHTTP marks an error that arrived inside a stream (its gRPC code is what counts, not the 200 that opened it).
func (e *APIError) withoutHTTP() *APIError {
	e.HTTPStatus = 0
	return e
}
