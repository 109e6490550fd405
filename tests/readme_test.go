package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
)

// The README test: every shell block of README.md and services/gateway/README.md runs, in order, against the dev
// stack of `make run` — the devserver as its own process, built from ./services/devserver/cmd/devserver, with a
// throw-away DATA_DIR and the suite's Keycloak (KEYCLOAK_URL, whose realm import is the one `make run` uses).
//
// The stack listens on free ports, not on the README's: a developer's `make run`, or a second checkout's test run
// on the same machine, may hold 8080 and the rest, and a port that is free when looked at can be taken before the
// devserver binds it. So each block is run with its loopback addresses moved to the test's stack (addrMap): the
// README's 127.0.0.1:8180 to the suite's Keycloak, 8080 to the gateway's HTTP port, 9091 to the case service, and
// so on. The blocks' environment also names the stack the way its services' configuration does (KEYCLOAK_URL,
// GATEWAY_PUBLIC_URL, CASE_SERVICE_ADDR, WEBHOOK_SERVICE_ADDR, NATS_URL, MONGODB_URI) and the way the casekeeper
// command-line client takes its defaults (CASEKEEPER_API, CASEKEEPER_GRPC, CASEKEEPER_CASE_ADDR, CASEKEEPER_ISSUER),
// for a program in a block that finds the stack there instead of on its command line.
//
// Each block runs with `bash -euo pipefail` in the repository's root, as a reader who ran `make run` there would
// paste it. The blocks of one file share one shell session: variables a block sets (TOKEN, CURSOR) and the
// directory it ends in are where the next block starts. A block that fails, or runs longer than its bound, fails
// the test with its line and its output; the blocks after it in that file are not run (they build on it).
//
// What a fresh machine would not have is provided the way the README says to get it: a block that runs
// `go install` installs into a temporary GOBIN that is first on PATH. Every curl fails on an HTTP error status
// (CURL_HOME holds a .curlrc with fail-with-body), so that an error answer cannot pass for a result.
func TestReadmeBlocksRun(t *testing.T) {
	root := repoRoot(t)
	files := []string{"README.md", "services/gateway/README.md"}
	docs := map[string][]shellBlock{}
	for _, name := range files {
		raw, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := shellBlocks(string(raw))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(blocks) == 0 {
			t.Fatalf("%s: no shell blocks found", name)
		}
		docs[name] = blocks
	}

	stack := startDevStack(t)
	gobin := t.TempDir()
	curlHome := t.TempDir()
	if err := os.WriteFile(filepath.Join(curlHome, ".curlrc"), []byte("fail-with-body\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"GOBIN="+gobin, "PATH="+gobin+string(os.PathListSeparator)+os.Getenv("PATH"), "CURL_HOME="+curlHome)
	env = append(env, stack.env...)

	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			session := &shellSession{dir: root, env: env, state: filepath.Join(t.TempDir(), "env")}
			ran := 0
			for _, b := range docs[name] {
				where := fmt.Sprintf("%s:%d", name, b.line)
				if b.skip != "" {
					t.Logf("%s: not run (%s)", where, b.skip)
					continue
				}
				script, err := stack.addrs.rewrite(b.text)
				if err != nil {
					t.Fatalf("%s: %v:\n%s", where, err, b.text)
				}
				bound := blockTimeout(script)
				start := time.Now()
				out, err := session.run(script, bound)
				took := time.Since(start).Round(10 * time.Millisecond)
				if err != nil {
					t.Fatalf("%s: the block failed after %s: %v\n--- the block, as run ---\n%s--- its output ---\n%s",
						where, took, err, script, out)
				}
				t.Logf("%s: ran in %s; its output:\n%s", where, took, out)
				ran++
			}
			if ran == 0 {
				t.Fatalf("%s: every shell block is marked as not run", name)
			}
		})
	}
}

// blockTimeout bounds one block. The README's requests end within seconds (its long-poll and stream examples are
// bounded); a block that runs `go install` may download and compile a tool on a fresh machine.
func blockTimeout(script string) time.Duration {
	if strings.Contains(script, "go install") {
		return 10 * time.Minute
	}
	return time.Minute
}

// shellSession runs blocks one after the other as if pasted into one terminal.
type shellSession struct {
	dir   string   // where the next block starts
	env   []string // the environment the next block starts with
	state string   // the file a block leaves its environment in
}

// run runs script with `bash -euo pipefail` and returns its output. `set -a` exports what the block assigns, so that
// the environment it leaves (written to s.state after its last line) holds its variables for the next block. The
// block is its own process group, ended when it is done or out of time, so that nothing it started outlives it.
func (s *shellSession) run(script string, bound time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	out, err := os.CreateTemp(filepath.Dir(s.state), "output")
	if err != nil {
		return "", err
	}
	defer out.Close()
	_ = os.Remove(s.state)
	wrapped := "set -a\n" + script + "\nenv -0 > \"$README_TEST_STATE\"\n"
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", wrapped)
	cmd.Dir = s.dir
	cmd.Env = slices.Concat(s.env, []string{"README_TEST_STATE=" + s.state}) // s.env may be shared: never append to it
	// A file, not a pipe: a process the block left behind cannot keep Wait waiting for the end of its output.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	text, _ := os.ReadFile(out.Name())
	if ctx.Err() != nil {
		return string(text), fmt.Errorf("still running after %s (killed)", bound)
	}
	if err != nil {
		return string(text), err
	}
	raw, err := os.ReadFile(s.state)
	if err != nil {
		return string(text), fmt.Errorf("the block ended without reaching its last line: %w", err)
	}
	s.env = nil
	for _, kv := range strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "README_TEST_STATE" {
			s.env = append(s.env, kv)
			if k == "PWD" {
				s.dir = v
			}
		}
	}
	return string(text), nil
}

