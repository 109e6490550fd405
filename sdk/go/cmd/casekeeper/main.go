// Command casekeeper is the command-line client of Case-keeper Core: a token, cases, the change feed, webhook
// endpoints, and `webhooks listen`, which forwards the feed to a receiver on your machine as signed webhooks.
// Run `casekeeper help` for the commands; sdk/go/README.md describes them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `casekeeper — the command-line client of Case-keeper Core

Commands:
  token                                     print an access token (client credentials)
  cases create --request-id ID --ref REF --name NAME [--nationality DE]
                                            create a case (case service, a KYC provider's client)
  cases get ID                              print a case
  cases list [--status S ...]               print the tenant's cases, one JSON line each
  events tail [--after CURSOR|latest] [--cursor-file F] [--types T ...] [--follow] [--via poll|sse|grpc]
                                            print the change feed, one JSON event per line
  webhooks listen --forward-to URL [--secret whsec_...]
                                            forward the feed to a local receiver as signed webhooks
  webhooks endpoints list | create --url U [--types T ...] | delete ID
                                            manage the tenant's webhook endpoints (webhooks:manage)

Every command takes the connection flags (environment variable in brackets):
  --api URL            the gateway's HTTP API [CASEKEEPER_API] (http://127.0.0.1:8080)
  --grpc ADDR          the gateway's gRPC address [CASEKEEPER_GRPC] (127.0.0.1:9090)
  --case-addr ADDR     the case service's gRPC address [CASEKEEPER_CASE_ADDR] (127.0.0.1:9091)
  --issuer URL         the Keycloak realm [CASEKEEPER_ISSUER] (http://127.0.0.1:8180/realms/casekeeper)
  --client-id ID       [CASEKEEPER_CLIENT_ID]
  --client-secret S    [CASEKEEPER_CLIENT_SECRET]
  --token T            an access token to use as is, instead of client credentials [CASEKEEPER_TOKEN]
`

// errUsage is a command line that cannot be run; its message has been printed with the usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "casekeeper: %s (casekeeper help)\n", oneLine(ue.msg))
		os.Exit(2)
	}
	msg := oneLine(err.Error())
	if !strings.HasPrefix(msg, "casekeeper: ") {
		msg = "casekeeper: " + msg
	}
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// run dispatches to the command named by args.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	out := &output{stdout: stdout, stderr: stderr}
	switch {
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case cmd == "token":
		return tokenCmd(ctx, rest, out)
	case cmd == "cases" && sub == "create":
		return casesCreate(ctx, rest[1:], out)
	case cmd == "cases" && sub == "get":
		return casesGet(ctx, rest[1:], out)
	case cmd == "cases" && sub == "list":
		return casesList(ctx, rest[1:], out)
	case cmd == "events" && sub == "tail":
		return eventsTail(ctx, rest[1:], out)
	case cmd == "webhooks" && sub == "listen":
		return webhooksListen(ctx, rest[1:], out)
	case cmd == "webhooks" && sub == "endpoints":
		return webhooksEndpoints(ctx, rest[1:], out)
	}
	return usageError{fmt.Sprintf("unknown command %q", strings.TrimSpace(cmd+" "+sub))}
}
