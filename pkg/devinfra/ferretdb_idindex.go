package devinfra

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	// The SQLite driver FerretDB itself runs on.
	_ "modernc.org/sqlite"
)

// idIndexer works around a FerretDB 1.24 defect that makes every lookup by _id scan the collection. The SQLite
// backend finds a document by _id with the expression _ferretdb_sjson->'$._id', while the unique index it creates
// for _id is on _ferretdb_sjson->"_id"; SQLite matches index expressions by their text, so the index is never used
// (measured: 63 ms per FindOne at 50,000 documents, linear in the collection size; 0.8 ms with a matching index).
// The embedded instance therefore adds, beside FerretDB's own index, an index on the very expression it queries, to
// every collection table as it appears. FerretDB does not know about the extra index; dropping the collection drops
// it with the table. Pinned by TestIDLookupsUseAnIndex.
type idIndexer struct {
	dir    string
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	dbs     map[string]*sql.DB
	indexed map[string]bool
}

const idIndexerInterval = 200 * time.Millisecond

func startIDIndexer(dir string, log *slog.Logger) *idIndexer {
	ctx, cancel := context.WithCancel(context.Background())
	x := &idIndexer{dir: dir, log: log, cancel: cancel, done: make(chan struct{}), dbs: map[string]*sql.DB{}, indexed: map[string]bool{}}
	go x.run(ctx)
	return x
}

func (x *idIndexer) run(ctx context.Context) {
	defer close(x.done)
	ticker := time.NewTicker(idIndexerInterval)
	defer ticker.Stop()
	for {
		x.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// pass indexes every collection table not indexed yet, in every database file of the directory.
func (x *idIndexer) pass(ctx context.Context) {
	entries, err := os.ReadDir(x.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sqlite") {
			continue
		}
		if err := x.indexFile(ctx, filepath.Join(x.dir, e.Name())); err != nil && ctx.Err() == nil {
			x.log.Warn("ferretdb: adding the _id lookup index failed; retrying", "file", e.Name(), "error", err)
		}
	}
}

func (x *idIndexer) indexFile(ctx context.Context, path string) error {
	x.mu.Lock()
	db, ok := x.dbs[path]
	if !ok {
		var err error
		// FerretDB's own settings: WAL, and waiting for a lock rather than failing.
		db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
		if err != nil {
			x.mu.Unlock()
			return err
		}
		db.SetMaxOpenConns(1)
		x.dbs[path] = db
	}
	x.mu.Unlock()

	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil // a database file FerretDB is still setting up
		}
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			_ = rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	_ = rows.Close()
	for _, t := range tables {
		key := path + "/" + t
		if x.indexed[key] {
			continue
		}
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+"_ck_id_lookup", t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				continue // dropped meanwhile
			}
			return err
		}
		x.indexed[key] = true
	}
	return nil
}

// stop ends the indexer and closes its handles; FerretDB keeps its own.
func (x *idIndexer) stop() {
	x.cancel()
	<-x.done
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, db := range x.dbs {
		_ = db.Close()
	}
	x.dbs = nil
}
