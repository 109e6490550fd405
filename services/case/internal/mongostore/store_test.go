package mongostore_test

import (
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casekeeper/core/pkg/mongodb"
	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/services/case/internal/mongostore"
)

// TestEnsureIndexesTwice is a restart on kept data: declaring the indexes again must succeed.
func TestEnsureIndexesTwice(t *testing.T) {
	uri, db := testinfra.Mongo(t)
	store := mongostore.New(testinfra.ConnectMongo(t, uri, db))
	for range 2 {
		if err := store.EnsureIndexes(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListIndexesOnlyWhereTheyServe: on MongoDB the list queries get their indexes; on FerretDB, which scans for
// every filter but _id, none is kept (an index there only costs writes), including one left by an earlier version.
func TestListIndexesOnlyWhereTheyServe(t *testing.T) {
	uri, dbName := testinfra.Mongo(t)
	db := testinfra.ConnectMongo(t, uri, dbName)
	ctx := t.Context()
	if _, err := db.Collection("cases").Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("tenant_id")}); err != nil {
		t.Fatal(err)
	}
	if err := mongostore.New(db).EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	specs, err := db.Collection("cases").Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	ferret, err := mongodb.IsFerretDB(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"_id_", "tenant_id", "tenant_status_id", "tenant_external_ref", "tenant_updated_at"}
	if ferret {
		want = []string{"_id_"}
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("indexes %v, want %v (FerretDB: %v)", names, want, ferret)
	}
}
