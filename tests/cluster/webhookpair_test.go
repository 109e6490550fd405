package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// webhookPair is two webhook service processes on one NATS server and one database, with the CASES stream they
// consume declared, and acme's administrator calling one of them the way the gateway does.
type webhookPair struct {
	js    jetstream.JetStream
	api   pb.WebhookServiceClient
	admin context.Context
}

// startWebhookPair starts the pair with the given WEBHOOK_RETRY_SCHEDULE.
func startWebhookPair(t *testing.T, retrySchedule string) *webhookPair {
	t.Helper()
	kc := testinfra.KeycloakURL(t)
	bin := testinfra.Build(t, "github.com/casekeeper/core/services/webhook/cmd/webhook")
	nats := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	p := &webhookPair{js: testinfra.JetStream(t, nats.URL())}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.js.CreateOrUpdateStream(ctx, events.StreamConfig(time.Hour, 1)); err != nil {
		t.Fatal(err)
	}
	var grpcAddrs []string
	for i := range 2 {
		_, grpcAddr, _ := startService(t, "webhook", bin, "NATS_URL="+nats.URL(), "MONGODB_URI="+uri, "MONGODB_DATABASE="+db,
			"KEYCLOAK_URL="+kc, "LOG_LEVEL=warn", "WEBHOOK_ALLOW_LOOPBACK_HTTP=true", "WEBHOOK_RETRY_SCHEDULE="+retrySchedule,
			"WEBHOOK_REQUEST_TIMEOUT=5s", "GATEWAY_PUBLIC_URL=https://api.casekeeper.example.com",
			"WEBHOOK_SECRETS_KEY="+secretsKey, fmt.Sprint("WEBHOOK_FANOUT_BATCH=", 16+i))
		grpcAddrs = append(grpcAddrs, grpcAddr)
	}
	gateway := auth.NewClientCredentials(kc, realm, "casekeeper-gateway", "gatewayDevSecret")
	p.admin = auth.WithPrincipal(context.Background(), auth.Principal{Subject: "webhook-pair-test", Tenant: "acme",
		Roles: []string{auth.RoleWebhooksManage}})
	p.api = pb.NewWebhookServiceClient(testinfra.Dial(t, grpcAddrs[0], grpc.WithUnaryInterceptor(auth.DelegatingInterceptor(gateway))))
	return p
}

// publish writes version v of an acme case on CASES, as the case service does.
func (p *webhookPair) publish(t *testing.T, caseID string, v int64) {
	t.Helper()
	ev := &pb.CaseEvent{Id: fmt.Sprintf("evt_%s_%d", caseID, v), Type: events.TypeUpdated, Tenant: "acme", CaseId: caseID,
		CaseVersion: v, OccurredAt: timestamppb.Now(), Data: &pb.Case{Id: caseID, Tenant: "acme", Version: v}}
	m, err := events.Message(ev)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
}
