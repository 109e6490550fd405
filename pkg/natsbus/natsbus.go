// Package natsbus connects to NATS JetStream and declares the streams the services share. Streams are created or
// updated idempotently by whichever service starts first, so start order does not matter.
package natsbus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Connect opens a connection that reconnects forever: an outage of NATS must delay work, never end the service.
func Connect(url, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Drain or Close at shutdown
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("nats (NATS_URL %s): %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// EnsureStream creates the stream or updates it to cfg, waiting for JetStream while NATS is not reachable yet.
//
// A stream that already has cfg's settings is left alone: every replica of every service declares the streams it
// uses at start-up, and an update that changes nothing still rewrites the stream's configuration on the server,
// where it races with consumers being created on the same stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if s, err := js.Stream(ctx, cfg.Name); err == nil && sameStreamSettings(s.CachedInfo().Config, cfg) {
		return s, nil
	}
	for {
		s, err := js.CreateOrUpdateStream(ctx, cfg)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return js.Stream(ctx, cfg.Name)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// sameStreamSettings compares what the services set on a stream.
func sameStreamSettings(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.MaxAge == want.MaxAge && have.Replicas == max(want.Replicas, 1) &&
		have.Storage == want.Storage && have.Retention == want.Retention && have.AllowDirect == want.AllowDirect &&
		(want.Duplicates == 0 || have.Duplicates == want.Duplicates) && have.MaxMsgs == cmp.Or(want.MaxMsgs, -1) &&
		have.Description == want.Description
}

// EnsureKeyValue creates the KV bucket or updates it to cfg, waiting for JetStream while NATS is not reachable yet.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	for {
		kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
		if err == nil {
			return kv, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Ready is a readiness check: the connection is up.
func Ready(nc *nats.Conn) func(ctx context.Context) error {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected to NATS")
		}
		return nil
	}
}
