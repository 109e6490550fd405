package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// TestNoticesOnceAcrossWebhookProcesses: two webhook service processes share an endpoint's attempts; while the
// endpoint fails, both see failures, and when it recovers either may see the success — the tenant's notice URL
// still gets one endpoint.failing and one endpoint.recovered.
func TestNoticesOnceAcrossWebhookProcesses(t *testing.T) {
	kc := testinfra.KeycloakURL(t)
	bin := testinfra.Build(t, "github.com/casekeeper/core/services/webhook/cmd/webhook")
	nats := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	js := testinfra.JetStream(t, nats.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, events.StreamConfig(time.Hour, 1)); err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	failing.Store(true)
	hooks := testinfra.NewRecorder(t, func(int, *http.Request) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	notices := testinfra.NewRecorder(t, nil)
	var grpcAddrs []string
	for i := range 2 {
		_, grpcAddr, _ := startService(t, "webhook", bin, "NATS_URL="+nats.URL(), "MONGODB_URI="+uri, "MONGODB_DATABASE="+db,
			"KEYCLOAK_URL="+kc, "LOG_LEVEL=warn", "WEBHOOK_ALLOW_LOOPBACK_HTTP=true", "WEBHOOK_RETRY_SCHEDULE=0s,1s,1s,1s,1s",
			"WEBHOOK_REQUEST_TIMEOUT=5s", "GATEWAY_PUBLIC_URL=https://api.casekeeper.example.com",
			"WEBHOOK_SECRETS_KEY="+secretsKey, fmt.Sprint("WEBHOOK_FANOUT_BATCH=", 16+i))
		grpcAddrs = append(grpcAddrs, grpcAddr)
	}
	gateway := auth.NewClientCredentials(kc, realm, "casekeeper-gateway", "gatewayDevSecret")
	admin := auth.WithPrincipal(context.Background(), auth.Principal{Subject: "notices-test", Tenant: "acme",
		Roles: []string{auth.RoleWebhooksManage}})
	api := pb.NewWebhookServiceClient(testinfra.Dial(t, grpcAddrs[0], grpc.WithUnaryInterceptor(auth.DelegatingInterceptor(gateway))))
	if _, err := api.UpdateNoticeSettings(admin, &pb.UpdateNoticeSettingsRequest{Url: notices.URL + "/notices"}); err != nil {
		t.Fatal(err)
	}
	ep, err := api.CreateEndpoint(admin, &pb.CreateEndpointRequest{Endpoint: &pb.Endpoint{Url: hooks.URL + "/hook", MaxConcurrency: 8}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the other process learns of the endpoint from the registry before the events
	for i := range 20 {
		ev := &pb.CaseEvent{Id: fmt.Sprint("evt_notice_", i), Type: events.TypeCreated, Tenant: "acme", CaseId: fmt.Sprint("case_n", i),
			CaseVersion: 1, OccurredAt: timestamppb.Now(),
			Data: &pb.Case{Id: fmt.Sprint("case_n", i), Tenant: "acme", Version: 1, Applicant: &pb.Applicant{FullName: "Notice Test"}}}
		m, err := events.Message(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	testinfra.Eventually(t, time.Minute, "failed attempts from both processes", func() bool { return len(hooks.Requests()) >= 30 })
	failing.Store(false)
	kinds := func() []string {
		var out []string
		for _, r := range notices.Requests() {
			var b struct {
				Type string `json:"type"`
				Data struct {
					EndpointID string `json:"endpoint_id"`
				} `json:"data"`
			}
			if json.Unmarshal(r.Body, &b) == nil && b.Data.EndpointID == ep.GetEndpoint().GetId() {
				out = append(out, b.Type)
			}
		}
		slices.Sort(out)
		return out
	}
	testinfra.Eventually(t, time.Minute, "the recovered notice", func() bool { return slices.Contains(kinds(), "endpoint.recovered") })
	testinfra.Eventually(t, time.Minute, "every delivery succeeded", func() bool {
		ok := map[string]bool{}
		for _, r := range hooks.Requests() {
			if r.Status == http.StatusOK {
				ok[r.Header.Get("Webhook-Id")] = true
			}
		}
		return len(ok) == 20
	})
	time.Sleep(2 * time.Second)
	if got := strings.Join(kinds(), ","); got != "endpoint.failing,endpoint.recovered" {
		t.Fatalf("notices %s, want one endpoint.failing and one endpoint.recovered", got)
	}
}
