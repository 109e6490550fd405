// Command case runs the case service.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/logging"
	casesvc "github.com/casekeeper/core/services/case"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "case:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log, err := logging.New(os.Stdout, os.Getenv("LOG_LEVEL"))
	if err != nil {
		return err
	}
	cfg, err := config.Load[casesvc.Config](nil)
	if err != nil {
		return err
	}
	log.Info("configuration", "config", cfg)
	svc, err := casesvc.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
