// Command ferretdb runs the embedded default database (FerretDB on SQLite) as a process of its own, for the
// cluster test: FERRETDB_ADDR to listen on, FERRETDB_DIR for the SQLite files. It stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/casekeeper/core/pkg/devinfra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	db, err := devinfra.StartFerretDB(ctx, devinfra.FerretDBOptions{ListenAddr: os.Getenv("FERRETDB_ADDR"), Dir: os.Getenv("FERRETDB_DIR")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	fmt.Println("ferretdb: serving", db.URI())
	<-ctx.Done()
	db.Stop()
}
