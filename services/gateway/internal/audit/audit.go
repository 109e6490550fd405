// Package audit records every read of case data through the gateway — who (subject, client, tenant), what (API
// method, case ids), when — and never the data itself: the audit log must not become a second copy of the
// personal data it guards. Records are only ever appended.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"

	"github.com/casekeeper/core/pkg/validation"
)

// Record is one read.
type Record struct {
	ID       string
	At       time.Time
	Tenant   string
	Subject  string
	ClientID string
	// Via is the service that asserted the caller's identity, if any.
	Via     string
	API     string
	CaseIDs []string
}

// Page asks for a tenant's records from Since, after the record a page token names.
type Page struct {
	Tenant  string
	Since   time.Time
	AfterAt time.Time
	AfterID string
	Limit   int
}

// Store appends and reads records. It offers no update or delete: append-only is a property of the interface, and
// in production the gateway's database user should be granted insert and find on the collection and nothing else.
// Appending a record already stored (same id) is a no-op: the audit log's projector may write a batch twice.
type Store interface {
	Append(ctx context.Context, recs []Record) error
	List(ctx context.Context, p Page) ([]Record, error)
}

// NewID returns a unique id that sorts by time (nanoseconds, then randomness).
func NewID(at time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixNano()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// Paging limits of ListAuditRecords.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// NewPage validates a request for records.
func NewPage(tenant string, since time.Time, pageSize int32, token string) (Page, error) {
	var errs validation.Errors
	p := Page{Tenant: tenant, Since: since, Limit: int(pageSize)}
	switch {
	case pageSize == 0:
		p.Limit = DefaultPageSize
	case pageSize < 0 || pageSize > MaxPageSize:
		errs.Add("page_size", "must be between 1 and %d", MaxPageSize)
	}
	if token != "" {
		at, id, err := decodeToken(token)
		if err != nil {
			errs.Add("page_token", "is not a token returned by this API")
		}
		p.AfterAt, p.AfterID = at, id
	}
	return p, errs.Err()
}

// NextToken names the position after the last record of a page.
func NextToken(last Record) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(last.At.UnixNano()))
	return base64.RawURLEncoding.EncodeToString(append(b, last.ID...))
}

func decodeToken(s string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 8+24 {
		return time.Time{}, "", errors.New("bad token")
	}
	id := string(b[8:])
	if _, err := hex.DecodeString(id); err != nil {
		return time.Time{}, "", errors.New("bad token")
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))).UTC(), id, nil
}

// Stamp fills in what a record gets when it is made: the time (milliseconds, as BSON dates keep them, so that page
// tokens and stored values are equal) and an id that sorts by it.
func Stamp(r Record, now time.Time) Record {
	if r.At.IsZero() {
		r.At = now.UTC()
	}
	r.At = r.At.UTC().Truncate(time.Millisecond)
	if r.ID == "" {
		r.ID = NewID(r.At)
	}
	return r
}
