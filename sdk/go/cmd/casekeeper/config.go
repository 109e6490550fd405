package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	casekeeper "github.com/casekeeper/core/sdk/go"
)

// connection is what every command needs to reach Case-keeper, from flags with the environment as defaults.
type connection struct {
	api, grpc, caseAddr, issuer string
	clientID, clientSecret      string
	token                       string
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// flags makes a command's flag set with the connection flags on it.
func (c *connection) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by main
	fs.StringVar(&c.api, "api", envOr("CASEKEEPER_API", casekeeper.DefaultAPI), "the gateway's HTTP API")
	fs.StringVar(&c.grpc, "grpc", envOr("CASEKEEPER_GRPC", casekeeper.DefaultGRPC), "the gateway's gRPC address")
	fs.StringVar(&c.caseAddr, "case-addr", envOr("CASEKEEPER_CASE_ADDR", casekeeper.DefaultCaseService), "the case service's gRPC address")
	fs.StringVar(&c.issuer, "issuer", envOr("CASEKEEPER_ISSUER", casekeeper.DefaultIssuer), "the Keycloak realm URL")
	fs.StringVar(&c.clientID, "client-id", os.Getenv("CASEKEEPER_CLIENT_ID"), "Keycloak client id")
	fs.StringVar(&c.clientSecret, "client-secret", os.Getenv("CASEKEEPER_CLIENT_SECRET"), "Keycloak client secret")
	fs.StringVar(&c.token, "token", os.Getenv("CASEKEEPER_TOKEN"), "an access token, used as is")
	return fs
}

// client builds the SDK client the flags describe.
func (c *connection) client() (*casekeeper.Client, error) {
	opts := []casekeeper.Option{casekeeper.WithAPI(c.api), casekeeper.WithGRPC(c.grpc),
		casekeeper.WithCaseService(c.caseAddr), casekeeper.WithIssuer(c.issuer)}
	switch {
	case c.token != "":
		opts = append(opts, casekeeper.WithToken(c.token))
	case c.clientID != "" && c.clientSecret != "":
		opts = append(opts, casekeeper.WithClientCredentials(c.clientID, c.clientSecret))
	case c.clientID != "":
		return nil, errors.New("no client secret: set --client-secret or CASEKEEPER_CLIENT_SECRET")
	default:
		return nil, errors.New("no credentials: set --client-id and --client-secret (CASEKEEPER_CLIENT_ID, " +
			"CASEKEEPER_CLIENT_SECRET), or --token (CASEKEEPER_TOKEN)")
	}
	return casekeeper.New(opts...)
}

// parse reads flags and positional arguments in any order ("get ID --api …" as well as "get --api … ID") and
// checks the number of positional ones.
func parse(fs *flag.FlagSet, args []string, positional ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{fs.Name() + ": " + err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != len(positional) {
		if len(positional) == 0 {
			return nil, usageError{fmt.Sprintf("%s takes no argument, got %q", fs.Name(), strings.Join(pos, " "))}
		}
		return nil, usageError{fmt.Sprintf("%s needs %s", fs.Name(), strings.Join(positional, " "))}
	}
	return pos, nil
}

// list is a flag given several times, or once with commas: --types a --types b,c.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// output is where commands print: results to stdout, progress to stderr.
type output struct {
	stdout, stderr io.Writer
}

var jsonLine = protojson.MarshalOptions{UseProtoNames: true}

// json prints m as one line of JSON, in the API's own mapping (proto field names).
func (o *output) json(m proto.Message) error {
	b, err := jsonLine.Marshal(m)
	if err != nil {
		return err
	}
	// protojson may vary its spacing; one compact line is easier on jq and grep.
	_, err = fmt.Fprintln(o.stdout, compact(b))
	return err
}
