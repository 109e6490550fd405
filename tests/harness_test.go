package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	casesvc "github.com/casekeeper/core/services/case"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// repoRoot is the monorepo's root: this module lives in <root>/tests.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// stack is the real case and webhook services in-process on embedded NATS and FerretDB, with the real Keycloak.
type stack struct {
	cases    casekeeperv1.CaseServiceClient
	webhooks casekeeperv1.WebhookServiceClient
	// provider writes cases as the acme KYC provider (cases:write); admin manages acme's webhooks.
	provider context.Context
	admin    context.Context
}

func startStack(t testing.TB) *stack {
	t.Helper()
	kc := testinfra.KeycloakURL(t)
	nats := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	log := testinfra.Logger(t)

	caseCfg, err := config.Load[casesvc.Config](map[string]string{
		"CASE_GRPC_ADDR": "127.0.0.1:0", "CASE_HTTP_ADDR": "127.0.0.1:0",
		"NATS_URL": nats.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": db, "KEYCLOAK_URL": kc,
	})
	if err != nil {
		t.Fatal(err)
	}
	whCfg, err := config.Load[webhooksvc.Config](map[string]string{
		"WEBHOOK_GRPC_ADDR": "127.0.0.1:0", "WEBHOOK_HTTP_ADDR": "127.0.0.1:0",
		"NATS_URL": nats.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": db + "_webhooks", "KEYCLOAK_URL": kc,
		"WEBHOOK_ALLOW_LOOPBACK_HTTP": "true", "WEBHOOK_REQUEST_TIMEOUT": "10s",
		"WEBHOOK_RETRY_SCHEDULE": "0s,1s,1s,2s", "GATEWAY_PUBLIC_URL": "https://api.casekeeper.example.com",
		"WEBHOOK_ENDPOINT_REFRESH": "1s",
		"WEBHOOK_SECRETS_KEY":      "1tA/2S5CnLmUq2z4yQxT0bqSLy0Qv6h8dbsV6lY5H3Y=",
	})
	if err != nil {
		t.Fatal(err)
	}

	svcs := testinfra.StartServices(t)
	caseSvc, err := casesvc.New(svcs.Context(), caseCfg, log.With("service", "case"))
	if err != nil {
		t.Fatal(err)
	}
	svcs.Run("case service", caseSvc.Run)
	whSvc, err := webhooksvc.New(svcs.Context(), whCfg, log.With("service", "webhook"))
	if err != nil {
		t.Fatal(err)
	}
	svcs.Run("webhook service", whSvc.Run)

	// The webhook API is called the way the gateway calls it: its own token (service:delegate) plus the identity
	// of an acme administrator in metadata (pkg/auth delegation).
	gateway := auth.NewClientCredentials(kc, testinfra.Realm, "casekeeper-gateway", "gatewayDevSecret")
	whConn := testinfra.Dial(t, whSvc.GRPCAddr(), grpc.WithUnaryInterceptor(auth.DelegatingInterceptor(gateway)))
	return &stack{
		cases:    casekeeperv1.NewCaseServiceClient(testinfra.Dial(t, caseSvc.GRPCAddr())),
		webhooks: casekeeperv1.NewWebhookServiceClient(whConn),
		provider: testinfra.Bearer(context.Background(), testinfra.ClientToken(t, "acme-provider", "acmeProviderDevSecret")),
		admin: auth.WithPrincipal(context.Background(), auth.Principal{Subject: "receivers-test", Tenant: "acme",
			Roles: []string{auth.RoleWebhooksManage}}),
	}
}

// createEndpoint registers url for acme's events in the given format and returns the endpoint and its secret.
func (s *stack) createEndpoint(t testing.TB, url, description string, format casekeeperv1.PayloadFormat, jq string) (*casekeeperv1.Endpoint, string) {
	t.Helper()
	resp, err := s.webhooks.CreateEndpoint(s.admin, &casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{
		Url: url, Description: description, PayloadFormat: format, JqTransform: jq}})
	if err != nil {
		t.Fatalf("CreateEndpoint %s: %v", description, err)
	}
	return resp.GetEndpoint(), resp.GetSecret()
}

