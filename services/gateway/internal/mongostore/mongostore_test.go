package mongostore

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/audit"
	"github.com/casekeeper/core/services/gateway/internal/feed"
)

func entry(seq int64, id, tenant, caseID, typ string) feed.Entry {
	return feed.Entry{Seq: seq, Event: &casekeeperv1.CaseEvent{Id: id, Type: typ, Tenant: tenant, CaseId: caseID,
		Data: &casekeeperv1.Case{Id: caseID, Tenant: tenant, ExternalRef: "ref-" + id,
			Applicant: &casekeeperv1.Applicant{FullName: "Jane Doe", Email: "jane@example.test"}}}}
}

// TestStores runs against FerretDB, the engine of development and tests (MongoDB 7 in production offers a superset).
func TestStores(t *testing.T) {
	uri, name := testinfra.Mongo(t)
	db := testinfra.ConnectMongo(t, uri, name)
	ctx := context.Background()

	t.Run("FeedIsIdempotentOrderedAndPerTenant", func(t *testing.T) {
		s, err := NewFeedStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []feed.Entry{
			entry(1, "a1", "acme", "c1", events.TypeCreated),
			entry(2, "g1", "globex", "g1", events.TypeCreated),
			entry(3, "a2", "acme", "c1", events.TypeStatusChanged),
			entry(3, "a2", "acme", "c1", events.TypeStatusChanged), // JetStream redelivery
			entry(9, "a2", "acme", "c1", events.TypeStatusChanged), // republished under a new sequence
			entry(4, "a3", "acme", "c2", events.TypeCreated),
		} {
			if err := s.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.After(ctx, feed.Query{Tenant: "acme", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range got {
			ids = append(ids, e.Event.GetId())
			if e.StoredAt.IsZero() || e.Event.GetCursor() != e.Cursor().String() {
				t.Fatalf("event %s without its cursor and storage time", e.Event.GetId())
			}
		}
		if len(ids) != 3 || ids[0] != "a1" || ids[1] != "a2" || ids[2] != "a3" {
			t.Fatalf("acme's feed = %v", ids)
		}
		got, _ = s.After(ctx, feed.Query{Tenant: "acme", After: 1, Types: []string{events.TypeCreated}, Limit: 10})
		if len(got) != 1 || got[0].Event.GetId() != "a3" {
			t.Fatalf("filtered = %v", got)
		}
		got, _ = s.After(ctx, feed.Query{Tenant: "acme", Limit: 1})
		if len(got) != 1 {
			t.Fatalf("limit ignored: %d", len(got))
		}
		got, _ = s.After(ctx, feed.Query{Tenant: "acme", CaseID: "c1", Limit: 10})
		if len(got) != 2 || got[0].Event.GetId() != "a1" || got[1].Event.GetId() != "a2" {
			t.Fatalf("one case's timeline = %v", got)
		}
		if got, _ = s.After(ctx, feed.Query{Tenant: "globex", CaseID: "c1", Limit: 10}); len(got) != 0 {
			t.Fatalf("another tenant's case filter found %d events", len(got))
		}
		// The head only moves forward (the republished copy at 9 moved it, which is harmless: readers skip to it).
		if h, _ := s.Head(ctx, "acme"); h != 9 {
			t.Fatalf("acme head = %d", h)
		}
		if err := s.Append(ctx, entry(5, "a4", "acme", "c3", events.TypeCreated)); err != nil {
			t.Fatal(err)
		}
		if h, _ := s.Head(ctx, "acme"); h != 9 {
			t.Fatalf("head moved back to %d", h)
		}
		if h, _ := s.Head(ctx, "nobody"); h != 0 {
			t.Fatalf("head of an unknown tenant = %d", h)
		}
	})

	t.Run("RedactionScrubsEarlierEvents", func(t *testing.T) {
		s, err := NewFeedStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		red := entry(21, "r2", "acme", "cr", events.TypeRedacted)
		red.Event.OccurredAt = timestamppb.New(time.Now())
		for _, e := range []feed.Entry{entry(20, "r1", "acme", "cr", events.TypeCreated), red} {
			if err := s.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := s.After(ctx, feed.Query{Tenant: "acme", After: 19, Limit: 1})
		if len(got) != 1 || got[0].Event.GetData().GetApplicant() != nil || got[0].Event.GetData().GetExternalRef() != "" || got[0].Event.GetData().GetId() != "cr" {
			t.Fatalf("earlier event not scrubbed: %v", got)
		}
	})

	t.Run("RetentionExpiresOldEntriesOnly", func(t *testing.T) {
		s, err := NewFeedStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Oldest(ctx, "expire"); ok || err != nil {
			t.Fatalf("oldest entry of an empty feed: %v %v", ok, err)
		}
		for _, e := range []feed.Entry{entry(31, "x2", "expire", "c", events.TypeUpdated), entry(30, "x1", "expire", "c", events.TypeCreated)} {
			if err := s.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if seq, ok, err := s.Oldest(ctx, "expire"); seq != 30 || !ok || err != nil {
			t.Fatalf("oldest entry %d %v %v, want 30", seq, ok, err)
		}
		if n, err := s.Expire(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("expired %d fresh entries: %v", n, err)
		}
		if n, err := s.Expire(ctx, time.Now().Add(time.Second)); err != nil || n == 0 {
			t.Fatalf("expired nothing: %v", err)
		}
		if got, _ := s.After(ctx, feed.Query{Tenant: "expire", Limit: 10}); len(got) != 0 {
			t.Fatalf("expired entry still read: %v", got)
		}
		if h, _ := s.Head(ctx, "expire"); h != 31 {
			t.Fatalf("head lost with the entries: %d", h)
		}
	})

	t.Run("AuditExpiresOnlyOldRecordsInBoundedPasses", func(t *testing.T) {
		s, err := NewAuditStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		cutoff := time.Now().UTC().Add(-400 * 24 * time.Hour).Truncate(time.Millisecond)
		var recs []audit.Record
		for i := range 7 {
			at := cutoff.Add(-time.Duration(i+1) * time.Hour)
			recs = append(recs, audit.Record{ID: audit.NewID(at), At: at, Tenant: "aged", API: "x", CaseIDs: []string{"c"}})
		}
		for _, at := range []time.Time{cutoff, cutoff.Add(time.Hour)} {
			recs = append(recs, audit.Record{ID: audit.NewID(at), At: at, Tenant: "aged", API: "x", CaseIDs: []string{"c"}})
		}
		if err := s.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		var passes []int64
		for range 5 {
			n, err := s.Expire(ctx, cutoff, 3)
			if err != nil {
				t.Fatal(err)
			}
			passes = append(passes, n)
			if n == 0 {
				break
			}
		}
		if len(passes) != 4 || passes[0] != 3 || passes[1] != 3 || passes[2] != 1 || passes[3] != 0 {
			t.Fatalf("passes of at most 3 deleted %v, want [3 3 1 0]", passes)
		}
		left, err := s.List(ctx, audit.Page{Tenant: "aged", Limit: 10})
		if err != nil || len(left) != 2 || !left[0].At.Equal(cutoff) || !left[1].At.Equal(cutoff.Add(time.Hour)) {
			t.Fatalf("left %+v, %v; want the records at and after the cutoff", left, err)
		}
	})

	t.Run("AuditPagesInTimeOrderPerTenant", func(t *testing.T) {
		s, err := NewAuditStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		base := time.Now().UTC().Truncate(time.Millisecond)
		var recs []audit.Record
		for i := range 5 {
			at := base.Add(time.Duration(i/2) * time.Millisecond) // two records share each millisecond
			recs = append(recs, audit.Record{ID: audit.NewID(at.Add(time.Duration(i))), At: at, Tenant: "acme", API: "x", CaseIDs: []string{"c"}})
		}
		recs = append(recs, audit.Record{ID: audit.NewID(base), At: base, Tenant: "globex", API: "x"})
		if err := s.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		var seen []string
		p := audit.Page{Tenant: "acme", Limit: 2}
		for range 10 {
			page, err := s.List(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				seen = append(seen, r.ID)
			}
			if len(page) < p.Limit {
				break
			}
			p.AfterAt, p.AfterID = page[len(page)-1].At, page[len(page)-1].ID
		}
		if len(seen) != 5 {
			t.Fatalf("paged %d records, want 5: %v", len(seen), seen)
		}
		for i := 1; i < len(seen); i++ {
			if seen[i] <= seen[i-1] {
				t.Fatalf("out of order or repeated: %v", seen)
			}
		}
	})
}
