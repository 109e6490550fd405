package devinfra

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

var t0Bench = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Run with: go test -run '^$' -bench . -benchtime 20x ./devinfra/
// (each start benchmark iteration is a full cold start on a fresh directory).

func BenchmarkStartFerretDB(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		fdb, err := StartFerretDB(context.Background(), FerretDBOptions{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		fdb.Stop()
		b.StartTimer()
	}
}

// BenchmarkStartFerretDBFirstWrite adds what a test pays before its first
// document is stored: connecting a client and creating the SQLite database
// and collection files.
func BenchmarkStartFerretDBFirstWrite(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		fdb, err := StartFerretDB(context.Background(), FerretDBOptions{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		client, err := mongo.Connect(options.Client().ApplyURI(fdb.URI()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := client.Database("bench").Collection("cases").InsertOne(context.Background(), bson.M{"_id": 1}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = client.Disconnect(context.Background())
		fdb.Stop()
		b.StartTimer()
	}
}

func BenchmarkStartNATS(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		srv, err := StartNATS(NATSOptions{StoreDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		srv.Shutdown()
		b.StartTimer()
	}
}

// BenchmarkFindOneAndUpdate is the services' hot write path: an optimistic
// update of one case by {_id, version} returning the new document.
func BenchmarkFindOneAndUpdate(b *testing.B) {
	ctx := context.Background()
	fdb := startTestFerretDB(b, b.TempDir())
	coll := connectMongo(b, fdb.URI()).Database("bench").Collection("cases")
	doc := newCase("case-1", "acme", t0Bench)
	if _, err := coll.InsertOne(ctx, doc); err != nil {
		b.Fatal(err)
	}
	after := options.FindOneAndUpdate().SetReturnDocument(options.After)
	var version int64
	for b.Loop() {
		var got caseDoc
		err := coll.FindOneAndUpdate(ctx,
			bson.D{{Key: "_id", Value: "case-1"}, {Key: "version", Value: version}},
			bson.D{
				{Key: "$set", Value: bson.D{{Key: "status", Value: "in_review"}}},
				{Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}},
			},
			after,
		).Decode(&got)
		if err != nil {
			b.Fatal(err)
		}
		version = got.Version
	}
}

func BenchmarkFindOneByID(b *testing.B) {
	ctx := context.Background()
	fdb := startTestFerretDB(b, b.TempDir())
	coll := connectMongo(b, fdb.URI()).Database("bench").Collection("cases")
	if _, err := coll.InsertOne(ctx, newCase("case-1", "acme", t0Bench)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := coll.FindOne(ctx, bson.M{"_id": "case-1"}).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
