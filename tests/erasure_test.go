package tests

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	casesvc "github.com/casekeeper/core/services/case"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// The applicant of the erased case: values that appear nowhere else, so that any occurrence is a leak.
var erasedApplicant = map[string]string{
	"full name":       "Zephyrine Quillfeather-Okonkwo",
	"date of birth":   "1961-07-23",
	"document number": "*****83615",
	"email":           "zq.okonkwo@example.org",
	"phone":           "+4915198765432",
	"street":          "Wolkenkuckucksweg 17",
	"external ref":    "crm-erasure-77041",
	"check reference": "scr-erasure-55190",
}

// TestARedactedCaseLeavesNoPersonalDataAnywhere drives one case through its life with two webhook endpoints — one
// failing with 500 and echoing the body it got (so its retries are queued and its answers quote the case), one with
// a jq transform that fails on an applicant field — reads it through the gateway, and redacts it. Within 5 s none
// of the applicant's values may be left in any store: every document of every collection of every service's
// database (read raw, as extended JSON), every message of every JetStream stream and KV bucket (by sequence, body
// and headers), and everything the case, webhook and gateway services logged at debug level.
// A resend of an old delivery after the redaction sends the thin form. The dashboard's pages are read too, as a signed-in tenant admin sees them (the cases list, the case, the two
// endpoints and each delivery with its attempts), over HTTP after a sign-in through Keycloak's real login form.
func TestARedactedCaseLeavesNoPersonalDataAnywhere(t *testing.T) {
	kc := testinfra.KeycloakURL(t)
	nats := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	logs := &testinfra.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	shared := func(database string, more map[string]string) map[string]string {
		m := map[string]string{"NATS_URL": nats.URL(), "MONGODB_URI": uri, "MONGODB_DATABASE": database, "KEYCLOAK_URL": kc,
			"LOG_LEVEL": "debug"}
		for k, v := range more {
			m[k] = v
		}
		return m
	}
	caseCfg, err := config.Load[casesvc.Config](shared(db+"_case", map[string]string{
		"CASE_GRPC_ADDR": "127.0.0.1:0", "CASE_HTTP_ADDR": "127.0.0.1:0"}))
	if err != nil {
		t.Fatal(err)
	}
	whCfg, err := config.Load[webhooksvc.Config](shared(db+"_webhook", map[string]string{
		"WEBHOOK_GRPC_ADDR": "127.0.0.1:0", "WEBHOOK_HTTP_ADDR": "127.0.0.1:0", "WEBHOOK_ALLOW_LOOPBACK_HTTP": "true",
		"WEBHOOK_REQUEST_TIMEOUT": "5s", "WEBHOOK_RETRY_SCHEDULE": "0s,1s,2s,2s,2s,2s,2s,2s,2s,2s", "WEBHOOK_RETRY_JITTER": "0",
		"GATEWAY_PUBLIC_URL": "http://127.0.0.1:8080", "WEBHOOK_ENDPOINT_REFRESH": "1s",
		"WEBHOOK_SECRETS_KEY": "1tA/2S5CnLmUq2z4yQxT0bqSLy0Qv6h8dbsV6lY5H3Y="}))
	if err != nil {
		t.Fatal(err)
	}
	svcs := testinfra.StartServices(t)
	cs, err := casesvc.New(svcs.Context(), caseCfg, log.With("service", "case"))
	if err != nil {
		t.Fatal(err)
	}
	svcs.Run("case service", cs.Run)
	ws, err := webhooksvc.New(svcs.Context(), whCfg, log.With("service", "webhook"))
	if err != nil {
		t.Fatal(err)
	}
	svcs.Run("webhook service", ws.Run)
	base := "http://127.0.0.1:" + strconv.Itoa(testinfra.FreePort(t))
	gwCfg, err := config.Load[gatewaysvc.Config](shared(db+"_gateway", map[string]string{
		"GATEWAY_HTTP_ADDR": strings.TrimPrefix(base, "http://"), "GATEWAY_GRPC_ADDR": "127.0.0.1:0",
		"GATEWAY_PUBLIC_URL": base, "CASE_SERVICE_ADDR": cs.GRPCAddr(), "WEBHOOK_SERVICE_ADDR": ws.GRPCAddr(),
		"KEYCLOAK_CLIENT_ID": "casekeeper-gateway", "KEYCLOAK_CLIENT_SECRET": "gatewayDevSecret",
		"DASHBOARD_CLIENT_SECRET": "dashboardDevSecret", "DASHBOARD_COOKIE_SECURE": "false",
		"GATEWAY_SESSION_KEY": "ZGV2ZWxvcG1lbnQgb25seSBzZXNzaW9uIGtleSEhISE=", "GATEWAY_RATE_LIMIT": "0",
		"GATEWAY_FAILED_AUTH_LIMIT": "0", "SHUTDOWN_DRAIN_TIMEOUT": "2s"}))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gatewaysvc.New(svcs.Context(), gwCfg, log.With("service", "gateway"))
	if err != nil {
		t.Fatal(err)
	}
	svcs.Run("gateway", gw.Run)

	// The receivers: one down, answering 500 with the body it was sent; one that takes everything. Both keep what
	// they were sent after the redaction.
	var mu sync.Mutex
	var redactedAt time.Time
	var sentAfter []string
	keep := func(body []byte) {
		mu.Lock()
		defer mu.Unlock()
		if !redactedAt.IsZero() && time.Since(redactedAt) > time.Second {
			sentAfter = append(sentAfter, string(body))
		}
	}
	echoing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		keep(body)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(body)
	}))
	t.Cleanup(echoing.Close)
	fine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		keep(body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(fine.Close)
	// The webhook API is called as the gateway calls it (see startStack).
	delegate := auth.NewClientCredentials(kc, testinfra.Realm, "casekeeper-gateway", "gatewayDevSecret")
	s := &stack{cases: casekeeperv1.NewCaseServiceClient(testinfra.Dial(t, cs.GRPCAddr())),
		webhooks: casekeeperv1.NewWebhookServiceClient(testinfra.Dial(t, ws.GRPCAddr(),
			grpc.WithUnaryInterceptor(auth.DelegatingInterceptor(delegate)))),
		provider: testinfra.Bearer(context.Background(), testinfra.ClientToken(t, "acme-provider", "acmeProviderDevSecret")),
		admin: auth.WithPrincipal(context.Background(), auth.Principal{Subject: "erasure-test", Tenant: "acme",
			Roles: []string{auth.RoleWebhooksManage}})}
	failing, _ := s.createEndpoint(t, echoing.URL+"/hooks", "echoes and fails", casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL, "")
	transformed, _ := s.createEndpoint(t, fine.URL+"/hooks", "transform fails on a field",
		casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ, `{name: (.data.applicant.full_name | tonumber)}`)

	id := erasureLifecycle(t, s)
	// Both endpoints have attempts on record, and the failing one's answers quote the case.
	testinfra.Eventually(t, 20*time.Second, "attempts of both endpoints on record", func() bool {
		f, j := s.deliveries(t, failing.GetId()), s.deliveries(t, transformed.GetId())
		return len(f) >= 8 && len(j) >= 8 && strings.Contains(f[0].GetLastAttempt().GetResponseExcerpt(), erasedApplicant["full name"])
	})
	// The case read through the gateway, as a customer's backend does.
	backend := testinfra.ClientToken(t, "acme-backend", "acmeBackendDevSecret")
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/cases/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+backend)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), erasedApplicant["full name"]) {
		t.Fatalf("GET the case through the gateway: %d %s", resp.StatusCode, body)
	}

	// A tenant admin signed in to the dashboard.
	dash := testinfra.NewBrowser(t)
	dash.SignIn(func() string { return base }, func() string { return base }, kc, "admin@acme.test", "admin", "/dashboard/cases")
	pages := []string{"/dashboard/cases", "/dashboard/cases/" + id, "/dashboard/webhooks/" + failing.GetId(),
		"/dashboard/webhooks/" + transformed.GetId()}

	mongoClient := testinfra.ConnectMongo(t, uri, db).Client()
	js := testinfra.JetStream(t, nats.URL())
	scan := func() []string {
		leaks := mongoLeaks(t, mongoClient)
		leaks = append(leaks, streamLeaks(t, js)...)
		leaks = append(leaks, dashboardLeaks(t, dash, base, pages, s, failing.GetId(), transformed.GetId())...)
		return append(leaks, found("the services' logs", logs.String())...)
	}
	// The search finds the case where it is kept before the redaction: in each service's database (the webhook
	// service's delivery log through the echoed answers) and on the case stream.
	before := strings.Join(scan(), "\n")
	for _, where := range []string{"MongoDB " + db + "_case.", "MongoDB " + db + "_webhook.webhook_deliveries",
		"MongoDB " + db + "_gateway.", "stream CASES ", "dashboard /dashboard/cases/" + id, "dashboard /dashboard/webhooks/" + failing.GetId() + "/deliveries/"} {
		if !strings.Contains(before, where) {
			t.Fatalf("before the redaction the applicant is not found in %s; found:\n%s", where, before)
		}
	}

	if _, err := s.cases.Redact(s.provider, &casekeeperv1.RedactRequest{Id: id, Reason: "erasure requested"}); err != nil {
		t.Fatalf("Redact: %v", err)
	}
	redacted := time.Now()
	mu.Lock()
	redactedAt = redacted
	mu.Unlock()
	// A scan reads every store in turn and takes a while on a loaded machine: the promise holds when a scan that
	// began within 5 s of the redaction finds nothing.
	var leaks []string
	deadline := redacted.Add(5 * time.Second)
	var began time.Time
	for {
		began = time.Now()
		if leaks = scan(); len(leaks) == 0 || began.After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(leaks) > 0 {
		t.Fatalf("a scan begun %s after the redaction still found the applicant's data in:\n%s", began.Sub(redacted).Round(time.Millisecond),
			strings.Join(leaks, "\n"))
	}
	t.Logf("nothing left in a scan begun %s after the redaction (it took %s)", began.Sub(redacted).Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond))

	// The retries that were queued when the case was redacted come due later, and their outcomes reach the delivery
	// log later still: they send the thin form, and nothing comes back. The erased events' deliveries to the jq
	// endpoint succeed in the thin form; the scan is made again once they did.
	testinfra.Eventually(t, 20*time.Second, "the jq endpoint's erased events delivered in the thin form", func() bool {
		n := 0
		for _, d := range s.deliveries(t, transformed.GetId()) {
			if d.GetStatus() == casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
				n++
			}
		}
		return n >= 8 // every event but the tombstone, which is still stored and still fails the program
	})
	testinfra.Eventually(t, 10*time.Second, "the failing endpoint's retries after the redaction on record", func() bool {
		for _, d := range s.deliveries(t, failing.GetId()) {
			if d.GetEventType() != "case.redacted" && d.GetUpdatedAt().AsTime().Before(redacted.Add(2*time.Second)) {
				return false
			}
		}
		return true
	})
	if leaks := scan(); len(leaks) > 0 {
		t.Fatalf("%s after the redaction, the applicant's data is back in:\n%s", time.Since(redacted).Round(time.Millisecond),
			strings.Join(leaks, "\n"))
	}
	// A resend of an old delivery (the case's creation, to the endpoint that takes everything) sends the thin form.
	var created string
	for _, d := range s.deliveries(t, transformed.GetId()) {
		if d.GetEventType() == "case.created" {
			created = d.GetId()
		}
	}
	mu.Lock()
	sent := len(sentAfter)
	mu.Unlock()
	if _, err := s.webhooks.ResendDelivery(s.admin, &casekeeperv1.ResendDeliveryRequest{Id: created}); err != nil {
		t.Fatalf("resend after the redaction: %v", err)
	}
	testinfra.Eventually(t, 10*time.Second, "the resent delivery arrived", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sentAfter) > sent && strings.Contains(sentAfter[len(sentAfter)-1], `"event_id"`)
	})
	mu.Lock()
	defer mu.Unlock()
	if len(sentAfter) == 0 {
		t.Fatal("nothing was sent after the redaction")
	}
	for _, body := range sentAfter {
		if l := found("a request sent after the redaction", body); len(l) > 0 {
			t.Fatal(strings.Join(l, "\n"))
		}
	}
}

