package testinfra_test

import (
	"net"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casekeeper/core/pkg/testinfra"
)

func TestNATS(t *testing.T) {
	t.Parallel()
	srv := testinfra.NATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("ping", nil); err != nil {
		t.Fatal(err)
	}
}

func TestMongo(t *testing.T) {
	t.Parallel()
	uri, database := testinfra.Mongo(t)
	if !strings.HasPrefix(uri, "mongodb://127.0.0.1:") {
		t.Fatalf("uri = %q", uri)
	}
	if database != "testmongo" {
		t.Fatalf("database = %q, want one derived from the test name", database)
	}
	coll := testinfra.ConnectMongo(t, uri, database).Collection("cases")
	if _, err := coll.InsertOne(t.Context(), bson.M{"_id": "x"}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if n, err := coll.CountDocuments(t.Context(), bson.M{}); err != nil || n != 1 {
		t.Fatalf("count = %d, %v", n, err)
	}
}

func TestMongo_EachTestGetsItsOwnServer(t *testing.T) {
	t.Parallel()
	uriA, dbA := testinfra.Mongo(t)
	uriB, _ := testinfra.Mongo(t)
	if uriA == uriB {
		t.Fatalf("two calls returned the same server %s", uriA)
	}
	if _, err := testinfra.ConnectMongo(t, uriA, dbA).Collection("c").InsertOne(t.Context(), bson.M{"_id": 1}); err != nil {
		t.Fatal(err)
	}
	n, err := testinfra.ConnectMongo(t, uriB, dbA).Collection("c").CountDocuments(t.Context(), bson.M{})
	if err != nil || n != 0 {
		t.Fatalf("second server sees %d documents (%v), want 0", n, err)
	}
}

func TestMongo_LongSubtestNamesMakeValidDatabaseNames(t *testing.T) {
	t.Parallel()
	t.Run(strings.Repeat("a very long name/with slashes & symbols ", 4), func(t *testing.T) {
		uri, database := testinfra.Mongo(t)
		if len(database) > 63 || strings.Trim(database, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Fatalf("database %q is not a valid FerretDB name", database)
		}
		if _, err := testinfra.ConnectMongo(t, uri, database).Collection("c").InsertOne(t.Context(), bson.M{"_id": 1}); err != nil {
			t.Fatalf("insert into %q: %v", database, err)
		}
	})
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", testinfra.FreeAddr(t))
	if err != nil {
		t.Fatalf("listen on FreeAddr: %v", err)
	}
	ln.Close()
}

func TestKeycloakURL(t *testing.T) {
	t.Setenv("KEYCLOAK_URL", "http://127.0.0.1:8180/")
	if got := testinfra.KeycloakURL(t); got != "http://127.0.0.1:8180" {
		t.Fatalf("KeycloakURL = %q", got)
	}
}

// fatalRecorder captures Fatalf without stopping the real test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = format
	panic(r)
}

func TestKeycloakURL_MissingFailsInsteadOfSkipping(t *testing.T) {
	t.Setenv("KEYCLOAK_URL", "")
	rec := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != rec {
				panic(p)
			}
		}()
		testinfra.KeycloakURL(rec)
	}()
	if !strings.Contains(rec.msg, "KEYCLOAK_URL is not set: run tests with `make test`") {
		t.Fatalf("Fatalf message = %q", rec.msg)
	}
}
