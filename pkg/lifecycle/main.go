package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/logging"
	"github.com/casekeeper/core/pkg/tracing"
)

// Service is what a service binary runs until its context ends.
type Service interface {
	Run(ctx context.Context) error
}

// Main is the whole main function of a service binary, the same for every service: a JSON logger at LOG_LEVEL on
// stdout, the configuration C from the environment (logged with its secrets masked), a context that SIGINT and
// SIGTERM end, then the service built by build until it has drained. A failure — a variable that is wrong, a
// dependency that cannot be reached at start-up, a worker that failed — is one error line in the log naming what
// failed, and the process exits with status 1. Tracing is set up from the OTEL_* variables (pkg/tracing) before
// build, and flushed after the service has drained. Whatever build opened before it failed, build closes.
func Main[C any, S Service](name string, build func(ctx context.Context, cfg C, log *slog.Logger) (S, error)) {
	log, err := logging.New(os.Stdout, os.Getenv("LOG_LEVEL"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: LOG_LEVEL: %v\n", name, err)
		os.Exit(1)
	}
	if err := runMain(name, log, build); err != nil {
		log.Error(name+" failed", "error", err.Error())
		os.Exit(1)
	}
}

func runMain[C any, S Service](name string, log *slog.Logger, build func(ctx context.Context, cfg C, log *slog.Logger) (S, error)) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load[C](nil)
	if err != nil {
		return err
	}
	log.Info("configuration", "config", cfg)
	shutdownTracing, err := tracing.Setup(ctx, name)
	if err != nil {
		return err
	}
	log.Info("tracing", "enabled", tracing.Enabled())
	defer func() {
		// Spans still buffered are sent before the process exits, within a bound of their own.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(sctx); err != nil {
			log.Warn("tracing: spans not flushed", "error", err.Error())
		}
	}()
	svc, err := build(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("start-up: %w", err)
	}
	return svc.Run(ctx)
}
