package tests

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoServiceModuleRequiresAnother keeps each service module buildable and testable on its own: tests that need
// several services live here, in the tests module. The dev server is the exception by design: it is the binary
// that runs every service in one process.
func TestNoServiceModuleRequiresAnother(t *testing.T) {
	const services = "github.com/casekeeper/core/services/"
	for _, name := range []string{"case", "webhook", "gateway"} {
		out, err := exec.Command("go", "mod", "edit", "-json", filepath.Join(repoRoot(t), "services", name, "go.mod")).Output()
		if err != nil {
			t.Fatalf("go mod edit -json services/%s/go.mod: %v", name, err)
		}
		var mod struct {
			Require []struct{ Path string }
			Replace []struct{ Old struct{ Path string } }
		}
		if err := json.Unmarshal(out, &mod); err != nil {
			t.Fatal(err)
		}
		for _, r := range mod.Require {
			if strings.HasPrefix(r.Path, services) {
				t.Errorf("services/%s requires %s: move the test that needs it into tests/", name, r.Path)
			}
		}
		for _, r := range mod.Replace {
			if strings.HasPrefix(r.Old.Path, services) {
				t.Errorf("services/%s replaces %s", name, r.Old.Path)
			}
		}
	}
}
