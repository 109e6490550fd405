package gatewaysvc_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
)

// The running gateway deletes, on its own, the access-audit records older than GATEWAY_AUDIT_RETENTION and keeps
// the recent ones: the retention is wired in, not only written (one pass after GATEWAY_RETENTION_INTERVAL, its
// shortest, 1m).
func TestGatewayDeletesExpiredAuditRecords(t *testing.T) {
	natsSrv := testinfra.NATS(t)
	uri, dbName := testinfra.Mongo(t)
	db := testinfra.ConnectMongo(t, uri, dbName)
	ctx := context.Background()
	// The case service declares CASES, whose events the gateway's feed follows.
	if _, err := testinfra.JetStream(t, natsSrv.URL()).CreateOrUpdateStream(ctx, events.StreamConfig(time.Hour, 1)); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for id, at := range map[string]time.Time{"old_1": now.Add(-50 * time.Hour), "old_2": now.Add(-25 * time.Hour),
		"recent": now.Add(-23 * time.Hour)} {
		if _, err := db.Collection("access_audit").InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "at", Value: at},
			{Key: "tenant", Value: "acme"}, {Key: "subject", Value: "u1"}, {Key: "client_id", Value: "acme-backend"},
			{Key: "api", Value: "GetCase"}, {Key: "case_ids", Value: bson.A{"c1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	env := environment(natsSrv.URL(), uri)
	env["MONGODB_DATABASE"], env["KEYCLOAK_URL"], env["DASHBOARD_CLIENT_SECRET"] = dbName, testinfra.KeycloakURL(t), ""
	env["GATEWAY_AUDIT_RETENTION"], env["GATEWAY_RETENTION_INTERVAL"] = "24h", "1m"
	cfg, err := config.Load[gatewaysvc.Config](env)
	if err != nil {
		t.Fatal(err)
	}
	svcs := testinfra.StartServices(t)
	gw, err := gatewaysvc.New(svcs.Context(), cfg, testinfra.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	svcs.Run("gateway", gw.Run)

	stored := func(id string) bool {
		return db.Collection("access_audit").FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Err() == nil
	}
	testinfra.Eventually(t, 90*time.Second, "the expired audit records deleted", func() bool {
		return !stored("old_1") && !stored("old_2")
	})
	if !stored("recent") {
		t.Fatal("a record younger than the retention was deleted")
	}
	if got := testinfra.Metric(t, "http://"+gw.HTTPAddr()+"/metrics", "gateway_audit_records_expired_total"); got != 2 {
		t.Errorf("gateway_audit_records_expired_total = %v, want 2", got)
	}
}
