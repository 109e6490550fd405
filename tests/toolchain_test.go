package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The example receivers run as their users would run them. What they need is installed here from the registries
// when missing (the first run on a fresh machine), saying what is done; a missing language runtime fails the test:
// a skipped example looks green while proving nothing.

// runLogged runs a setup command in dir, logging it first, and fails the test with its output when it fails.
func runLogged(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	t.Logf("(in %s) %s%s %s", dir, strings.Join(append(env, ""), " "), name, strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func need(t *testing.T, tool, hint string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is not installed: the %s example receiver cannot run (%s)", tool, hint, err)
	}
	return p
}

// goReceiver builds examples/receivers/go, its own module (outside go.work, as a user's copy would be).
func goReceiver(t *testing.T) []string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "examples", "receivers", "go")
	bin := filepath.Join(t.TempDir(), "receiver-go")
	runLogged(t, dir, []string{"GOWORK=off", "CGO_ENABLED=0"}, need(t, "go", "Go"), "build", "-o", bin, ".")
	return []string{bin}
}

// nodeReceiver installs the locked npm dependencies (standardwebhooks) into examples/receivers/node/node_modules
// when they are missing.
func nodeReceiver(t *testing.T) []string {
	t.Helper()
	node := need(t, "node", "Node.js")
	dir := filepath.Join(repoRoot(t), "examples", "receivers", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks", "package.json")); err != nil {
		t.Logf("the npm package standardwebhooks is not installed in %s: installing from package-lock.json", dir)
		runLogged(t, dir, nil, need(t, "npm", "Node.js"), "ci", "--no-audit", "--no-fund")
	}
	return []string{node, filepath.Join(dir, "receiver.mjs")}
}

// pythonReceiver makes the virtualenv examples/receivers/python/.venv with the PyPI package standardwebhooks
// (requirements.txt) when it is missing.
func pythonReceiver(t *testing.T) []string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "examples", "receivers", "python")
	venv := filepath.Join(dir, ".venv")
	py := filepath.Join(venv, "bin", "python")
	if exec.Command(py, "-c", "import standardwebhooks, cryptography").Run() != nil {
		if _, err := os.Stat(py); err != nil {
			t.Logf("no Python virtualenv in %s: creating it", venv)
			runLogged(t, dir, nil, need(t, "python3", "Python"), "-m", "venv", venv)
		}
		t.Logf("the PyPI packages standardwebhooks and cryptography are not installed in %s: installing requirements.txt", venv)
		runLogged(t, dir, nil, py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", "requirements.txt")
	}
	return []string{py, filepath.Join(dir, "receiver.py")}
}
