package grpcapi_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/logging"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/audit"
	"github.com/casekeeper/core/services/gateway/internal/feed"
	"github.com/casekeeper/core/services/gateway/internal/grpcapi"
	"github.com/casekeeper/core/services/gateway/internal/mongostore"
	"github.com/casekeeper/core/services/gateway/internal/notify"
)

// BenchmarkEmptyPollDatabaseCommands counts what one empty poll asks of the database, by running the gRPC
// handler on a store whose client reports every command: the promise is one lookup by primary key.
func BenchmarkEmptyPollDatabaseCommands(b *testing.B) {
	uri, db := testinfra.Mongo(b)
	var finds, others atomic.Int64
	var lastCmd atomic.Value
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetMonitor(&event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			lastCmd.Store(e.Command.String())
			if e.CommandName == "find" {
				finds.Add(1)
			} else {
				others.Add(1)
			}
		},
	}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	store, err := mongostore.NewFeedStore(ctx, client.Database(db))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		tenant := []string{"acme", "globex"}[i%2]
		ev := &casekeeperv1.CaseEvent{Id: fmt.Sprintf("e%d", i), Type: events.TypeCreated, Tenant: tenant, CaseId: fmt.Sprintf("c%d", i)}
		if err := store.Append(ctx, feed.Entry{Seq: int64(i + 1), Event: ev}); err != nil {
			b.Fatal(err)
		}
	}
	srv := &grpcapi.Server{Feed: store, Notifier: notify.NewHub(), Audit: nopAudit{}, Log: logging.Discard()}
	pctx := auth.WithPrincipal(ctx, auth.Principal{Tenant: "acme", ClientID: "acme-backend", Roles: []string{auth.RoleCasesRead}})
	head := feed.Cursor{Seq: 999, Issued: time.Now()}.String()
	finds.Store(0)
	others.Store(0)
	b.ResetTimer()
	for b.Loop() {
		resp, err := srv.ListCaseEvents(pctx, &casekeeperv1.ListCaseEventsRequest{After: head})
		if err != nil || len(resp.GetEvents()) != 0 {
			b.Fatal(resp, err)
		}
	}
	b.ReportMetric(float64(finds.Load())/float64(b.N), "db-finds/op")
	b.ReportMetric(float64(others.Load())/float64(b.N), "db-other-cmds/op")
	b.Logf("the one command of an empty poll: %v", lastCmd.Load())
}

type nopAudit struct{}

func (nopAudit) Record(context.Context, audit.Record) error { return nil }