// devStack is the devserver of `make run` running as a separate process for one test.
type devStack struct {
	addrs addrMap  // the README's ports to the stack's addresses
	env   []string // the stack's addresses, by the names of the services' configuration
}

// startDevStack builds the devserver and starts it on free ports with its own DATA_DIR and the suite's Keycloak;
// it is stopped (SIGTERM, as Ctrl-C on `make run`) and its data removed when t ends, whether t passed or not.
func startDevStack(t *testing.T) devStack {
	t.Helper()
	kc, err := urlAddr(testinfra.KeycloakURL(t))
	if err != nil {
		t.Fatalf("KEYCLOAK_URL: %v", err)
	}
	bin := testinfra.Build(t, "github.com/casekeeper/core/services/devserver/cmd/devserver")
	natsPort := testinfra.FreePort(t)
	a := map[string]string{}
	for _, name := range []string{"CASE_GRPC_ADDR", "CASE_HTTP_ADDR", "WEBHOOK_GRPC_ADDR", "WEBHOOK_HTTP_ADDR",
		"GATEWAY_HTTP_ADDR", "GATEWAY_GRPC_ADDR", "DEV_MONGODB_ADDR"} {
		a[name] = testinfra.FreeAddr(t)
	}
	natsAddr := "127.0.0.1:" + strconv.Itoa(natsPort)
	gatewayURL := "http://" + a["GATEWAY_HTTP_ADDR"]

	cmd := exec.Command(bin)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "DATA_DIR="+t.TempDir(), "KEYCLOAK_URL="+kc.baseURL,
		// Embedded NATS and FerretDB even when the caller's environment points elsewhere.
		"NATS_URL=", "MONGODB_URI=", "DEV_NATS_PORT="+strconv.Itoa(natsPort), "GATEWAY_PUBLIC_URL="+gatewayURL)
	for name, addr := range a {
		cmd.Env = append(cmd.Env, name+"="+addr)
	}
	p := testinfra.StartProcess(t, cmd)
	for _, ready := range []string{gatewayURL, "http://" + a["CASE_HTTP_ADDR"], "http://" + a["WEBHOOK_HTTP_ADDR"]} {
		p.WaitReady(t, ready+"/readyz", 2*time.Minute)
	}
	if !strings.Contains(p.Output.String(), "Case-keeper Core is running.") {
		t.Fatalf("the devserver is ready but printed no welcome:\n%s", p.Output.String())
	}
	return devStack{
		addrs: addrMap{
			"8180":  kc,
			"8080":  {hostPort: a["GATEWAY_HTTP_ADDR"]},
			"9090":  {hostPort: a["GATEWAY_GRPC_ADDR"]},
			"9091":  {hostPort: a["CASE_GRPC_ADDR"]},
			"8091":  {hostPort: a["CASE_HTTP_ADDR"]},
			"9092":  {hostPort: a["WEBHOOK_GRPC_ADDR"]},
			"8092":  {hostPort: a["WEBHOOK_HTTP_ADDR"]},
			"4222":  {hostPort: natsAddr},
			"27017": {hostPort: a["DEV_MONGODB_ADDR"]},
		},
		env: []string{"KEYCLOAK_URL=" + kc.baseURL, "GATEWAY_PUBLIC_URL=" + gatewayURL,
			"CASE_SERVICE_ADDR=" + a["CASE_GRPC_ADDR"], "WEBHOOK_SERVICE_ADDR=" + a["WEBHOOK_GRPC_ADDR"],
			"NATS_URL=nats://" + natsAddr, "MONGODB_URI=mongodb://" + a["DEV_MONGODB_ADDR"],
			"CASEKEEPER_API=" + gatewayURL, "CASEKEEPER_GRPC=" + a["GATEWAY_GRPC_ADDR"],
			"CASEKEEPER_CASE_ADDR=" + a["CASE_GRPC_ADDR"], "CASEKEEPER_ISSUER=" + kc.baseURL + "/realms/casekeeper"},
	}
}

func TestShellSession(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &shellSession{dir: dir, env: os.Environ(), state: filepath.Join(t.TempDir(), "env")}
	if out, err := s.run("CURSOR=abc\ncd sub\n", time.Minute); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	out, err := s.run(`echo "$CURSOR $(basename "$PWD")"`+"\n", time.Minute)
	if err != nil || out != "abc sub\n" {
		t.Fatalf("the second block did not start where the first ended: %q %v", out, err)
	}

	for name, script := range map[string]string{
		"a failing command":        "false\necho after\n",
		"a failing pipeline stage": "echo x | false | cat\n",
		"an unset variable":        "echo \"$NOT_SET_BY_ANY_BLOCK\"\n",
	} {
		if out, err := s.run(script, time.Minute); err == nil || strings.Contains(out, "after") {
			t.Errorf("%s: %q %v, want a failure at once", name, out, err)
		}
	}

	start := time.Now()
	if _, err := s.run("sleep 60\n", time.Second); err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("a block past its bound: %v after %s", err, time.Since(start))
	}

	pidFile := filepath.Join(dir, "pid")
	if out, err := s.run("sleep 60 &\necho $! > "+pidFile+"\n", time.Minute); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	testinfra.Eventually(t, 5*time.Second, "the block's background process ended", func() bool {
		// Killed is enough: a zombie waits for whoever reaps orphans here, which may be slow or nobody.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		_, rest, _ := strings.Cut(string(stat), ") ")
		return strings.HasPrefix(rest, "Z")
	})
}
