// Package mongodb connects to the case database: MongoDB 7 in production, the embedded FerretDB in development and
// tests. Only single-document atomicity is assumed, since FerretDB has neither multi-document transactions nor change
// streams.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// Connect opens a client and waits (up to the context's deadline, or 30 s) until the server answers a ping.
func Connect(ctx context.Context, uri, appName string) (*mongo.Client, error) {
	client, err := mongo.Connect(options.Client().
		ApplyURI(uri).
		SetAppName(appName).
		SetServerSelectionTimeout(5 * time.Second).
		SetTimeout(30 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("mongodb: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	for {
		err = client.Ping(ctx, readpref.Primary())
		if err == nil {
			return client, nil
		}
		select {
		case <-ctx.Done():
			_ = client.Disconnect(context.Background())
			return nil, fmt.Errorf("mongodb: no answer from the server (MONGODB_URI): %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Ping is a readiness check.
func Ping(client *mongo.Client) func(ctx context.Context) error {
	return func(ctx context.Context) error { return client.Ping(ctx, readpref.Primary()) }
}

// IsFerretDB reports whether the server is FerretDB (the embedded default) rather than MongoDB. FerretDB 1.24 on
// SQLite turns only an equality on _id into an indexed lookup and scans for every other filter, so a secondary index
// there serves no query while every write maintains it: stores create theirs on MongoDB only.
func IsFerretDB(ctx context.Context, db *mongo.Database) (bool, error) {
	var info bson.M
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, fmt.Errorf("mongodb: buildInfo: %w", err)
	}
	_, ferret := info["ferretdbVersion"]
	return ferret, nil
}

// Index is a secondary index a store's queries use on MongoDB.
type Index struct {
	Collection *mongo.Collection
	Name       string
	Keys       bson.D
}

// EnsureIndexes creates indexes on MongoDB, and on FerretDB drops them instead (see IsFerretDB), along with the
// legacy ones, which go everywhere. It is idempotent. One index per call: FerretDB drops the connection when one
// createIndexes names two or more indexes that already exist.
func EnsureIndexes(ctx context.Context, db *mongo.Database, indexes []Index, legacy ...Index) error {
	ferret, err := IsFerretDB(ctx, db)
	if err != nil {
		return err
	}
	drop := legacy
	if ferret {
		drop = append(drop, indexes...)
		// The collections are made now, one at a time: on FerretDB the first write to a database that does not
		// exist yet creates its SQLite file, and two such writes at once can fail with SQLITE_BUSY (seen under
		// load, when a service's first requests came together).
		seen := map[string]bool{}
		for _, idx := range indexes {
			name := idx.Collection.Name()
			if seen[name] {
				continue
			}
			seen[name] = true
			if err := db.CreateCollection(ctx, name); err != nil && !isNamespaceExists(err) {
				return fmt.Errorf("mongodb: creating collection %s: %w", name, err)
			}
		}
	} else {
		for _, idx := range indexes {
			model := mongo.IndexModel{Keys: idx.Keys, Options: options.Index().SetName(idx.Name)}
			if _, err := idx.Collection.Indexes().CreateOne(ctx, model); err != nil {
				return fmt.Errorf("mongodb: creating index %s on %s: %w", idx.Name, idx.Collection.Name(), err)
			}
		}
	}
	for _, idx := range drop {
		specs, err := idx.Collection.Indexes().ListSpecifications(ctx)
		if err != nil {
			return fmt.Errorf("mongodb: listing indexes of %s: %w", idx.Collection.Name(), err)
		}
		for _, spec := range specs {
			if spec.Name == idx.Name {
				if err := idx.Collection.Indexes().DropOne(ctx, idx.Name); err != nil {
					return fmt.Errorf("mongodb: dropping index %s on %s: %w", idx.Name, idx.Collection.Name(), err)
				}
			}
		}
	}
	return nil
}

// isNamespaceExists is the error of creating a collection that exists (code 48, NamespaceExists).
func isNamespaceExists(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 48
}
