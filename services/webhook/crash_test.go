package webhooksvc_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/mongostore"
	"github.com/casekeeper/core/services/webhook/internal/signing"
)

// startProcess runs the service binary configured only by environment variables, as in production; extra
// variables (NAME=value) override the test defaults.
func (e *env) startProcess(t testing.TB, bin string, extra ...string) *testinfra.Process {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"NATS_URL="+e.natsURL,
		"MONGODB_URI="+e.mongoURI,
		"MONGODB_DATABASE="+e.db,
		"KEYCLOAK_URL=http://127.0.0.1:1", // never called: nothing here uses the API
		"WEBHOOK_GRPC_ADDR="+testinfra.FreeAddr(t),
		"WEBHOOK_HTTP_ADDR="+testinfra.FreeAddr(t),
		"WEBHOOK_ALLOW_LOOPBACK_HTTP=true",
		"WEBHOOK_REQUEST_TIMEOUT=2s",
		"WEBHOOK_RETRY_SCHEDULE=0s,1s,1s,1s,1s,1s,1s,1s",
		"WEBHOOK_RETRY_JITTER=0",
		"LOG_LEVEL=warn",
		"WEBHOOK_SECRETS_KEY="+testSecretsKey.Reveal(),
	)
	cmd.Env = append(cmd.Env, extra...)
	return testinfra.StartProcess(t, cmd)
}

// seedEndpoint stores an endpoint behind the service's back (the subprocess verifies tokens against Keycloak,
// which this test does not need).
func (e *env) seedEndpoint(t testing.TB, url string, concurrency int) delivery.Endpoint {
	t.Helper()
	secret, _ := signing.NewSecret()
	now := time.Now()
	ep := delivery.Endpoint{ID: "ep_" + "seededendpointaaaaaaaaaa"[:24], Tenant: "acme", URL: url, Format: delivery.FormatFull,
		MaxConcurrency: concurrency, Secrets: []delivery.Secret{{Value: secret, CreatedAt: now}}, CreatedAt: now, UpdatedAt: now}
	store := mongostore.New(testinfra.ConnectMongo(t, e.mongoURI, e.db), testKeyring(t))
	if err := store.CreateEndpoint(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	return ep
}

// kill -9 in the middle of deliveries (some of them waiting for a retry), then start again: every delivery
// completes.
func TestKillNineMidDeliveryThenRestart(t *testing.T) {
	events := 2000 / slowdown // the race detector slows the embedded FerretDB several times
	bin := testinfra.Build(t, "./cmd/webhook")
	e := newEnv(t)
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n%7 == 0 {
			return http.StatusInternalServerError // keeps retries in flight at the moment of the kill
		}
		return http.StatusOK
	})
	e.seedEndpoint(t, rc.URL, 8)
	first := e.startProcess(t, bin)
	e.publish("acme", events)
	testinfra.Eventually(t, slowdown*60*time.Second, "some deliveries before the kill", func() bool { _, n := rc.distinctIDs(); return n >= events/4 })
	first.Kill()
	before, _ := rc.distinctIDs()
	t.Logf("killed with %d of %d delivered", before, events)
	second := e.startProcess(t, bin)
	deadline := time.Now().Add(slowdown * 90 * time.Second)
	for {
		if d, _ := rc.distinctIDs(); d == events {
			break
		}
		if time.Now().After(deadline) {
			e.dumpState(t)
			_ = second.Cmd.Process.Signal(syscall.SIGQUIT)
			time.Sleep(2 * time.Second)
			t.Fatal("not every delivery completed after the restart")
		}
		if time.Now().Second()%5 == 0 {
			d, n := rc.distinctIDs()
			t.Logf("%d delivered, %d requests", d, n)
			time.Sleep(time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d, total := rc.distinctIDs()
	t.Logf("%d deliveries acknowledged by the receiver, %d requests (retries of the 500s, at-least-once duplicates)", d, total)
	if total < events+events/7 {
		t.Errorf("%d requests: the failed attempts were not all retried", total)
	}
}
