package casesvc_test

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
)

// TestBinaryExitsWithOneErrorLine: a start-up failure (here the gRPC port is taken) ends the process with status 1
// and one error line that names the variable to fix, without a panic.
func TestBinaryExitsWithOneErrorLine(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cmd := exec.Command(testinfra.Build(t, "./cmd/case"))
	cmd.Env = append(os.Environ(), "CASE_GRPC_ADDR="+taken.Addr().String(), "CASE_HTTP_ADDR="+testinfra.FreeAddr(t),
		"NATS_URL=nats://"+testinfra.FreeAddr(t), "MONGODB_URI=mongodb://"+testinfra.FreeAddr(t),
		"KEYCLOAK_URL=http://"+testinfra.FreeAddr(t))
	errorLines, out := testinfra.FailedStart(t, cmd, 30*time.Second)
	if len(errorLines) != 1 || !strings.Contains(errorLines[0], "CASE_GRPC_ADDR") || strings.Contains(out, "panic") {
		t.Fatalf("want one error line naming CASE_GRPC_ADDR and no panic, got:\n%s", out)
	}
}
