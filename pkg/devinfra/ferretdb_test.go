package devinfra

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func startTestFerretDB(t testing.TB, dir string) *FerretDB {
	t.Helper()
	fdb, err := StartFerretDB(t.Context(), FerretDBOptions{Dir: dir})
	if err != nil {
		t.Fatalf("StartFerretDB: %v", err)
	}
	t.Cleanup(fdb.Stop)
	return fdb
}

// connectMongo returns a client disconnected at cleanup. Cleanups run last
// in, first out, so it disconnects before the server from startTestFerretDB
// stops and Stop does not wait out FerretDB's 3s grace period.
func connectMongo(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect %s: %v", uri, err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

func TestStartFerretDB_DataSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()

	start := time.Now()
	first, err := StartFerretDB(ctx, FerretDBOptions{Dir: dir})
	if err != nil {
		t.Fatalf("StartFerretDB: %v", err)
	}
	t.Logf("cold start: %s", time.Since(start))
	t.Cleanup(first.Stop) // no-op when the test already stopped it
	if !strings.HasPrefix(first.URI(), "mongodb://127.0.0.1:") || strings.Contains(first.URI(), ":0/") {
		t.Fatalf("URI() = %q, want mongodb://127.0.0.1:<actual port>/", first.URI())
	}

	client, err := mongo.Connect(options.Client().ApplyURI(first.URI()))
	if err != nil {
		t.Fatal(err)
	}
	coll := client.Database("survive").Collection("cases")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "case-1"}, {Key: "status", Value: "open"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "status", Value: 1}},
		Options: options.Index().SetName("status_1"),
	}); err != nil {
		t.Fatalf("create index: %v", err)
	}
	if err := client.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}

	stopStart := time.Now()
	first.Stop()
	t.Logf("stop: %s", time.Since(stopStart))

	start = time.Now()
	second := startTestFerretDB(t, dir)
	t.Logf("warm start (existing data): %s", time.Since(start))

	coll = connectMongo(t, second.URI()).Database("survive").Collection("cases")
	var got struct{ Status string }
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "case-1"}}).Decode(&got); err != nil {
		t.Fatalf("find after restart: %v", err)
	}
	if got.Status != "open" {
		t.Fatalf("status after restart = %q, want open", got.Status)
	}
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "status_1") {
		t.Fatalf("indexes after restart = %v, want status_1", names)
	}
}

func TestStartFerretDB_PortInUseNamesAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	fdb, err := StartFerretDB(t.Context(), FerretDBOptions{Dir: t.TempDir(), ListenAddr: addr})
	if err == nil {
		fdb.Stop()
		t.Fatal("StartFerretDB on a taken port succeeded")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("error %q does not name %s", err, addr)
	}
}

func TestStartFerretDB_FixedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	fdb, err := StartFerretDB(t.Context(), FerretDBOptions{Dir: t.TempDir(), ListenAddr: addr})
	if err != nil {
		t.Fatalf("StartFerretDB: %v", err)
	}
	defer fdb.Stop()
	if want := "mongodb://" + addr + "/"; fdb.URI() != want {
		t.Fatalf("URI() = %q, want %q", fdb.URI(), want)
	}
}

func TestStartFerretDB_InvalidOptions(t *testing.T) {
	tests := map[string]struct {
		opts FerretDBOptions
		want string
	}{
		"missing dir":      {FerretDBOptions{}, "missing Dir"},
		"bad listen addr":  {FerretDBOptions{Dir: "x", ListenAddr: "27017"}, `invalid ListenAddr "27017"`},
		"negative timeout": {FerretDBOptions{Dir: "x", ReadyTimeout: -time.Second}, "ReadyTimeout"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := StartFerretDB(t.Context(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("StartFerretDB(%+v) error = %v, want it to mention %q", tc.opts, err, tc.want)
			}
		})
	}
}

func TestStartFerretDB_CanceledContextOnlyBoundsStartup(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	fdb, err := StartFerretDB(ctx, FerretDBOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("StartFerretDB: %v", err)
	}
	t.Cleanup(fdb.Stop)
	cancel()

	client := connectMongo(t, fdb.URI())
	if err := client.Ping(t.Context(), nil); err != nil {
		t.Fatalf("ping after start-up context was canceled: %v", err)
	}
}

func TestFerretDB_StopTwice(t *testing.T) {
	fdb := startTestFerretDB(t, t.TempDir())
	fdb.Stop()
	fdb.Stop()
	conn, err := net.DialTimeout("tcp", strings.TrimSuffix(strings.TrimPrefix(fdb.URI(), "mongodb://"), "/"), time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("port still accepts connections after Stop")
	}
}