// dashboardLeaks reads the dashboard's pages, and the page of every delivery of the endpoints (with its attempts
// and the receiver's answers), as the signed-in admin.
func dashboardLeaks(t *testing.T, dash *testinfra.Browser, base string, pages []string, s *stack, endpoints ...string) []string {
	for _, ep := range endpoints {
		for _, d := range s.deliveries(t, ep) {
			if d.GetAttemptCount() == 0 {
				continue // still waiting for its first attempt: listed in the log, no page of its own yet
			}
			pages = append(pages, "/dashboard/webhooks/"+ep+"/deliveries/"+d.GetId())
		}
	}
	var leaks []string
	for _, p := range pages {
		resp, body := dash.Get(base + p)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("dashboard %s: %d\n%s", p, resp.StatusCode, body)
		}
		leaks = append(leaks, found("dashboard "+p, html.UnescapeString(body))...)
	}
	return leaks
}

// erasureLifecycle creates the case with the erased applicant and takes it through its review; it returns its id.
func erasureLifecycle(t *testing.T, s *stack) string {
	t.Helper()
	ctx := s.provider
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	created, err := s.cases.CreateCase(ctx, &casekeeperv1.CreateCaseRequest{
		RequestId: "req-erasure-1", ExternalRef: erasedApplicant["external ref"], Level: casekeeperv1.VerificationLevel_VERIFICATION_LEVEL_ENHANCED,
		Applicant: &casekeeperv1.Applicant{FullName: erasedApplicant["full name"], DateOfBirth: erasedApplicant["date of birth"],
			Nationality: "DE", Email: erasedApplicant["email"], Phone: erasedApplicant["phone"],
			Address: &casekeeperv1.Address{Line1: erasedApplicant["street"], City: "Berlin", PostalCode: "10115", Country: "DE"}},
	})
	must("CreateCase", err)
	id := created.GetCase().GetId()
	_, err = s.cases.UpdateCase(ctx, &casekeeperv1.UpdateCaseRequest{Id: id, Assignee: "analyst-7",
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"assignee"}}})
	must("UpdateCase", err)
	_, err = s.cases.AddDocument(ctx, &casekeeperv1.AddDocumentRequest{Id: id, Document: &casekeeperv1.Document{
		Type: casekeeperv1.DocumentType_DOCUMENT_TYPE_PASSPORT, IssuingCountry: "DE", MaskedNumber: erasedApplicant["document number"],
		Decision: casekeeperv1.DocumentDecision_DOCUMENT_DECISION_PENDING}})
	must("AddDocument", err)
	_, err = s.cases.RecordCheck(ctx, &casekeeperv1.RecordCheckRequest{Id: id, Check: &casekeeperv1.Check{
		Type: casekeeperv1.CheckType_CHECK_TYPE_AML_SCREENING, Result: casekeeperv1.CheckResult_CHECK_RESULT_CLEAR,
		Provider: "screening-co", Reference: erasedApplicant["check reference"]}})
	must("RecordCheck", err)
	_, err = s.cases.SetRisk(ctx, &casekeeperv1.SetRiskRequest{Id: id, Risk: &casekeeperv1.Risk{
		Level: casekeeperv1.RiskLevel_RISK_LEVEL_LOW, Score: 12, Reasons: []string{"domestic"}}})
	must("SetRisk", err)
	_, err = s.cases.Submit(ctx, &casekeeperv1.SubmitRequest{Id: id})
	must("Submit", err)
	_, err = s.cases.StartReview(ctx, &casekeeperv1.StartReviewRequest{Id: id, Reviewer: "analyst-7"})
	must("StartReview", err)
	_, err = s.cases.CompleteReview(ctx, &casekeeperv1.CompleteReviewRequest{Id: id,
		Answer: casekeeperv1.ReviewAnswer_REVIEW_ANSWER_APPROVED, Reviewer: "analyst-7", Comment: "all clear"})
	must("CompleteReview", err)
	return id
}

