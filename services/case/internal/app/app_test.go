package app

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/casekeeper/core/services/case/internal/kyc"
)

// memLog is a subject per case with the stream's compare-and-set rule: an append names the sequence it read.
type memLog struct {
	mu      sync.Mutex
	seq     uint64
	records map[string]Record
	reads   int
}

func (m *memLog) Last(_ context.Context, tenant, id string) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	rec, ok := m.records[tenant+"/"+id]
	if !ok {
		return Record{}, kyc.ErrNotFound
	}
	return Record{Case: rec.Case.Clone(), Seq: rec.Seq, EventID: rec.EventID}, nil
}

func (m *memLog) Append(_ context.Context, ev Event, prevSeq uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := ev.Case.Tenant + "/" + ev.Case.ID
	if m.records[key].Seq != prevSeq {
		return 0, ErrConflict
	}
	m.seq++
	m.records[key] = Record{Case: ev.Case.Clone(), Seq: m.seq, EventID: ev.ID}
	return m.seq, nil
}

type noProjection struct{}

func (noProjection) Get(context.Context, string, string) (*kyc.Case, error) {
	return nil, kyc.ErrNotFound
}
func (noProjection) List(context.Context, string, ListQuery) ([]*kyc.Case, error) {
	return nil, nil
}

type memRequests struct {
	mu     sync.Mutex
	claims map[string]string
}

func (m *memRequests) Claim(_ context.Context, tenant, requestID, caseID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if owner, ok := m.claims[tenant+"/"+requestID]; ok {
		return owner, nil
	}
	m.claims[tenant+"/"+requestID] = caseID
	return caseID, nil
}

func newCases() (*Cases, *memLog) {
	log := &memLog{records: map[string]Record{}}
	return New(log, noProjection{}, &memRequests{claims: map[string]string{}}, nil), log
}

func newCase(t *testing.T, a *Cases) *kyc.Case {
	t.Helper()
	c, err := a.Create(t.Context(), "acme", kyc.NewCase{RequestID: "r1", Applicant: kyc.Applicant{FullName: "Jane Roe"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Another replica writing the case makes this process's remembered record stale: the append's compare-and-set
// refuses it, and the write is re-read and applied on the current case, not lost and not doubled.
func TestStaleRememberedRecordIsReReadNotLost(t *testing.T) {
	mine, log := newCases()
	theirs := New(log, noProjection{}, &memRequests{claims: map[string]string{}}, nil)
	c := newCase(t, mine)
	if _, err := theirs.Apply(t.Context(), "acme", c.ID, 0, kyc.UpdateCase(kyc.CaseUpdate{Fields: []string{"assignee"}, Assignee: "them"})); err != nil {
		t.Fatal(err)
	}
	got, err := mine.Apply(t.Context(), "acme", c.ID, 0, kyc.UpdateCase(kyc.CaseUpdate{Fields: []string{"labels"}, Labels: []string{"mine"}}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 3 || got.Assignee != "them" || len(got.Labels) != 1 {
		t.Fatalf("write on a stale guess: %+v, want version 3 with both changes", got)
	}
}

// A change refused on the remembered record is tried again on the subject's case, which may accept it.
func TestRefusalOnARememberedRecordIsCheckedAgainstTheSubject(t *testing.T) {
	mine, log := newCases()
	theirs := New(log, noProjection{}, &memRequests{claims: map[string]string{}}, nil)
	c := newCase(t, mine)
	if _, err := theirs.Apply(t.Context(), "acme", c.ID, 0, kyc.Submit()); err != nil {
		t.Fatal(err)
	}
	// Remembered: draft, where StartReview is refused. On the subject: submitted, where it is allowed.
	got, err := mine.Apply(t.Context(), "acme", c.ID, 0, kyc.StartReview("rev"))
	if err != nil {
		t.Fatalf("refused on a stale guess: %v", err)
	}
	if got.Status != kyc.StatusInReview {
		t.Fatalf("status %s", got.Status)
	}
}

// The caller's expected version is checked against the subject, not against a guess.
func TestExpectedVersionIsJudgedOnTheSubject(t *testing.T) {
	mine, log := newCases()
	theirs := New(log, noProjection{}, &memRequests{claims: map[string]string{}}, nil)
	c := newCase(t, mine)
	if _, err := theirs.Apply(t.Context(), "acme", c.ID, 0, kyc.UpdateCase(kyc.CaseUpdate{Fields: []string{"assignee"}, Assignee: "x"})); err != nil {
		t.Fatal(err)
	}
	if _, err := mine.Apply(t.Context(), "acme", c.ID, 2, kyc.UpdateCase(kyc.CaseUpdate{Fields: []string{"assignee"}, Assignee: "y"})); err != nil {
		t.Fatalf("expected version 2 is the case's version: %v", err)
	}
	_, err := mine.Apply(t.Context(), "acme", c.ID, 2, kyc.UpdateCase(kyc.CaseUpdate{Fields: []string{"assignee"}, Assignee: "z"}))
	if !errors.Is(err, kyc.ErrVersionMismatch) {
		t.Fatalf("expected version 2 on a case at 3: %v", err)
	}
}

// One writer per case skips the read: its own last write is what the subject holds.
func TestASingleWriterDoesNotReReadItsOwnWrites(t *testing.T) {
	a, log := newCases()
	c := newCase(t, a)
	before := log.reads
	for range 5 {
		if _, err := a.Apply(t.Context(), "acme", c.ID, 0, kyc.UpdateCase(kyc.CaseUpdate{Fields: []string{"assignee"}, Assignee: "a"})); err != nil {
			t.Fatal(err)
		}
	}
	if n := log.reads - before; n != 0 {
		t.Fatalf("%d reads of the subject for 5 writes by its only writer", n)
	}
}

// A retry of a creation whose first attempt claimed the request id but never appended (it crashed) creates that
// same case, once.
func TestCreateCompletesACreationThatCrashedAfterItsClaim(t *testing.T) {
	a, log := newCases()
	requests := &memRequests{claims: map[string]string{"acme/r9": "claimed-id"}}
	a.requests = requests
	c, err := a.Create(t.Context(), "acme", kyc.NewCase{RequestID: "r9", Applicant: kyc.Applicant{FullName: "Jane Roe"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "claimed-id" || log.records["acme/claimed-id"].Case == nil {
		t.Fatalf("the retry made case %s, want the claimed one", c.ID)
	}
	again, err := a.Create(t.Context(), "acme", kyc.NewCase{RequestID: "r9", Applicant: kyc.Applicant{FullName: "Jane Roe"}})
	if err != nil || again.ID != c.ID || log.seq != 1 {
		t.Fatalf("second retry: %v %v, %d events", again, err, log.seq)
	}
}
