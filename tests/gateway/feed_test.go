package gateway_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
)

// The feed's answers to a client that comes back late or polls: an expired cursor asks for a resync (and a cursor
// whose successors are all still stored does not), `latest` starts at the head, every answer carries the poll
// interval, a 304 costs nothing of the rate budget, and idle long-polls, SSE and gRPC streams hand out renewed
// cursors (bookmarks). Its own stack: it deletes feed entries, as the retention would.
func TestFeedResyncHintsAndBookmarks(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	acme := h.acme()
	before := h.head(t, acme)
	e1 := h.publish(t, "acme", "resync-1", events.TypeCreated, 1)
	e2 := h.publish(t, "acme", "resync-2", events.TypeCreated, 1)
	page := h.page(t, "/v1/events?after="+before, acme, 2)
	if page.Events[0].ID != e1.GetId() || page.Events[1].ID != e2.GetId() {
		t.Fatalf("feed after the cursor: %+v", page.Events)
	}
	c1 := page.Events[0].Cursor
	// Older than the retention (1h here), but the events after it are all still stored: it stands.
	aged := agedCursor(t, c1, 2*time.Hour)
	if resp, body := h.get(t, "/v1/events?after="+aged, acme); resp.StatusCode != http.StatusOK {
		t.Fatalf("an old cursor with nothing deleted after it: %d %s", resp.StatusCode, body)
	}

	t.Run("ExpiredCursorIs410", func(t *testing.T) {
		// The retention deletes acme's oldest events, up to e1: events after the aged cursor may be gone.
		db := testinfra.ConnectMongo(t, h.mongoURI, h.db)
		seq1, _ := cursorParts(t, c1)
		if _, err := db.Collection("feed").DeleteMany(t.Context(), bson.D{{Key: "tenant", Value: "acme"},
			{Key: "seq", Value: bson.D{{Key: "$lte", Value: seq1}}}}); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/v1/events?after=", "/v1/events:stream?after="} {
			resp, body := h.get(t, path+aged, acme)
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Details []struct {
					Type   string `json:"@type"`
					Reason string `json:"reason"`
					Domain string `json:"domain"`
				} `json:"details"`
			}
			_ = json.Unmarshal(body, &e)
			if resp.StatusCode != http.StatusGone || e.Code != int(codes.FailedPrecondition) || len(e.Details) != 1 ||
				e.Details[0].Reason != "CURSOR_EXPIRED" || e.Details[0].Domain != "casekeeper.dev" ||
				!strings.Contains(e.Message, "after=latest") || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s with an expired cursor: %d %s", path, resp.StatusCode, body)
			}
		}
		client := casekeeperv1.NewCaseQueryServiceClient(h.grpcConn(t))
		ctx := testinfra.Bearer(t.Context(), acme)
		_, err := client.ListCaseEvents(ctx, &casekeeperv1.ListCaseEventsRequest{After: aged})
		if reason := errorReason(err); status.Code(err) != codes.FailedPrecondition || reason != "CURSOR_EXPIRED" {
			t.Fatalf("gRPC ListCaseEvents with an expired cursor: %v (%s)", err, reason)
		}
		stream, err := client.WatchCaseEvents(ctx, &casekeeperv1.WatchCaseEventsRequest{After: aged})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.FailedPrecondition || errorReason(err) != "CURSOR_EXPIRED" {
			t.Fatalf("gRPC WatchCaseEvents with an expired cursor: %v", err)
		}
		// The same position, handed out recently, is fine: expiry is about the cursor's age.
		if resp, body := h.get(t, "/v1/events?after="+c1, acme); resp.StatusCode != http.StatusOK {
			t.Fatalf("a recent cursor: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("LatestStartsAtTheHead", func(t *testing.T) {
		latest := h.page(t, "/v1/events?after=latest", acme, 0)
		if seq, _ := cursorParts(t, latest.NextCursor); seq != mustSeq(t, page.Events[1].Cursor) {
			t.Fatalf("after=latest answered position %d, want the head %d", seq, mustSeq(t, page.Events[1].Cursor))
		}
		e3 := h.publish(t, "acme", "resync-3", events.TypeCreated, 1)
		if next := h.page(t, "/v1/events?wait=5s&after="+latest.NextCursor, acme, 1); next.Events[0].ID != e3.GetId() {
			t.Fatalf("after the head: %+v", next.Events)
		}
	})

	t.Run("PollIntervalAndFree304s", func(t *testing.T) {
		gw := h.startGateway(func(c *gatewaysvc.Config) {
			c.RateLimit, c.RateBurst, c.PollInterval = 0.001, 3, 7*time.Second
		})
		base := "http://" + gw.HTTPAddr()
		path := base + "/v1/events?after=" + h.head(t, acme)
		resp, _ := h.get(t, path, acme)
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Poll-Interval") != "7" || etag == "" {
			t.Fatalf("first poll: %d X-Poll-Interval=%q ETag=%q", resp.StatusCode, resp.Header.Get("X-Poll-Interval"), etag)
		}
		// Ten revalidations with the burst at 3: none is refused, because a 304 costs nothing.
		for i := range 10 {
			resp, _ := h.get(t, path, acme, "If-None-Match: "+etag)
			if resp.StatusCode != http.StatusNotModified || resp.Header.Get("X-Poll-Interval") != "7" {
				t.Fatalf("revalidation %d: %d X-Poll-Interval=%q", i, resp.StatusCode, resp.Header.Get("X-Poll-Interval"))
			}
		}
		// Full answers still count: two more fit the burst, the next is a 429 with Retry-After.
		for i := range 2 {
			if resp, body := h.get(t, path, acme); resp.StatusCode != http.StatusOK {
				t.Fatalf("poll %d within the burst: %d %s", i, resp.StatusCode, body)
			}
		}
		if resp, _ := h.get(t, path, acme); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("poll past the burst: %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})

	t.Run("SnapshotThenChanges", func(t *testing.T) {
		provider := h.acmeProvider()
		a, b := h.createCase(t, provider, "snapshot-a"), h.createCase(t, provider, "snapshot-b")
		client := casekeeperv1.NewCaseQueryServiceClient(h.grpcConn(t))
		ctx, cancel := context.WithTimeout(testinfra.Bearer(t.Context(), acme), 15*time.Second)
		defer cancel()
		stream, err := client.WatchCaseEvents(ctx, &casekeeperv1.WatchCaseEventsRequest{Snapshot: true})
		if err != nil {
			t.Fatal(err)
		}
		snap := map[string]int64{}
		for {
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("snapshot after %d cases: %v", len(snap), err)
			}
			if m.GetSnapshot() != nil {
				if m.GetSnapshot().GetTenant() != "acme" {
					t.Fatalf("snapshot case of tenant %s", m.GetSnapshot().GetTenant())
				}
				snap[m.GetSnapshot().GetId()] = m.GetSnapshot().GetVersion()
				continue
			}
			if !m.GetBookmark().GetEndOfSnapshot() {
				t.Fatalf("before the end of the snapshot: %v", m)
			}
			break
		}
		if snap[a.GetId()] != a.GetVersion() || snap[b.GetId()] != b.GetVersion() {
			t.Fatalf("snapshot %v misses the cases just written (%s, %s)", snap, a.GetId(), b.GetId())
		}
		// Then the changes: a case written now arrives as its event (after, perhaps, events the snapshot already
		// reflects, which a reader tells by their versions).
		c := h.createCase(t, provider, "snapshot-c")
		for {
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("changes after the snapshot: %v", err)
			}
			ev := m.GetEvent()
			if ev == nil {
				continue
			}
			if v, ok := snap[ev.GetCaseId()]; ok && ev.GetCaseVersion() <= v {
				continue
			}
			if ev.GetCaseId() != c.GetId() || ev.GetType() != events.TypeCreated {
				t.Fatalf("first change after the snapshot: %s of %s, want the creation of %s", ev.GetType(), ev.GetCaseId(), c.GetId())
			}
			break
		}
		// Over SSE: snapshot lines, then the end-of-snapshot bookmark.
		sctx, scancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer scancel()
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, h.base+"/v1/events:stream?snapshot=true", nil)
		req.Header.Set("Authorization", "Bearer "+acme)
		sse, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer sse.Body.Close()
		sc := bufio.NewScanner(sse.Body)
		cases := 0
		for {
			e := readSSE(t, sc, 1)[0]
			var m struct {
				Tenant        string `json:"tenant"`
				EndOfSnapshot bool   `json:"end_of_snapshot"`
				Cursor        string `json:"cursor"`
			}
			if err := json.Unmarshal([]byte(e.data), &m); err != nil {
				t.Fatalf("SSE line %+v: %v", e, err)
			}
			if e.typ == "snapshot" && e.id == "" && m.Tenant == "acme" {
				cases++
				continue
			}
			if e.typ != "bookmark" || !m.EndOfSnapshot || e.id == "" || m.Cursor != e.id || cases < len(snap) {
				t.Fatalf("SSE end of snapshot %+v after %d cases, want at least %d", e, cases, len(snap))
			}
			break
		}
		// A snapshot start with a cursor is refused, naming the field.
		resp, body := h.get(t, "/v1/events:stream?snapshot=true&after="+c1, acme)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"field":"snapshot"`) {
			t.Fatalf("snapshot with a cursor: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("BookmarksOnLongPollSSEAndWatch", func(t *testing.T) {
		gw := h.startGateway(func(c *gatewaysvc.Config) { c.BookmarkInterval = 300 * time.Millisecond })
		base := "http://" + gw.HTTPAddr()
		from := h.head(t, acme)
		// Events the reader's filter leaves out move the feed on; the bookmarks carry the reader past them.
		h.publish(t, "acme", "bookmark-1", events.TypeCreated, 1)
		h.publish(t, "acme", "bookmark-2", events.TypeCreated, 1)
		head := mustSeq(t, h.page(t, "/v1/events?after="+from, acme, 2).Events[1].Cursor)
		filter := "&types=" + events.TypeRedacted

		// Long-poll: an empty answer's cursor is the head, renewed.
		resp, body := h.get(t, base+"/v1/events?wait=1s&after="+from+filter, acme)
		var lp feedPage
		if err := json.Unmarshal(body, &lp); err != nil || resp.StatusCode != http.StatusOK || len(lp.Events) != 0 {
			t.Fatalf("filtered long-poll: %d %s", resp.StatusCode, body)
		}
		if seq, issued := cursorParts(t, lp.NextCursor); seq != head || time.Since(issued) > time.Minute {
			t.Fatalf("long-poll bookmark at %d issued %v, want the head %d, now", seq, issued, head)
		}

		// SSE: an `event: bookmark` whose id is the renewed cursor.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events:stream?after="+from+filter, nil)
		req.Header.Set("Authorization", "Bearer "+acme)
		sse, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer sse.Body.Close()
		got := readSSE(t, bufio.NewScanner(sse.Body), 1)[0]
		var bm struct {
			Cursor string `json:"cursor"`
		}
		if err := json.Unmarshal([]byte(got.data), &bm); err != nil || got.typ != "bookmark" || bm.Cursor != got.id || mustSeq(t, got.id) != head {
			t.Fatalf("SSE bookmark %+v (head %d): %v", got, head, err)
		}

		// gRPC: a response with only the bookmark set.
		conn := testinfra.Dial(t, gw.GRPCAddr())
		wctx, wcancel := context.WithTimeout(testinfra.Bearer(t.Context(), acme), 10*time.Second)
		defer wcancel()
		stream, err := casekeeperv1.NewCaseQueryServiceClient(conn).WatchCaseEvents(wctx,
			&casekeeperv1.WatchCaseEventsRequest{After: from, Types: []string{events.TypeRedacted}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.Recv()
		if err != nil || m.GetEvent() != nil || mustSeq(t, m.GetBookmark().GetCursor()) != head {
			t.Fatalf("gRPC bookmark %v (head %d): %v", m, head, err)
		}
	})
}

type feedPage struct {
	Events []struct {
		ID     string `json:"id"`
		Cursor string `json:"cursor"`
	} `json:"events"`
	NextCursor string `json:"next_cursor"`
}

// page reads one feed page that holds n events, once the projector has stored them (within 10 s).
func (h *harness) page(t *testing.T, path, token string, n int) feedPage {
	t.Helper()
	var p feedPage
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := h.get(t, path, token)
		p = feedPage{}
		if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != http.StatusOK || len(p.Events) > n {
			t.Fatalf("GET %s: %d %s, want %d events", path, resp.StatusCode, body, n)
		}
		if len(p.Events) == n {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d events after 10s, want %d", path, len(p.Events), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cursorParts reads the position and the issue time out of a cursor: version 2, position, Unix milliseconds, CRC-32.
// The test knows the layout on purpose — it is how it makes a cursor look old without waiting for the retention.
func cursorParts(t testing.TB, c string) (int64, time.Time) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) != 21 || b[0] != 2 {
		t.Fatalf("cursor %q is not a version 2 cursor", c)
	}
	return int64(binary.BigEndian.Uint64(b[1:9])), time.UnixMilli(int64(binary.BigEndian.Uint64(b[9:17])))
}

func mustSeq(t testing.TB, c string) int64 {
	t.Helper()
	seq, _ := cursorParts(t, c)
	return seq
}

// agedCursor is the cursor c as if it had been handed out age ago.
func agedCursor(t testing.TB, c string, age time.Duration) string {
	seq, issued := cursorParts(t, c)
	var b [21]byte
	b[0] = 2
	binary.BigEndian.PutUint64(b[1:9], uint64(seq))
	binary.BigEndian.PutUint64(b[9:17], uint64(issued.Add(-age).UnixMilli()))
	binary.BigEndian.PutUint32(b[17:], crc32.ChecksumIEEE(b[:17]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// errorReason is the ErrorInfo reason of a gRPC error.
func errorReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason()
		}
	}
	return fmt.Sprint(err)
}
