package testinfra

import (
	"context"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casekeeper/core/pkg/devinfra"
)

// NATS starts a NATS server with JetStream for t alone, on a random port,
// with its store in t.TempDir. It is shut down when t finishes.
func NATS(t testing.TB) *devinfra.NATSServer {
	t.Helper()
	srv, err := devinfra.StartNATS(devinfra.NATSOptions{
		StoreDir:   t.TempDir(),
		ServerName: "test",
		Logger:     Logger(t),
	})
	if err != nil {
		t.Fatalf("testinfra: start NATS: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Mongo starts a FerretDB for t alone, on a random port, with its SQLite
// files in t.TempDir, and returns its URI and the name of a database for the
// test to use. It is stopped when t finishes.
//
// Register anything that connects to uri with t.Cleanup after calling Mongo,
// so it disconnects first: FerretDB waits up to 3s for connected clients.
func Mongo(t testing.TB) (uri, database string) {
	t.Helper()
	fdb, err := devinfra.StartFerretDB(t.Context(), devinfra.FerretDBOptions{
		Dir:    t.TempDir(),
		Logger: Logger(t),
	})
	if err != nil {
		t.Fatalf("testinfra: start FerretDB: %v", err)
	}
	t.Cleanup(fdb.Stop)
	return fdb.URI(), databaseName(t)
}

// ConnectMongo returns a handle on database at uri, for seeding and checking
// data behind a service's back. The client disconnects when t finishes.
func ConnectMongo(t testing.TB, uri, database string) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("testinfra: connect to %s: %v", uri, err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(database)
}

// KeycloakURL returns the base URL of the real Keycloak the integration tests
// run against. A missing KEYCLOAK_URL fails the test instead of skipping it:
// a skipped auth test looks green while testing nothing.
func KeycloakURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("KEYCLOAK_URL")
	if u == "" {
		t.Fatalf("KEYCLOAK_URL is not set: run tests with `make test`, which starts the real Keycloak")
	}
	return strings.TrimSuffix(u, "/")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// servers that cannot report the port they picked themselves. Prefer
// listening on port 0 where the code under test allows it: another process
// can take the port between this call and the listen.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testinfra: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreeAddr is FreePort as a "127.0.0.1:port" listen address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

var unsafeDBChars = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

// databaseName derives a valid, readable database name from the test name,
// so a kept data directory shows which test wrote what.
func databaseName(t testing.TB) string {
	name := strings.ToLower(unsafeDBChars.ReplaceAllString(t.Name(), "_"))
	const maxLen = 63 // FerretDB's limit for database names
	if len(name) > maxLen {
		name = name[len(name)-maxLen:]
	}
	return strings.Trim(name, "_")
}