// deliveries lists every delivery of an endpoint.
func (s *stack) deliveries(t *testing.T, endpointID string) []*casekeeperv1.Delivery {
	t.Helper()
	var all []*casekeeperv1.Delivery
	token := ""
	for range 100 {
		resp, err := s.webhooks.ListDeliveries(s.admin, &casekeeperv1.ListDeliveriesRequest{EndpointId: endpointID, PageSize: 100, PageToken: token})
		if err != nil {
			t.Fatalf("ListDeliveries: %v", err)
		}
		all = append(all, resp.GetDeliveries()...)
		if token = resp.GetNextPageToken(); token == "" {
			return all
		}
	}
	t.Fatal("ListDeliveries did not end after 100 pages")
	return nil
}

// waitAllSucceeded waits until the endpoint's log holds want deliveries, all succeeded. When they do not within
// 90 s it fails with what the log shows of each one that did not, with its attempts, so that a failure on a busy
// machine tells a slow receiver from a refusing one.
func (s *stack) waitAllSucceeded(t *testing.T, endpointID, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ds := s.deliveries(t, endpointID)
		var unfinished []*casekeeperv1.Delivery
		for _, d := range ds {
			if d.GetStatus() != casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
				unfinished = append(unfinished, d)
			}
		}
		if len(ds) == want && len(unfinished) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			fmt.Fprintf(&b, "endpoint %s (%s): %d deliveries in the log, want %d, all succeeded; not within 90s", endpointID, name, len(ds), want)
			for _, d := range unfinished {
				fmt.Fprintf(&b, "\n  %s %s case %s: %s, %d attempts", d.GetId(), d.GetEventType(), d.GetCaseId(), d.GetStatus(), d.GetAttemptCount())
				if full, err := s.webhooks.GetDelivery(s.admin, &casekeeperv1.GetDeliveryRequest{Id: d.GetId()}); err == nil {
					for _, a := range full.GetDelivery().GetAttempts() {
						fmt.Fprintf(&b, "\n    attempt %d at %s: %d %q %s (%s)", a.GetNumber(), a.GetAt().AsTime().Format(time.RFC3339Nano),
							a.GetStatusCode(), a.GetResponseExcerpt(), a.GetError(), a.GetLatency().AsDuration())
					}
				}
			}
			t.Fatal(b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// receiver is one example receiver running as a subprocess.
type receiver struct {
	name    string
	url     string
	port    int
	events  string // its JSON lines
	secret  string
	format  casekeeperv1.PayloadFormat
	endpnt  *casekeeperv1.Endpoint
	command []string
	// signingKey, for a receiver of an Ed25519 endpoint, is a whsk_ key of the test's whose public key the receiver
	// trusts too: the endpoint's private key never leaves the service, so the test's own requests are signed with
	// this one.
	signingKey string
}

// trusted is what the receiver is told to verify with (WEBHOOK_SECRET).
func (r *receiver) trusted(t *testing.T) string {
	if r.signingKey == "" {
		return r.secret
	}
	pub, err := webhooks.PublicKeyOf(r.signingKey)
	if err != nil {
		t.Fatal(err)
	}
	return r.secret + " " + pub
}

// recorded is one line a receiver writes per verified event.
type recorded struct {
	WebhookID   string `json:"webhook_id"`
	Type        string `json:"type"`
	CaseID      string `json:"case_id"`
	CaseVersion int64  `json:"case_version"`
	Applied     bool   `json:"applied"`
}

func (r *receiver) start(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(r.command[0], r.command[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(r.port), "WEBHOOK_SECRET="+r.trusted(t),
		"PAYLOAD_FORMAT="+formatName(r.format), "EVENTS_FILE="+r.events)
	testinfra.StartProcess(t, cmd).WaitReady(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", r.port), 30*time.Second)
}

// lines reads what the receiver recorded so far.
func (r *receiver) lines(t *testing.T) []recorded {
	t.Helper()
	f, err := os.Open(r.events)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []recorded
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l recorded
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			// A line being written right now: read again later.
			break
		}
		out = append(out, l)
	}
	return out
}

func formatName(f casekeeperv1.PayloadFormat) string {
	if f == casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_THIN {
		return "thin"
	}
	return "full"
}
