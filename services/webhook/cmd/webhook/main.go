// Command webhook runs the webhook delivery service.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/logging"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.Load[webhooksvc.Config](nil)
	if err != nil {
		return err
	}
	log, err := logging.New(os.Stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	svc, err := webhooksvc.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("webhook service started", "grpc_addr", svc.GRPCAddr(), "http_addr", svc.HTTPAddr())
	err = svc.Run(ctx)
	log.Info("webhook service stopped")
	return err
}
