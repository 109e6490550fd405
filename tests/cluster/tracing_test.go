package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// TestOneTraceFromCaseWriteToReceiver runs the three services as processes exporting to an OTLP collector in the
// test, and follows one trace id: a gRPC case write, its publish on the stream, the webhook service's fan-out, and
// each delivery attempt, whose request carries the attempt's span as its traceparent (a retry too). A read through
// the gateway joins the trace its client sent, and the gateway's log lines name that trace.
func TestOneTraceFromCaseWriteToReceiver(t *testing.T) {
	kc := testinfra.KeycloakURL(t)
	caseBin := testinfra.Build(t, "github.com/casekeeper/core/services/case/cmd/case")
	webhookBin := testinfra.Build(t, "github.com/casekeeper/core/services/webhook/cmd/webhook")
	gatewayBin := testinfra.Build(t, "github.com/casekeeper/core/services/gateway/cmd/gateway")
	nats := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	collector := testinfra.NewTraceCollector(t)
	// The first attempt fails, so that the retry shows it stays in the trace.
	rec := testinfra.NewRecorder(t, func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})

	common := []string{"NATS_URL=" + nats.URL(), "MONGODB_URI=" + uri, "KEYCLOAK_URL=" + kc,
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL, "OTEL_BSP_SCHEDULE_DELAY=100"}
	start := func(name, bin string, env ...string) (*testinfra.Process, string, string) {
		return startService(t, name, bin, append(common, env...)...)
	}
	_, caseGRPC, _ := start("case", caseBin, "MONGODB_DATABASE="+db)
	_, webhookGRPC, _ := start("webhook", webhookBin, "MONGODB_DATABASE="+db+"_webhooks", "WEBHOOK_ALLOW_LOOPBACK_HTTP=true",
		"WEBHOOK_RETRY_SCHEDULE=0s,1s,1s", "GATEWAY_PUBLIC_URL=https://api.casekeeper.example.com",
		"WEBHOOK_SECRETS_KEY="+secretsKey)
	gateway, _, gatewayHTTP := start("gateway", gatewayBin, "MONGODB_DATABASE="+db+"_gateway", "LOG_LEVEL=debug",
		"GATEWAY_PUBLIC_URL=http://127.0.0.1", "CASE_SERVICE_ADDR="+caseGRPC, "WEBHOOK_SERVICE_ADDR="+webhookGRPC,
		"KEYCLOAK_CLIENT_ID=casekeeper-gateway", "KEYCLOAK_CLIENT_SECRET=gatewayDevSecret",
		"DASHBOARD_CLIENT_SECRET=dashboardDevSecret", "DASHBOARD_COOKIE_SECURE=false", "GATEWAY_SESSION_KEY="+sessionKey,
		"GATEWAY_RATE_LIMIT=0")

	gatewayCreds := auth.NewClientCredentials(kc, realm, "casekeeper-gateway", "gatewayDevSecret")
	admin := auth.WithPrincipal(context.Background(), auth.Principal{Subject: "tracing-test", Tenant: "acme",
		Roles: []string{auth.RoleWebhooksManage}})
	hooks := pb.NewWebhookServiceClient(testinfra.Dial(t, webhookGRPC, grpc.WithUnaryInterceptor(auth.DelegatingInterceptor(gatewayCreds))))
	if _, err := hooks.CreateEndpoint(admin, &pb.CreateEndpointRequest{Endpoint: &pb.Endpoint{
		Url: rec.URL + "/traced", Description: "traced endpoint"}}); err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	token := testinfra.ClientToken(t, "acme-provider", "acmeProviderDevSecret")
	writer := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	created, err := pb.NewCaseServiceClient(testinfra.Dial(t, caseGRPC)).CreateCase(writer, &pb.CreateCaseRequest{
		RequestId: "traced-1", ExternalRef: "traced", Level: pb.VerificationLevel_VERIFICATION_LEVEL_BASIC,
		Applicant: &pb.Applicant{FullName: "Traced Applicant", Nationality: "DE"}})
	if err != nil {
		t.Fatalf("CreateCase: %v", err)
	}
	caseID := created.GetCase().GetId()

	testinfra.Eventually(t, time.Minute, "two attempts at the receiver", func() bool { return len(rec.Requests()) >= 2 })
	var traceID string
	var attemptSpans []string
	for i, r := range rec.Requests()[:2] {
		tid, sid, ok := parseTraceparent(r.Header.Get("Traceparent"))
		if !ok {
			t.Fatalf("attempt %d: traceparent %q is not a W3C trace context", i+1, r.Header.Get("Traceparent"))
		}
		if traceID == "" {
			traceID = tid
		} else if tid != traceID {
			t.Fatalf("the retry is in trace %s, the first attempt in %s", tid, traceID)
		}
		attemptSpans = append(attemptSpans, sid)
	}

	// The chain, from the write's RPC to each attempt, every span the child of the one before it.
	byName := func(spans []testinfra.Span, service, name string) []testinfra.Span {
		var out []testinfra.Span
		for _, s := range spans {
			if s.Service == service && s.Name == name {
				out = append(out, s)
			}
		}
		return out
	}
	var spans []testinfra.Span
	testinfra.Eventually(t, 30*time.Second, "the write's spans at the collector", func() bool {
		spans = collector.Trace(traceID)
		return len(byName(spans, "case", "casekeeper.v1.CaseService/CreateCase")) == 1 &&
			len(byName(spans, "case", "publish case event")) == 1 && len(byName(spans, "webhook", "fan out case event")) == 1 &&
			len(byName(spans, "webhook", "deliver webhook")) == 2
	})
	rpc := byName(spans, "case", "casekeeper.v1.CaseService/CreateCase")[0]
	publish := byName(spans, "case", "publish case event")[0]
	fanout := byName(spans, "webhook", "fan out case event")[0]
	if rpc.ParentSpanID != "" {
		t.Errorf("the write's RPC span has a parent %s: the trace should start at the write", rpc.ParentSpanID)
	}
	if publish.ParentSpanID != rpc.SpanID || publish.Attributes["casekeeper.case_id"] != caseID {
		t.Errorf("publish span %+v: want a child of the RPC span %s, of case %s", publish, rpc.SpanID, caseID)
	}
	if fanout.ParentSpanID != publish.SpanID {
		t.Errorf("fan-out span's parent is %s, want the publish span %s", fanout.ParentSpanID, publish.SpanID)
	}
	for _, a := range byName(spans, "webhook", "deliver webhook") {
		if a.ParentSpanID != fanout.SpanID {
			t.Errorf("attempt span %s's parent is %s, want the fan-out span %s", a.SpanID, a.ParentSpanID, fanout.SpanID)
		}
		found := false
		for i, sid := range attemptSpans {
			if sid == a.SpanID {
				found = true
				if want := fmt.Sprint(i + 1); a.Attributes["casekeeper.attempt"] != want {
					t.Errorf("the request of attempt %d carries the span of attempt %s", i+1, a.Attributes["casekeeper.attempt"])
				}
			}
		}
		if !found {
			t.Errorf("attempt span %s (attempt %s) is in no request's traceparent %v", a.SpanID, a.Attributes["casekeeper.attempt"], attemptSpans)
		}
	}

	// A read through the gateway, in a trace its client started.
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodGet, "http://"+gatewayHTTP+"/v1/cases/"+caseID, nil)
	req.Header.Set("Authorization", "Bearer "+testinfra.ClientToken(t, "acme-backend", "acmeBackendDevSecret"))
	req.Header.Set("Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/cases/%s: %d", caseID, resp.StatusCode)
	}
	testinfra.Eventually(t, 30*time.Second, "the read's spans at the collector", func() bool {
		read := collector.Trace(clientTrace)
		return len(byName(read, "gateway", "HTTP GET")) == 1 &&
			len(byName(read, "gateway", "casekeeper.v1.CaseQueryService/GetCase")) >= 1
	})
	for _, s := range collector.Trace(clientTrace) {
		if s.Name == "HTTP GET" && s.ParentSpanID != "00f067aa0ba902b7" {
			t.Errorf("the gateway's HTTP span has parent %s, want the client's span", s.ParentSpanID)
		}
	}
	testinfra.Eventually(t, 10*time.Second, "a gateway log line naming the client's trace", func() bool {
		return strings.Contains(gateway.Output.String(), `"trace_id":"`+clientTrace+`"`)
	})
}

// parseTraceparent splits a W3C traceparent (version 00) into its trace and span ids.
func parseTraceparent(v string) (traceID, spanID string, ok bool) {
	parts := strings.Split(v, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// startService runs one service binary with env on top of this process's environment, its gRPC and HTTP listeners
// on fresh ports (CASE_GRPC_ADDR, CASE_HTTP_ADDR, …), and waits until it is ready.
func startService(t *testing.T, name, bin string, env ...string) (p *testinfra.Process, grpcAddr, httpAddr string) {
	t.Helper()
	grpcAddr, httpAddr = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	prefix := strings.ToUpper(name)
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), env...), prefix+"_GRPC_ADDR="+grpcAddr, prefix+"_HTTP_ADDR="+httpAddr)
	p = testinfra.StartProcess(t, cmd)
	p.WaitReady(t, "http://"+httpAddr+"/readyz", 90*time.Second)
	return p, grpcAddr, httpAddr
}
