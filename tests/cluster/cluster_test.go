// Package cluster_test runs Case-keeper as it runs in production, on one machine: every component is a separate OS
// process (a 3-node NATS cluster with the streams at 3 replicas, the embedded-default database, two replicas of the
// case service, the webhook service and the gateway behind a balancer standing in for the ingress). One replica of
// each and one NATS node are SIGKILLed while case writes flow and a tenant admin, signed into the dashboard through
// alternating gateways, saves new webhook endpoints and keeps loading pages; then each service's second replica gets
// SIGTERM under load. It reconciles what was acknowledged against what the stream and the receiver hold.
//
// The short form runs in `make test`; `make cluster-test` runs the long form (CLUSTER_WRITES=10000).
package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/pkg/webhooks"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

const realm = testinfra.Realm

// Keys every replica shares (base64 of 32 bytes; any fixed key does for a test): the webhook service's secrets at
// rest, the gateways' dashboard sessions.
const (
	secretsKey = "Y2x1c3Rlci10ZXN0LXNlY3JldHMta2V5LTMyLWJ5dGU="
	sessionKey = "Y2x1c3Rlci10ZXN0LXNlc3Npb24ta2V5LTMyLWJ5dGU="
)

func TestClusterLosesNothing(t *testing.T) {
	writes := 600
	if v := os.Getenv("CLUSTER_WRITES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("CLUSTER_WRITES=%q: want a number ≥ 100", v)
		}
		writes = n
	}
	kc := testinfra.KeycloakURL(t)
	bins := buildBinaries(t)
	cluster := startNATSCluster(t, bins.nats)
	dbAddr := testinfra.FreeAddr(t)
	startProcess(t, "ferretdb", bins.ferretdb, []string{"FERRETDB_ADDR=" + dbAddr, "FERRETDB_DIR=" + t.TempDir()}, "")
	testinfra.Eventually(t, time.Minute, "the database listening", func() bool {
		c, err := net.DialTimeout("tcp", dbAddr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	rec := testinfra.NewRecorder(t, nil)

	const drain = 5 * time.Second
	common := []string{"NATS_URL=" + cluster.urls(), "EVENTS_STREAM_REPLICAS=3", "MONGODB_URI=mongodb://" + dbAddr,
		"KEYCLOAK_URL=" + kc, "LOG_LEVEL=warn", fmt.Sprint("SHUTDOWN_DRAIN_TIMEOUT=", drain)}
	var cases, hooks [2]*process
	for i := range 2 {
		grpcAddr, httpAddr := testinfra.FreeAddr(t), testinfra.FreeAddr(t)
		cases[i] = startProcess(t, fmt.Sprint("case-", i+1), bins.caseSvc, append(common, "MONGODB_DATABASE=casekeeper",
			"CASE_GRPC_ADDR="+grpcAddr, "CASE_HTTP_ADDR="+httpAddr), "http://"+httpAddr+"/readyz")
		cases[i].grpc = grpcAddr
	}
	for i := range 2 {
		grpcAddr, httpAddr := testinfra.FreeAddr(t), testinfra.FreeAddr(t)
		hooks[i] = startProcess(t, fmt.Sprint("webhook-", i+1), bins.webhookSvc, append(common, "MONGODB_DATABASE=casekeeper_webhooks",
			"WEBHOOK_GRPC_ADDR="+grpcAddr, "WEBHOOK_HTTP_ADDR="+httpAddr, "WEBHOOK_ALLOW_LOOPBACK_HTTP=true",
			"WEBHOOK_RETRY_SCHEDULE=0s,1s,1s,2s,2s,5s,5s,10s", "WEBHOOK_REQUEST_TIMEOUT=5s",
			// An hour: no periodic reload hides a routing table that missed a change.
			"WEBHOOK_ENDPOINT_REFRESH=1h", "GATEWAY_PUBLIC_URL=https://api.casekeeper.example.com",
			"WEBHOOK_SECRETS_KEY="+secretsKey), "http://"+httpAddr+"/readyz")
		hooks[i].grpc = grpcAddr
	}

	// Two gateways behind a balancer standing in for the ingress; each talks to "its" case and webhook replica.
	lb := testinfra.NewBalancer(t)
	var gateways [2]*process
	for i := range 2 {
		grpcAddr, httpAddr := testinfra.FreeAddr(t), testinfra.FreeAddr(t)
		gateways[i] = startProcess(t, fmt.Sprint("gateway-", i+1), bins.gateway, append(common, "MONGODB_DATABASE=casekeeper_gateway",
			"GATEWAY_GRPC_ADDR="+grpcAddr, "GATEWAY_HTTP_ADDR="+httpAddr, "GATEWAY_PUBLIC_URL="+lb.URL,
			"CASE_SERVICE_ADDR="+cases[i].grpc, "WEBHOOK_SERVICE_ADDR="+hooks[i].grpc,
			"KEYCLOAK_CLIENT_ID=casekeeper-gateway", "KEYCLOAK_CLIENT_SECRET=gatewayDevSecret",
			"DASHBOARD_CLIENT_SECRET=dashboardDevSecret", "DASHBOARD_COOKIE_SECURE=false", "GATEWAY_SESSION_KEY="+sessionKey,
			"GATEWAY_TRUSTED_PROXIES=127.0.0.1/32", "GATEWAY_RATE_LIMIT=0"), "http://"+httpAddr+"/readyz")
		gateways[i].http = httpAddr
	}
	lb.Route(gateways[0].http, gateways[1].http)
	// A tenant admin signs into the dashboard: the login on one gateway, the callback on the other.
	browser := testinfra.NewBrowser(t)
	browser.SignIn(func() string { return lb.Via(0) }, func() string { return lb.Via(1) }, kc, "admin@acme.test", "admin", "/dashboard/webhooks")
	// dashboard loads the webhook settings through both gateways and checks that they list want endpoints.
	dashboard := func(want int) {
		t.Helper()
		for i := range 2 {
			resp, page := browser.Get(lb.Via(i) + "/dashboard/webhooks")
			if resp.StatusCode != 200 || !strings.Contains(page, "admin@acme.test") {
				t.Fatalf("the dashboard through gateway %d: %d to %q", i+1, resp.StatusCode, resp.Header.Get("Location"))
			}
			if n := strings.Count(page, "cluster endpoint "); n < want {
				t.Fatalf("the dashboard through gateway %d lists %d endpoints, want %d", i+1, n, want)
			}
		}
	}
	dashboard(0)

	provider := auth.NewClientCredentials(kc, realm, "acme-provider", "acmeProviderDevSecret")
	tok, err := provider.Token(t.Context())
	if err != nil {
		t.Fatalf("token of acme-provider: %v", err)
	}
	writer := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	gateway := auth.NewClientCredentials(kc, realm, "casekeeper-gateway", "gatewayDevSecret")
	admin := auth.WithPrincipal(context.Background(), auth.Principal{Subject: "cluster-test", Tenant: "acme",
		Roles: []string{auth.RoleWebhooksManage}})
	var caseAPI [2]pb.CaseServiceClient
	var hookAPI [2]pb.WebhookServiceClient
	for i := range 2 {
		caseAPI[i] = pb.NewCaseServiceClient(testinfra.Dial(t, cases[i].grpc))
		hookAPI[i] = pb.NewWebhookServiceClient(testinfra.Dial(t, hooks[i].grpc, grpc.WithUnaryInterceptor(auth.DelegatingInterceptor(gateway))))
	}

	// The first endpoint exists before any case does; the others are created while events flow.
	var (
		epMu      sync.Mutex
		endpoints []createdEndpoint
	)
	// An endpoint is created as a tenant admin does it: Webhook Settings → Webhook URL → Save in the dashboard,
	// through one gateway or the other. A save that fails because a process or a NATS node just died is repeated,
	// through the other gateway, as the admin would, for up to a minute.
	createEndpoint := func(via int) error {
		n := len(endpoints)
		var id string
		for try := 0; ; try++ {
			gw := (via + try) % 2
			var err error
			if id, err = saveEndpoint(browser, lb.Via(gw), lb.URL, rec.URL+"/ep/"+strconv.Itoa(n), fmt.Sprint("cluster endpoint ", n)); err == nil {
				break
			} else if try == 60 {
				return err
			} else {
				t.Logf("saving endpoint %d through gateway %d: %v; repeating", n, gw+1, err)
			}
			time.Sleep(time.Second)
		}
		ctx, cancel := context.WithTimeout(admin, 10*time.Second)
		defer cancel()
		resp, err := hookAPI[0].GetEndpoint(ctx, &pb.GetEndpointRequest{Id: id})
		if err != nil {
			if resp, err = hookAPI[1].GetEndpoint(ctx, &pb.GetEndpointRequest{Id: id}); err != nil {
				return err
			}
		}
		// The endpoint is visible to every instance from its record in the registry, which the call made before it
		// returned: events stored after that must reach it. Events stored before its creation must not (no history);
		// those in between may.
		visible, err := registryTime(t, cluster.nodes[0].url)
		if err != nil {
			return err
		}
		epMu.Lock()
		endpoints = append(endpoints, createdEndpoint{path: "/ep/" + strconv.Itoa(n), id: id,
			created: resp.GetEndpoint().GetCreatedAt().AsTime(), visible: visible})
		epMu.Unlock()
		return nil
	}
	if err := createEndpoint(0); err != nil {
		t.Fatal(err)
	}

	const caseCount = 20
	ids := make([]string, caseCount)
	for i := range ids {
		resp, err := caseAPI[i%2].CreateCase(writer, &pb.CreateCaseRequest{RequestId: fmt.Sprint("cluster-", i),
			ExternalRef: fmt.Sprint("ref-", i), Level: pb.VerificationLevel_VERIFICATION_LEVEL_BASIC,
			Applicant: &pb.Applicant{FullName: "Cluster Applicant", Nationality: "DE"}})
		if err != nil {
			t.Fatalf("CreateCase: %v", err)
		}
		ids[i] = resp.GetCase().GetId()
	}

	// Writers: every acknowledged write is remembered with the version it got. A write that fails (its replica or
	// its NATS node just died) is not acknowledged, so it is simply tried again on the other replica.
	var (
		ackMu   sync.Mutex
		acked   = map[string][]int64{}
		done    atomic.Int64
		failed  atomic.Int64
		writers sync.WaitGroup
	)
	for i := range ids {
		acked[ids[i]] = []int64{1}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for w := range 8 {
		writers.Go(func() {
			for i := 0; done.Load() < int64(writes) && time.Now().Before(deadline); i++ {
				id := ids[rand.IntN(len(ids))]
				ctx, cancel := context.WithTimeout(writer, 10*time.Second)
				resp, err := caseAPI[(w+i)%2].UpdateCase(ctx, &pb.UpdateCaseRequest{Id: id, Labels: []string{fmt.Sprint("w", w, "-", i)},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
				cancel()
				if err != nil {
					if !retryable(err) {
						t.Errorf("UpdateCase: %v", err)
						return
					}
					failed.Add(1)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				ackMu.Lock()
				acked[id] = append(acked[id], resp.GetCase().GetVersion())
				ackMu.Unlock()
				done.Add(1)
			}
		})
	}

	// Faults and endpoint changes, spread over the run.
	at := func(fraction float64) {
		for done.Load() < int64(float64(writes)*fraction) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for step, fault := range []func(){
		func() { cases[0].kill(t); cases[0].restart(t) },
		func() { hooks[1].kill(t); hooks[1].restart(t) },
		func() { gateways[0].kill(t); gateways[0].restart(t) },
		func() { cluster.nodes[2].kill(t); cluster.nodes[2].restart(t) },
	} {
		at(float64(step+1) / 6)
		if err := createEndpoint(step % 2); err != nil {
			t.Fatalf("creating an endpoint: %v", err)
		}
		fault()
		// The session lives in NATS, not in a gateway: it survives every fault, on both gateways.
		epMu.Lock()
		n := len(endpoints)
		epMu.Unlock()
		dashboard(n)
	}
	at(0.85)
	if err := createEndpoint(1); err != nil {
		t.Fatalf("creating an endpoint: %v", err)
	}
	// SIGTERM under load, as a rolling update sends it: each service's second replica ends within its drain bound
	// (SHUTDOWN_DRAIN_TIMEOUT, for the webhook service the request timeout plus 5 s) with status 0, while writes
	// keep going to the first; what it acknowledged before it ended is reconciled with the rest.
	at(0.9)
	cases[1].terminate(t, drain+5*time.Second)
	hooks[0].terminate(t, 5*time.Second+5*time.Second+5*time.Second)
	gateways[1].terminate(t, drain+5*time.Second)
	writers.Wait()
	if done.Load() < int64(writes) {
		t.Fatalf("only %d of %d writes were acknowledged within the time limit", done.Load(), writes)
	}
	t.Logf("%d writes acknowledged, %d attempts failed during the faults and were repeated", done.Load(), failed.Load())

	// Reconcile the stream: one event per acknowledged version, contiguous from 1, nothing missing.
	stored := readStream(t, cluster.nodes[0].url)
	for _, id := range ids {
		versions := stored.versions[id]
		seen := map[int64]int{}
		for _, v := range versions {
			seen[v]++
		}
		for v := int64(1); v <= int64(len(versions)); v++ {
			if seen[v] != 1 {
				t.Errorf("case %s: version %d has %d events on the stream", id, v, seen[v])
			}
		}
		for _, v := range acked[id] {
			if seen[v] != 1 {
				t.Errorf("case %s: acknowledged version %d has %d events on the stream", id, v, seen[v])
			}
		}
		if len(seen) != len(versions) {
			t.Errorf("case %s: %d events for %d distinct versions", id, len(versions), len(seen))
		}
	}

	// Reconcile the deliveries: every endpoint receives every event stored at or after its creation.
	epMu.Lock()
	defer epMu.Unlock()
	missing := func() (total int, detail string) {
		for _, ep := range endpoints {
			got := received(t, rec, ep.path)
			n, expected := 0, 0
			var first []string
			for _, ev := range stored.events {
				if ev.stored.Before(ep.visible) {
					continue
				}
				expected++
				if got[ev.id] == 0 {
					n++
					if len(first) < 3 {
						first = append(first, fmt.Sprintf("%s stored %s", ev.id, ev.stored.Format(time.RFC3339Nano)))
					}
				}
			}
			total += n
			if n > 0 {
				detail += fmt.Sprintf("\n  endpoint %s (created %s): %d of %d missing, e.g. %v", ep.id,
					ep.created.Format(time.RFC3339Nano), n, expected, first)
			}
		}
		return total, detail
	}
	// Three minutes, and more for the long form: the deliveries of 10,000 writes to five endpoints take a while.
	wait := max(3*time.Minute, time.Duration(writes)*30*time.Millisecond)
	for start := time.Now(); time.Since(start) < wait; time.Sleep(500 * time.Millisecond) {
		if n, _ := missing(); n == 0 {
			break
		}
	}
	duplicates := 0
	storedAt := map[string]time.Time{}
	for _, ev := range stored.events {
		storedAt[ev.id] = ev.stored
	}
	for _, ep := range endpoints {
		for id, n := range received(t, rec, ep.path) {
			duplicates += n - 1
			if at, ok := storedAt[id]; ok && at.Before(ep.created) {
				t.Errorf("endpoint %s (created %s) got event %s stored before it, at %s", ep.id, ep.created, id, at)
			}
		}
	}
	if n, detail := missing(); n > 0 {
		t.Fatalf("%d (event, endpoint) pairs were never delivered:%s", n, detail)
	}
	t.Logf("%d events on the stream, %d endpoints, every pair delivered, %d duplicate deliveries", len(stored.events), len(endpoints), duplicates)
}

var csrfToken = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// saveEndpoint fills in and saves the dashboard's new-endpoint form through base (a gateway behind the balancer,
// whose public URL is origin) and returns the new endpoint's id.
func saveEndpoint(b *testinfra.Browser, base, origin, endpointURL, description string) (string, error) {
	resp, page := b.Get(base + "/dashboard/webhooks/new")
	m := csrfToken.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		return "", fmt.Errorf("the new-endpoint form: %d", resp.StatusCode)
	}
	form := url.Values{"csrf_token": {m[1]}, "url": {endpointURL}, "description": {description}, "payload_format": {"thin"}}
	req, _ := http.NewRequest(http.MethodPost, base+"/dashboard/webhooks/new", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	resp, page = b.Do(req)
	id, ok := strings.CutPrefix(resp.Header.Get("Location"), "/dashboard/webhooks/")
	if resp.StatusCode != http.StatusSeeOther || !ok || id == "" {
		return "", fmt.Errorf("saving the form: %d to %q: %.300s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	return id, nil
}

type createdEndpoint struct {
	path    string
	id      string
	created time.Time // routed events stored from then on
	visible time.Time // every instance routes to it from then on, at the latest
}

// registryTime is the time of the newest record in the endpoint registry, on the NATS servers' clock.
func registryTime(t *testing.T, url string) (time.Time, error) {
	js := testinfra.JetStream(t, url)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "WEBHOOK_ENDPOINT_CHANGES")
	if err != nil {
		return time.Time{}, err
	}
	entry, err := kv.Get(ctx, "rev")
	if err != nil {
		return time.Time{}, err
	}
	return entry.Created(), nil
}

// received counts, per event id, the deliveries the receiver got on path (each endpoint has its own path).
func received(t *testing.T, rec *testinfra.Recorder, path string) map[string]int {
	out := map[string]int{}
	for _, r := range rec.Requests() {
		if r.Path != path {
			continue
		}
		ev, err := webhooks.Decode(webhooks.FormatThin, r.Body)
		if err != nil || ev.Thin == nil {
			t.Errorf("a delivery to %s does not decode as a thin event: %v", path, err)
			continue
		}
		out[ev.Thin.EventID]++
	}
	return out
}

type storedEvent struct {
	id     string
	stored time.Time
}

type streamContents struct {
	events   []storedEvent
	versions map[string][]int64
}

// readStream reads every case event of the CASES stream, with the time the stream stored it.
func readStream(t *testing.T, url string) streamContents {
	t.Helper()
	js := testinfra.JetStream(t, url)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := streamContents{versions: map[string][]int64{}}
	// One get per sequence, answered by the stream's leader: no consumer to lose while the cluster settles.
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		msg, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("reading the stream at %d of %d: %v", seq, info.State.LastSeq, err)
		}
		if !strings.HasPrefix(msg.Subject, "cases.") {
			continue
		}
		ev, err := events.Decode(msg.Data)
		if err != nil {
			t.Fatalf("undecodable event at %d: %v", seq, err)
		}
		out.events = append(out.events, storedEvent{id: ev.GetId(), stored: msg.Time})
		out.versions[ev.GetCaseId()] = append(out.versions[ev.GetCaseId()], ev.GetCaseVersion())
	}
	return out
}

// retryable reports whether a failed write may simply be repeated.
func retryable(err error) bool {
	c := status.Code(err)
	return c == codes.Unavailable || c == codes.DeadlineExceeded || c == codes.Aborted || strings.Contains(err.Error(), "connection")
}
