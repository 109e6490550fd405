package devinfra

import (
	"context"
	"fmt"
	"log/slog"
)

// quietLogger is used when the caller passes no logger: the embedded servers
// are chatty at info level and would drown test and dev-server output.
func quietLogger() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// minLevelHandler drops records below min before they reach next. It lets the
// caller keep one logger for the whole process while third-party servers only
// contribute warnings and errors.
type minLevelHandler struct {
	min  slog.Level
	next slog.Handler
}

func atLeast(min slog.Level, l *slog.Logger) *slog.Logger {
	return slog.New(&minLevelHandler{min: min, next: l.Handler()})
}

func (h *minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.next.Enabled(ctx, l)
}

func (h *minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.next.Handle(ctx, r)
}

func (h *minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &minLevelHandler{min: h.min, next: h.next.WithAttrs(attrs)}
}

func (h *minLevelHandler) WithGroup(name string) slog.Handler {
	return &minLevelHandler{min: h.min, next: h.next.WithGroup(name)}
}

// natsLogger adapts nats-server's printf-style Logger to slog. Notices go to
// debug so a warn-level logger only sees what needs attention.
//
// It also remembers the first fatal message: an embedded nats-server does not
// exit or return an error when, say, its port is taken or JetStream cannot use
// its store directory — it only logs at fatal level and never becomes ready.
// Capturing that message lets StartNATS fail fast with the real reason.
type natsLogger struct {
	log   *slog.Logger
	fatal chan string // capacity 1: the first fatal message wins
}

func newNATSLogger(l *slog.Logger) *natsLogger {
	return &natsLogger{log: l, fatal: make(chan string, 1)}
}

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
