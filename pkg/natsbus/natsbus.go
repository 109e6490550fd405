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

// EnsureOption adjusts how EnsureStream and EnsureKeyValue wait for JetStream.
type EnsureOption func(*ensureSettings)

type ensureSettings struct {
	log   *slog.Logger
	every time.Duration
}

// LogWaits logs, at most every few seconds, that the declaration is waiting for JetStream and why, so that a
// service waiting for a NATS cluster to elect its leader says so instead of looking hung.
func LogWaits(log *slog.Logger) EnsureOption { return func(s *ensureSettings) { s.log = log } }

// defaultWait bounds the wait of a declaration whose context has no deadline.
const defaultWait = 60 * time.Second

// logEvery spaces the log lines of one wait.
const logEvery = 5 * time.Second

// attemptTimeout bounds one request: a client that is not connected yet gets no answer at all, and without a
// bound per attempt the first one would use up the whole wait in silence.
const attemptTimeout = 5 * time.Second

// EnsureStream creates the stream or updates it to cfg. While JetStream cannot take the request yet — NATS not
// reachable, a cluster without a meta leader, no peers for the replicas yet (see Transient) — it retries until
// ctx ends (at most 60 s when ctx has no deadline); any other refusal (a configuration the server rejects) fails at
// once.
//
// A stream that already has cfg's settings is left alone: every replica of every service declares the streams it
// uses at start-up, and an update that changes nothing still rewrites the stream's configuration on the server,
// where it races with consumers being created on the same stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, opts ...EnsureOption) (jetstream.Stream, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var s jetstream.Stream
	err := retry(ctx, "stream", cfg.Name, opts, func(ctx context.Context) error {
		var err error
		if s, err = js.Stream(ctx, cfg.Name); err == nil && sameStreamSettings(s.CachedInfo().Config, cfg) {
			return nil
		}
		s, err = js.CreateOrUpdateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, cfg.Name)
		}
		return err
	})
	return s, err
}

// sameStreamSettings compares what the services set on a stream.
func sameStreamSettings(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.MaxAge == want.MaxAge && have.Replicas == max(want.Replicas, 1) &&
		have.Storage == want.Storage && have.Retention == want.Retention && have.AllowDirect == want.AllowDirect &&
		(want.Duplicates == 0 || have.Duplicates == want.Duplicates) && have.MaxMsgs == cmp.Or(want.MaxMsgs, -1) &&
		have.Description == want.Description
}

// EnsureKeyValue creates the KV bucket or updates it to cfg, waiting for JetStream as EnsureStream does.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, opts ...EnsureOption) (jetstream.KeyValue, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var kv jetstream.KeyValue
	err := retry(ctx, "bucket", cfg.Bucket, opts, func(ctx context.Context) error {
		var err error
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	return kv, err
}

func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultWait)
}

// retry calls declare until it succeeds, fails for good, or ctx ends; every error names the object and NATS_URL.
func retry(ctx context.Context, kind, name string, opts []EnsureOption, declare func(context.Context) error) error {
	st := ensureSettings{every: 500 * time.Millisecond}
	for _, o := range opts {
		o(&st)
	}
	started := time.Now()
	var logged time.Time
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := declare(actx)
		cancel()
		if err == nil {
			if st.log != nil && attempt > 1 {
				st.log.Info("JetStream ready", kind, name, "waited", time.Since(started).Round(time.Millisecond).String())
			}
			return nil
		}
		if !Transient(err) {
			return fmt.Errorf("%s %s: JetStream refused it: %w", kind, name, err)
		}
		if st.log != nil && time.Since(logged) >= logEvery {
			logged = time.Now()
			st.log.Warn("waiting for JetStream", kind, name, "attempt", attempt, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: JetStream not ready after %s (NATS_URL; a cluster needs a leader and enough servers for the replicas): %w",
				kind, name, time.Since(started).Round(time.Second), err)
		case <-time.After(st.every):
		}
	}
}

// transientCodes are the JetStream API errors of a server or cluster that is not ready yet, rather than a refusal.
var transientCodes = map[uint16]bool{
	10005: true, // no suitable peers for placement: not enough servers up (yet) for the replicas
	10008: true, // JetStream system temporarily unavailable: no meta leader yet
	10009: true, // cluster can not handle request: not the leader
	10023: true, // insufficient resources
	10076: true, // JetStream not enabled: this server's JetStream is still starting
	10118: true, // stream is offline
}

// Transient reports whether a JetStream API error may go away by itself: the request timed out or found no
// responder (NATS unreachable, JetStream starting), or the server answered that the cluster is not ready.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return transientCodes[uint16(apiErr.ErrorCode)] || apiErr.Code == 503
	}
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubject) || errors.Is(err, jetstream.ErrInvalidStreamName) {
		return false
	}
	// Timeouts, no responders, a connection not (re)established yet, and any other failure to get an answer.
	return true
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
