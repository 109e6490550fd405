// Package feed is the change feed's domain: a tenant's case events in the order JetStream stored them, addressed by
// an opaque cursor. It holds no I/O.
package feed

import (
	"errors"
	"github.com/google/uuid"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/validation"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// Entry is one event at its position in the feed. The position is the CASES stream sequence of the message: strictly
// increasing across the stream, so increasing within each tenant too (with gaps, which nobody relies on).
type Entry struct {
	Seq   int64
	Event *casekeeperv1.CaseEvent
	// StoredAt is when the feed stored the event; the feed expires events by it.
	StoredAt time.Time
}

// Cursor is the entry's position, as of when it was stored.
func (e Entry) Cursor() Cursor { return Cursor{Seq: e.Seq, Issued: e.StoredAt} }

// Query asks for a tenant's events strictly after a position.
type Query struct {
	Tenant string
	After  int64
	// From is the cursor the reader gave (its Seq is After); zero when it gave none or Latest.
	From Cursor
	// Latest asks to start at the head: the reader wants only what happens from now on.
	Latest bool
	// Types filters by event type; empty means all.
	Types []string
	// CaseID keeps only one case's events; empty means all.
	CaseID string
	Limit  int
}

// Paging limits of ListCaseEvents.
const (
	DefaultPageSize = 100
	MaxPageSize     = 500
	// MaxWait bounds a long-poll, so that proxies with a one-minute idle timeout do not cut it.
	MaxWait = 60 * time.Second
)

// ErrNotFound is returned by stores when there is nothing at a key.
var ErrNotFound = errors.New("feed: not found")

// ErrCursorExpired says that events after the reader's cursor may have been deleted by the retention: following the
// feed from it could skip some, so the reader has to resync (list the cases, then follow the feed from Latest).
var ErrCursorExpired = errors.New("feed: cursor expired")

// NewQuery validates the parameters of a feed read, naming the parameter at fault.
func NewQuery(tenant, after string, types []string, pageSize int32) (Query, error) {
	var errs validation.Errors
	q := Query{Tenant: tenant, Limit: int(pageSize)}
	switch after {
	case "":
	case Latest:
		q.Latest = true
	default:
		c, err := ParseCursor(after)
		if err != nil {
			errs.Add("after", "is not a cursor returned by this API (or %q)", Latest)
		}
		q.After, q.From = c.Seq, c
	}
	for _, t := range types {
		if !slices.Contains(events.Types, t) {
			errs.Add("types", "%q is not an event type (one of %v)", t, events.Types)
			break
		}
	}
	if len(types) > 0 {
		q.Types = slices.Compact(slices.Sorted(slices.Values(types)))
	}
	switch {
	case pageSize == 0:
		q.Limit = DefaultPageSize
	case pageSize < 0 || pageSize > MaxPageSize:
		errs.Add("page_size", "must be between 1 and %d", MaxPageSize)
	}
	return q, errs.Err()
}

// WithCase narrows q to one case; the id must look like a case id.
func (q Query) WithCase(caseID string) (Query, error) {
	if caseID == "" {
		return q, nil
	}
	if uuid.Validate(caseID) != nil {
		var errs validation.Errors
		errs.Add("case_id", "must be a case id (UUID)")
		return q, errs
	}
	q.CaseID = caseID
	return q, nil
}

// ValidateWait checks a long-poll duration.
func ValidateWait(d time.Duration) error {
	if d < 0 || d > MaxWait {
		return validation.Errors{{Field: "wait", Message: "must be between 0s and " + MaxWait.String()}}
	}
	return nil
}

// Wants reports whether the query's type filter lets the event type through.
func (q Query) Wants(eventType string) bool {
	return len(q.Types) == 0 || slices.Contains(q.Types, eventType)
}

// PollHint is the interval the feed's answers ask a poller to keep between polls, raised while the replica is busy:
// a poller that follows it never polls faster than the feed can change usefully, and backs off before the rate limit
// has to refuse it.
type PollHint struct {
	// Interval is the hint when the replica is not busy (default 5s).
	Interval time.Duration
	// Busy is the number of reads in flight at which the hint doubles; it doubles again at each further multiple,
	// up to MaxPollBackoff times Interval (default 64).
	Busy int64
}

// MaxPollBackoff bounds how far load raises the poll hint.
const MaxPollBackoff = 8

// For returns the hint with inFlight reads being served.
func (h PollHint) For(inFlight int64) time.Duration {
	interval, busy := h.Interval, h.Busy
	if interval <= 0 {
		interval = 5 * time.Second
	}
	if busy <= 0 {
		busy = 64
	}
	factor := int64(1)
	for level := inFlight / busy; level > 0 && factor < MaxPollBackoff; level /= 2 {
		factor *= 2
	}
	return time.Duration(factor) * interval
}

// Seconds renders For as the whole seconds of an X-Poll-Interval header (at least 1).
func (h PollHint) Seconds(inFlight int64) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(h.For(inFlight).Seconds()))), 10)
}
