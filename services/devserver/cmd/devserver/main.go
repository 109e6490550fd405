// Command devserver runs the whole Case-keeper stack in one process for development (`make run`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/logging"
	"github.com/casekeeper/core/services/devserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log, err := logging.New(os.Stderr, os.Getenv("LOG_LEVEL"))
	if err != nil {
		return err
	}
	cfg, err := config.Load[devserver.Config](nil)
	if err != nil {
		return err
	}
	stack, err := devserver.Start(ctx, cfg, devserver.Environ(), log)
	if err != nil {
		return err
	}
	stack.PrintWelcome(os.Stdout)
	return stack.Run(ctx)
}
