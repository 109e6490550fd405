package cluster_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
)

type binaries struct {
	nats, ferretdb, caseSvc, webhookSvc string
}

// buildBinaries builds every program the cluster runs, from this checkout: the services' own commands, the NATS
// server at the version the workspace pins, and the embedded database's command.
func buildBinaries(t *testing.T) binaries {
	t.Helper()
	dir := t.TempDir()
	b := binaries{nats: filepath.Join(dir, "nats-server"), ferretdb: filepath.Join(dir, "ferretdb"),
		caseSvc: filepath.Join(dir, "case"), webhookSvc: filepath.Join(dir, "webhook")}
	for out, pkg := range map[string]string{
		b.nats: "github.com/nats-io/nats-server/v2", b.ferretdb: "./cluster/ferretdb",
		b.caseSvc: "github.com/casekeeper/core/services/case/cmd/case", b.webhookSvc: "github.com/casekeeper/core/services/webhook/cmd/webhook",
	} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
		}
	}
	return b
}

// process is one OS process of the cluster, which can be SIGKILLed and started again with the same settings.
type process struct {
	name  string
	bin   string
	args  []string
	env   []string
	ready string // an address whose /readyz (or /healthz for NATS) answers 200 once it serves; empty: none
	grpc  string
	url   string

	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func startProcess(t *testing.T, name, bin string, env []string, ready string, args ...string) *process {
	t.Helper()
	p := &process{name: name, bin: bin, args: args, env: env, ready: ready}
	t.Cleanup(func() { p.stop(t) })
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs the process and waits until it is ready.
func (p *process) start() error {
	p.out = &lockedBuffer{}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	if p.ready == "" {
		return nil
	}
	path := "/readyz"
	if strings.HasPrefix(p.name, "nats") {
		path = "/healthz"
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited at start:\n%s", p.name, p.out.String())
		default:
		}
		if resp, err := http.Get("http://" + p.ready + path); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within 90s:\n%s", p.name, p.out.String())
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	t.Logf("SIGKILL %s", p.name)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *process) restart(t *testing.T) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s is back", p.name)
}

// stop ends the process with SIGTERM, as Kubernetes does, and fails the test when it does not end in time.
func (p *process) stop(t *testing.T) {
	if p.cmd == nil || p.done == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
	if t.Failed() {
		t.Logf("output of %s:\n%s", p.name, p.out.String())
	}
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
			ready: fmt.Sprintf("127.0.0.1:%d", monitor[i]), url: fmt.Sprintf("nats://127.0.0.1:%d", client[i])}
	}
	// The nodes wait for each other before JetStream is healthy: start them together.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, n := range c.nodes {
		t.Cleanup(func() { n.stop(t) })
		wg.Go(func() { errs[i] = n.start() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
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

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after 60s", addr)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
