package cluster_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
)

type binaries struct {
	nats, ferretdb, caseSvc, webhookSvc, gateway string
}

// buildBinaries builds every program the cluster runs, from this checkout: the services' own commands, the NATS
// server at the version the workspace pins, and the embedded database's command.
func buildBinaries(t *testing.T) binaries {
	t.Helper()
	return binaries{
		nats:       testinfra.Build(t, "github.com/nats-io/nats-server/v2"),
		ferretdb:   testinfra.Build(t, "./ferretdb"),
		caseSvc:    testinfra.Build(t, "github.com/casekeeper/core/services/case/cmd/case"),
		webhookSvc: testinfra.Build(t, "github.com/casekeeper/core/services/webhook/cmd/webhook"),
		gateway:    testinfra.Build(t, "github.com/casekeeper/core/services/gateway/cmd/gateway"),
	}
}

// process is one OS process of the cluster, which can be SIGKILLed and started again with the same settings.
type process struct {
	name  string
	bin   string
	args  []string
	env   []string
	ready string // a URL that answers 200 once it serves; empty: none
	grpc  string
	http  string
	url   string
	p     *testinfra.Process
}

func startProcess(t *testing.T, name, bin string, env []string, ready string, args ...string) *process {
	t.Helper()
	p := &process{name: name, bin: bin, args: args, env: env, ready: ready}
	p.launch(t)
	p.waitReady(t)
	return p
}

// launch starts the process without waiting for it.
func (p *process) launch(t *testing.T) {
	t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	p.p = testinfra.StartProcess(t, cmd)
}

func (p *process) waitReady(t *testing.T) {
	t.Helper()
	if p.ready != "" {
		p.p.WaitReady(t, p.ready, 90*time.Second)
	}
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	t.Logf("SIGKILL %s", p.name)
	p.p.Kill()
}

// terminate sends SIGTERM, as Kubernetes does on a rolling update, and fails t unless the process exits with
// status 0 within bound; it returns how long the exit took.
func (p *process) terminate(t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = p.p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.p.Exited():
	case <-time.After(bound):
		t.Errorf("%s still running %s after SIGTERM", p.name, bound)
		p.p.Kill()
	}
	took := time.Since(start)
	if code := p.p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited with status %d after SIGTERM", p.name, code)
	}
	t.Logf("SIGTERM %s: exited in %s", p.name, took.Round(time.Millisecond))
	return took
}

func (p *process) restart(t *testing.T) {
	t.Helper()
	p.launch(t)
	p.waitReady(t)
	t.Logf("%s is back", p.name)
}

// natsCluster is three nats-server processes routed to each other, each with JetStream and its own store.
type natsCluster struct {
	nodes [3]*process
}

func startNATSCluster(t *testing.T, bin string) *natsCluster {
	t.Helper()
	var client, routes, monitor [3]int
	for i := range 3 {
		client[i], routes[i], monitor[i] = testinfra.FreePort(t), testinfra.FreePort(t), testinfra.FreePort(t)
	}
	var routeURLs []string
	for i := range 3 {
		routeURLs = append(routeURLs, fmt.Sprintf("nats://127.0.0.1:%d", routes[i]))
	}
	c := &natsCluster{}
	for i := range 3 {
		args := []string{"-a", "127.0.0.1", "-p", fmt.Sprint(client[i]), "-m", fmt.Sprint(monitor[i]),
			"-n", fmt.Sprint("nats-", i+1), "--cluster_name", "casekeeper", "--cluster", routeURLs[i],
			"--routes", strings.Join(routeURLs, ","), "-js", "-sd", t.TempDir()}
		c.nodes[i] = &process{name: fmt.Sprint("nats-", i+1), bin: bin, args: args,
			ready: fmt.Sprintf("http://127.0.0.1:%d/healthz", monitor[i]), url: fmt.Sprintf("nats://127.0.0.1:%d", client[i])}
	}
	// A node is healthy only once it has met the others: start all three, then wait.
	for _, n := range c.nodes {
		n.launch(t)
	}
	for _, n := range c.nodes {
		n.waitReady(t)
	}
	return c
}

func (c *natsCluster) urls() string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.url)
	}
	return strings.Join(out, ",")
}
