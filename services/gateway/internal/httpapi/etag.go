package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/feed"
)

// setETag is grpc-gateway's forward-response option: every successful answer gets a validator. A case is named by
// its id and version (every change bumps the version); any other answer — a feed page, a list — by a hash of its
// deterministic encoding, so an empty poll whose cursor did not move has the same ETag as the previous one.
// Cache-Control keeps answers out of shared caches (they hold personal data) while letting the client revalidate.
func setETag(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	var tag string
	if c, ok := m.(*casekeeperv1.GetCaseResponse); ok && c.GetCase() != nil {
		sum := sha256.Sum256([]byte(c.GetCase().GetId()))
		tag = `W/"c` + hex.EncodeToString(sum[:8]) + "-" + strconv.FormatInt(c.GetCase().GetVersion(), 10) + `"`
	} else {
		if page, ok := m.(*casekeeperv1.ListCaseEventsResponse); ok {
			m = withoutCursorTime(page)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return nil // no validator is better than a failed answer
		}
		sum := sha256.Sum256(b)
		tag = `W/"` + hex.EncodeToString(sum[:12]) + `"`
	}
	w.Header().Set("ETag", tag)
	w.Header().Set("Cache-Control", "private, no-cache")
	return nil
}

// withoutCursorTime is a feed page as its validator sees it: an empty poll renews its cursor's time at every
// answer, and a poller that revalidates must still get its 304. Its old cursor stays good (see the feed's expiry
// rule: a cursor at the head never expires).
func withoutCursorTime(page *casekeeperv1.ListCaseEventsResponse) proto.Message {
	c, err := feed.ParseCursor(page.GetNextCursor())
	if err != nil {
		return page
	}
	stable := proto.Clone(page).(*casekeeperv1.ListCaseEventsResponse)
	stable.NextCursor = feed.Cursor{Seq: c.Seq}.String()
	return stable
}

// notModified turns a 200 whose ETag the client already holds into a 304 without a body. It decides when the
// status is written, after grpc-gateway set the ETag, so it needs no buffering.
type notModified struct {
	http.ResponseWriter
	ifNoneMatch string
	decided     bool
	suppress    bool
	// unchanged is called when the answer is a 304.
	unchanged func()
}

func (w *notModified) WriteHeader(code int) {
	if w.decided {
		return
	}
	w.decided = true
	if code == http.StatusOK && etagMatches(w.ifNoneMatch, w.Header().Get("ETag")) {
		w.suppress = true
		h := w.Header()
		h.Del("Content-Type")
		h.Del("Content-Length")
		w.ResponseWriter.WriteHeader(http.StatusNotModified)
		if w.unchanged != nil {
			w.unchanged()
		}
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *notModified) Write(b []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.suppress {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *notModified) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// etagMatches is the weak comparison of If-None-Match (RFC 9110 §13.1.2).
func etagMatches(header, etag string) bool {
	if etag == "" {
		return false
	}
	opaque := strings.TrimPrefix(etag, "W/")
	for _, c := range strings.Split(header, ",") {
		c = strings.TrimSpace(c)
		if c == "*" || strings.TrimPrefix(c, "W/") == opaque {
			return true
		}
	}
	return false
}

// withConditionalGET answers 304 when the client holds the answer already; such an answer is given back to the
// client's rate budget (refund, when set), so that revalidating costs a poller nothing of it.
func withConditionalGET(refund func(*http.Request), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inm := r.Header.Get("If-None-Match")
		if inm == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		nm := &notModified{ResponseWriter: w, ifNoneMatch: inm}
		if refund != nil {
			nm.unchanged = func() { refund(r) }
		}
		next.ServeHTTP(nm, r)
	})
}
