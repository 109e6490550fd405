// Package logging builds the one JSON logger every service uses. Messages are static; values go in fields. A line
// logged with a context that holds a recording span carries its trace_id and span_id, so that an operator can go
// from a log line to its trace and back.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// New returns a JSON logger at the given level (debug, info, warn, error; empty means info).
func New(w io.Writer, level string) (*slog.Logger, error) {
	if strings.TrimSpace(level) == "" {
		level = "info"
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.TrimSpace(level))); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL %q is not one of debug, info, warn, error", level)
	}
	return slog.New(traceHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})}), nil
}

// traceHandler adds the trace of the record's context to each record.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// Discard is a logger for tests and embedded components that must stay quiet.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