// found names each of the applicant's values that text holds, and where.
func found(where, text string) []string {
	var out []string
	for what, v := range erasedApplicant {
		if i := strings.Index(text, v); i >= 0 {
			out = append(out, fmt.Sprintf("%s: the %s, in …%s…", where, what, text[max(0, i-200):min(len(text), i+len(v)+100)]))
		}
	}
	return out
}

// mongoLeaks reads every document of every collection of every database, as extended JSON and as BSON.
func mongoLeaks(t *testing.T, client *mongo.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range names {
		db := client.Database(name)
		colls, err := db.ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for _, coll := range colls {
			cur, err := db.Collection(coll).Find(ctx, bson.D{}, options.Find())
			if err != nil {
				t.Fatal(err)
			}
			for cur.Next(ctx) {
				// The BSON itself too: extended JSON shows binary fields (an event kept as protobuf) in base64.
				js, err := bson.MarshalExtJSON(cur.Current, false, false)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, found("MongoDB "+name+"."+coll, string(js)+" BSON: "+string(cur.Current))...)
			}
			if err := cur.Err(); err != nil {
				t.Fatal(err)
			}
			_ = cur.Close(ctx)
		}
	}
	return out
}

// streamLeaks reads every message of every stream (KV buckets are the KV_* streams) by sequence, body and headers.
func streamLeaks(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		st := s.CachedInfo().State
		for seq := st.FirstSeq; seq != 0 && seq <= st.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("%s #%d: %v", name, seq, err)
			}
			out = append(out, found(fmt.Sprintf("stream %s #%d (%s)", name, seq, m.Subject),
				fmt.Sprintf("%v %s", m.Header, m.Data))...)
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
