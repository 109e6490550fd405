package sessionkv_test

import (
	"errors"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/logging"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/gateway/internal/dashboard"
	"github.com/casekeeper/core/services/gateway/internal/sessionkv"
)

// The store's contract, against NATS itself: compare-and-set on the revision, not-found after delete, a second
// Open (another replica) sees what the first wrote.
func TestStoreContract(t *testing.T) {
	srv := testinfra.NATS(t)
	open := func() *sessionkv.Store {
		nc, js, err := natsbus.Connect(srv.URL(), "test", logging.Discard())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		st, err := sessionkv.Open(t.Context(), js, sessionkv.Config{TTL: dashboard.MaxSessionAge, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a, b := open(), open()
	ctx := t.Context()

	if _, _, err := a.Get(ctx, "k1"); !errors.Is(err, dashboard.ErrSessionNotFound) {
		t.Fatalf("get of a missing key: %v", err)
	}
	rev, err := a.Create(ctx, "k1", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "k1", []byte("other")); !errors.Is(err, dashboard.ErrSessionConflict) {
		t.Fatalf("second create of one key: %v", err)
	}
	v, got, err := b.Get(ctx, "k1")
	if err != nil || string(v) != "v1" || got != rev {
		t.Fatalf("get on the other replica: %q %d %v, want v1 %d", v, got, err, rev)
	}
	rev2, err := b.Update(ctx, "k1", []byte("v2"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, "k1", []byte("stale"), rev); !errors.Is(err, dashboard.ErrSessionConflict) {
		t.Fatalf("update at a stale revision: %v", err)
	}
	if v, got, _ := a.Get(ctx, "k1"); string(v) != "v2" || got != rev2 {
		t.Fatalf("after update: %q %d", v, got)
	}
	if err := a.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, "k1"); !errors.Is(err, dashboard.ErrSessionNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := b.Update(ctx, "k1", []byte("v3"), rev2); !errors.Is(err, dashboard.ErrSessionConflict) {
		t.Fatalf("update after delete: %v", err)
	}
}

func TestOpenRefusesATTLShorterThanASession(t *testing.T) {
	srv := testinfra.NATS(t)
	_, js, err := natsbus.Connect(srv.URL(), "test", logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sessionkv.Open(t.Context(), js, sessionkv.Config{TTL: time.Hour}); err == nil {
		t.Fatal("a TTL shorter than a session was accepted")
	}
}
