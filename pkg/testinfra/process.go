package testinfra

import (
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Build compiles the main package pkg (as "./cmd/case") of the module under test into t.TempDir and returns the
// binary's path, for tests that run it as a separate process. The Go build cache keeps a second build cheap.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), path.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testinfra: go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Process is a program a test runs as a separate OS process, so that it can be killed for real.
type Process struct {
	Cmd    *exec.Cmd
	Output *LogBuffer // its stdout and stderr
	exited chan struct{}
}

// StartProcess starts cmd with its stdout and stderr collected in Output. When t finishes the process is stopped
// (see Stop), and its output goes to the test log if t failed.
func StartProcess(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, Output: &LogBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Output, p.Output
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = time.Second // a child that outlives the process must not keep Wait waiting for the output
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testinfra: start %s: %v", cmd, err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			t.Logf("output of %s:\n%s", cmd, p.Output.String())
		}
	})
	return p
}

// Exited is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// WaitReady polls url until it answers 200 OK, and fails t, with the process's output, when the process exits
// first or within passes.
func (p *Process) WaitReady(t testing.TB, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !Ready(url) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited at start:\n%s", p.Cmd, p.Output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not ready within %s:\n%s", p.Cmd, url, within, p.Output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL, as a crash would, and waits until it has ended.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM, as an orchestrator does, and waits up to StopWithin for the process to end; one that does
// not fails t and is killed. A process that has ended already is left as it is.
func (p *Process) Stop(t testing.TB) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(StopWithin):
		t.Errorf("testinfra: %s did not stop within %s of SIGTERM", p.Cmd, StopWithin)
		p.Kill()
	}
}

// Ready reports whether GET url answers 200 OK; a server that cannot be reached is not ready.
func Ready(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// FailedStart runs cmd, a service binary given a configuration it cannot start with, and fails t unless it exits
// with status 1 within bound. It returns the error lines of its JSON log and its whole output.
func FailedStart(t testing.TB, cmd *exec.Cmd, bound time.Duration) (errorLines []string, output string) {
	t.Helper()
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("testinfra: %s did not exit within %s:\n%s", cmd, bound, out)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("testinfra: %s: %v, want exit status 1\n%s", cmd, err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			errorLines = append(errorLines, line)
		}
	}
	return errorLines, string(out)
}

// PeakRSS is this process's high-water mark of resident memory (VmHWM), in bytes. The services run on Linux, where
// /proc always has it; its absence fails t rather than skipping a memory bound.
func PeakRSS(t testing.TB) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("testinfra: reading the peak resident memory: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if kib, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kib << 10
				}
			}
		}
	}
	t.Fatal("testinfra: no VmHWM in /proc/self/status")
	return 0
}
