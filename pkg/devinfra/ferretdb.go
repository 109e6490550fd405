package devinfra

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// FerretDBOptions configures StartFerretDB.
type FerretDBOptions struct {
	// Dir holds the SQLite files, one per database. Required; created if
	// missing. Embedded FerretDB keeps no other state on disk (its
	// telemetry state lives in memory and is locked to "disabled").
	// Never point two running instances at the same Dir.
	Dir string

	// ListenAddr is the host:port to serve the MongoDB wire protocol on.
	// Port 0 picks a random free port. Empty means 127.0.0.1:0.
	ListenAddr string

	// Logger receives FerretDB's errors. Lower levels are dropped: FerretDB
	// logs every connection at info and dumps every failed command at warn,
	// including the endSessions the Go driver sends on each Disconnect.
	// Nil silences it.
	Logger *slog.Logger

	// ReadyTimeout bounds the wait until a MongoDB ping succeeds.
	// Zero means 30s.
	ReadyTimeout time.Duration
}

const (
	defaultFerretDBListenAddr   = "127.0.0.1:0"
	defaultFerretDBReadyTimeout = 30 * time.Second
)

func (o FerretDBOptions) validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("missing Dir"))
	}
	if o.ListenAddr != "" {
		if _, _, err := net.SplitHostPort(o.ListenAddr); err != nil {
			errs = append(errs, fmt.Errorf("invalid ListenAddr %q: %w", o.ListenAddr, err))
		}
	}
	if o.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("invalid ReadyTimeout %s: negative", o.ReadyTimeout))
	}
	return errors.Join(errs...)
}

// FerretDB is an in-process FerretDB serving the MongoDB wire protocol on top
// of SQLite.
type FerretDB struct {
	uri      string
	cancel   context.CancelFunc
	done     chan struct{} // closed when FerretDB's Run has returned
	ids      *idIndexer
	stopOnce sync.Once
}

// ferretNewMu serialises ferretdb.New, which writes FerretDB's package-level
// build information; two instances starting at once would be a data race.
var ferretNewMu sync.Mutex

// StartFerretDB starts an embedded FerretDB with the SQLite backend and
// returns once it answers a MongoDB ping, or fails within opts.ReadyTimeout.
//
// ctx bounds only the start-up: the instance runs until Stop, so it can be
// started from a short-lived context (for example the first test that needs
// a shared instance).
func StartFerretDB(ctx context.Context, opts FerretDBOptions) (*FerretDB, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("ferretdb: invalid options: %w", err)
	}
	addr := cmp.Or(opts.ListenAddr, defaultFerretDBListenAddr)

	// FerretDB's New leaks its open SQLite handles when the listener fails,
	// so check a fixed port before touching the store.
	if _, port, _ := net.SplitHostPort(addr); port != "0" {
		if err := probeListen(addr); err != nil {
			return nil, fmt.Errorf("ferretdb: cannot listen on %s: %w", addr, err)
		}
	}

	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("ferretdb: data dir %q: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ferretdb: create data dir: %w", err)
	}

	logger := atLeast(slog.LevelError, cmp.Or(opts.Logger, quietLogger()))

	ferretNewMu.Lock()
	fdb, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: addr},
		Logger:   logger,
		Handler:  "sqlite",
		// The SQLite backend wants a file: URI naming a directory with a
		// trailing slash. WAL with synchronous=NORMAL survives a crash of the
		// process (only a power loss can take the last commits), and makes a
		// single-document write about 30 % cheaper than FULL.
		SQLiteURL: (&url.URL{Scheme: "file", Path: dir + "/", RawQuery: "_pragma=synchronous(normal)"}).String(),
	})
	ferretNewMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("ferretdb: start on %s: %w", addr, err)
	}

	// The listener is bound inside New, so the URI already carries the
	// actual port even when a random one was requested.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &FerretDB{uri: fdb.MongoDBURI(), cancel: cancel, done: make(chan struct{}), ids: startIDIndexer(dir, logger)}
	go func() {
		defer close(f.done)
		_ = fdb.Run(runCtx) // always nil: it only returns once runCtx is done
	}()

	readyCtx, cancelReady := context.WithTimeout(ctx, cmp.Or(opts.ReadyTimeout, defaultFerretDBReadyTimeout))
	defer cancelReady()
	if err := pingMongo(readyCtx, f.uri); err != nil {
		f.Stop()
		return nil, fmt.Errorf("ferretdb: not ready on %s: %w", addr, err)
	}
	return f, nil
}

// pingMongo connects with the same driver the services use, so "ready" means
// a real client can talk to the server, not just that a port is open.
func pingMongo(ctx context.Context, uri string) error {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	// A fresh context: disconnecting must not fail just because the ping
	// used up the start-up budget.
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	return client.Ping(ctx, nil)
}

// URI is a mongodb:// URI for this instance with the actual port, e.g.
// mongodb://127.0.0.1:27017/.
func (f *FerretDB) URI() string { return f.uri }

// Stop shuts FerretDB down and waits until its listener, connections and
// SQLite files are closed. Clients still connected delay it by up to 3s
// (FerretDB's grace period), so disconnect them first. Safe to call more
// than once.
func (f *FerretDB) Stop() {
	f.stopOnce.Do(f.ids.stop)
	f.cancel()
	<-f.done
}
