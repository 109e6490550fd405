package mongostore_test

import (
	"testing"

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
