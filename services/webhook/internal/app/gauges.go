package app

import (
	"context"
	"log/slog"
	"time"
)

// Gauges samples the backlogs from JetStream's own counters: a few requests per sample whatever the number of
// deliveries stored.
type Gauges struct {
	Metrics *Metrics
	Log     *slog.Logger
	Every   time.Duration
	// Lag is what waits for the fan-out (case events) and for the endpoint consumers (attempts due now).
	Lag func(ctx context.Context) (fanout, endpoints uint64, err error)
	// Queued is every message in the delivery queue: attempts due now and retries scheduled for later.
	Queued func(ctx context.Context) (uint64, error)
}

// Run samples every Every until ctx ends.
func (g *Gauges) Run(ctx context.Context) error {
	t := time.NewTicker(g.Every)
	defer t.Stop()
	for {
		g.sample(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (g *Gauges) sample(ctx context.Context) {
	fanout, endpoints, err := g.Lag(ctx)
	if err != nil {
		g.Log.Debug("sampling the consumer lag failed", "error", err)
		return
	}
	g.Metrics.ConsumerLag.WithLabelValues("fanout").Set(float64(fanout))
	g.Metrics.ConsumerLag.WithLabelValues("endpoints").Set(float64(endpoints))
	queued, err := g.Queued(ctx)
	if err != nil {
		g.Log.Debug("sampling the delivery queue failed", "error", err)
		return
	}
	// What is queued and not due is a scheduled retry.
	g.Metrics.RetryBacklog.Set(float64(queued - min(queued, endpoints)))
}
