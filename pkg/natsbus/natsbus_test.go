package natsbus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/natsbus"
)

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{jetstream.ErrJetStreamNotEnabled, true},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), true},
		{nats.ErrTimeout, true},
		{nats.ErrNoResponders, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10065, Description: "subjects overlap with an existing stream"}, false},
		{&jetstream.APIError{Code: 500, ErrorCode: 10052, Description: "invalid stream config"}, false},
		{nats.ErrConnectionClosed, false},
	} {
		if got := natsbus.Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A declaration against a NATS that is not there waits within its bound, says so in the log, and then fails with
// an error that names the stream and the variable to check.
func TestEnsureStreamWaitsBoundedForAnUnreachableNATS(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // nobody listens there now
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	nc, js, err := natsbus.Connect("nats://"+addr, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	started := time.Now()
	_, err = natsbus.EnsureStream(ctx, js, jetstream.StreamConfig{Name: "WAITS", Subjects: []string{"waits.>"}}, natsbus.LogWaits(log))
	if err == nil {
		t.Fatal("a stream was declared on no server")
	}
	if d := time.Since(started); d > 5*time.Second {
		t.Errorf("waited %v past a 2s bound", d)
	}
	if !strings.Contains(err.Error(), "stream WAITS") || !strings.Contains(err.Error(), "NATS_URL") {
		t.Errorf("error %q does not name the stream and NATS_URL", err)
	}
	if !strings.Contains(logs.String(), "waiting for JetStream") {
		t.Errorf("no log line about the wait:\n%s", logs.String())
	}
	if errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("unexpected: %v", err)
	}
}
