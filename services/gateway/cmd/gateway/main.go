// Command gateway runs the query gateway: reads, the change feed and the dashboard.
package main

import (
	"context"
	"log/slog"

	"github.com/casekeeper/core/pkg/lifecycle"
	gatewaysvc "github.com/casekeeper/core/services/gateway"
)

func main() {
	lifecycle.Main("gateway", func(ctx context.Context, cfg gatewaysvc.Config, log *slog.Logger) (*gatewaysvc.Service, error) {
		return gatewaysvc.New(ctx, cfg, log)
	})
}
