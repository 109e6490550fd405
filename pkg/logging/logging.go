// Package logging builds the one JSON logger every service uses. Messages are static; values go in fields.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
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
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// Discard is a logger for tests and embedded components that must stay quiet.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
