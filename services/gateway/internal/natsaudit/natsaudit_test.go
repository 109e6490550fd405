package natsaudit_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/gateway/internal/audit"
	"github.com/casekeeper/core/services/gateway/internal/mongostore"
	"github.com/casekeeper/core/services/gateway/internal/natsaudit"
)

// Reads recorded on the stream reach the audit collection through two projecting replicas, each exactly once
// (a batch written twice adds nothing), and the stream keeps nothing the database has.
func TestAuditRecordsReachTheDatabaseOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	store, err := mongostore.NewAuditStore(ctx, testinfra.ConnectMongo(t, uri, db))
	if err != nil {
		t.Fatal(err)
	}
	js := testinfra.JetStream(t, srv.URL())
	stream, err := js.CreateOrUpdateStream(ctx, natsaudit.StreamConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	log := natsaudit.NewLog(js, time.Now)
	const n = 300
	for i := range n {
		if err := log.Record(ctx, audit.Record{Tenant: "acme", Subject: "u1", ClientID: "acme-backend", API: "GetCase",
			CaseIDs: []string{fmt.Sprintf("case_%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Record(ctx, audit.Record{Tenant: "globex", Subject: "u2", API: "ListCases"}); err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	for range 2 {
		p := natsaudit.NewProjector(testinfra.JetStream(t, srv.URL()), store, slog.New(slog.DiscardHandler), nil)
		running.Go(func() { _ = p.Run(pctx) })
	}
	defer func() { stop(); running.Wait() }()
	var acme []audit.Record
	testinfra.Eventually(t, 30*time.Second, "every acme read in the audit collection", func() bool {
		acme, err = store.List(ctx, audit.Page{Tenant: "acme", Limit: 1000})
		return err == nil && len(acme) == n
	})
	testinfra.Eventually(t, 10*time.Second, "the audit stream emptied", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	seen := map[string]bool{}
	for _, r := range acme {
		if seen[r.CaseIDs[0]] || r.Tenant != "acme" || r.API != "GetCase" || r.ID == "" {
			t.Fatalf("record %+v", r)
		}
		seen[r.CaseIDs[0]] = true
	}
	// A batch written again (a redelivery after a lost acknowledgement) adds nothing.
	if err := store.Append(ctx, acme[:10]); err != nil {
		t.Fatal(err)
	}
	if again, err := store.List(ctx, audit.Page{Tenant: "acme", Limit: 1000}); err != nil || len(again) != n {
		t.Fatalf("%d records after writing 10 again, want %d: %v", len(again), n, err)
	}
	if g, err := store.List(ctx, audit.Page{Tenant: "globex", Limit: 10}); err != nil || len(g) != 1 {
		t.Fatalf("globex records %v %v", g, err)
	}
}
