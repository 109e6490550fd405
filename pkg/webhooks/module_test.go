package webhooks_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/casekeeper/core/pkg/webhooks"

// goList runs the go command in this module alone (GOWORK=off: the workspace would add every module of the
// repository). A module with no dependencies downloads nothing.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	cmd := exec.Command(goBin, append([]string{"list"}, args...)...)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestModuleHasNoDependencies: every module this one requires lands in every receiver's go.mod, so it requires
// none. Verifying a signature and decoding JSON need nothing beyond the standard library; NATS, MongoDB, gRPC or
// the casekeeper.v1 protos (which bring gRPC) must never come in through here.
func TestModuleHasNoDependencies(t *testing.T) {
	if mods := goList(t, "-m", "all"); !slices.Equal(mods, []string{modulePath}) {
		t.Errorf("go list -m all = %v, want only %s: remove the dependency (or decide, here, that receivers take it)",
			mods, modulePath)
	}
	// The same for the packages, tests included: only the standard library and this module's own (a test
	// binary's packages are named <path>.test and <path>_test).
	for _, line := range goList(t, "-deps", "-test", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...") {
		p, _, _ := strings.Cut(line, " ") // a test variant's path is followed by " [<path>.test]"
		p = strings.TrimSuffix(strings.TrimSuffix(p, ".test"), "_test")
		if p != "" && p != modulePath && !strings.HasPrefix(p, modulePath+"/") {
			t.Errorf("a package of the module imports %s, which is neither the standard library nor this module", p)
		}
	}
}
