// Package feed is the change feed's domain: a tenant's case events in the order JetStream stored them, addressed by
// an opaque cursor. It holds no I/O.
package feed

import (
	"errors"
	"github.com/google/uuid"
	"slices"
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
}

// Query asks for a tenant's events strictly after a position.
type Query struct {
	Tenant string
	After  int64
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

// NewQuery validates the parameters of a feed read, naming the parameter at fault.
func NewQuery(tenant, after string, types []string, pageSize int32) (Query, error) {
	var errs validation.Errors
	q := Query{Tenant: tenant, Limit: int(pageSize)}
	if after != "" {
		pos, err := DecodeCursor(after)
		if err != nil {
			errs.Add("after", "is not a cursor returned by this API")
		}
		q.After = pos
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
