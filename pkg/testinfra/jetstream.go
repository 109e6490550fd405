package testinfra

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/devinfra"
)

// RestartableNATS is a NATS server with JetStream for t alone that can be stopped and started again on the same
// port and store, as a real server restarts: clients reconnect to the same URL and find their streams.
type RestartableNATS struct {
	t    testing.TB
	dir  string
	port int
	url  string
	srv  *devinfra.NATSServer
}

// StartRestartableNATS starts a RestartableNATS with its store in t.TempDir. It is shut down when t finishes.
func StartRestartableNATS(t testing.TB) *RestartableNATS {
	t.Helper()
	n := &RestartableNATS{t: t, dir: t.TempDir(), port: FreePort(t)}
	n.Start()
	n.url = n.srv.URL()
	return n
}

// URL is the server's client URL, the same across restarts.
func (n *RestartableNATS) URL() string { return n.url }

// Start starts the server again after Stop.
func (n *RestartableNATS) Start() {
	n.t.Helper()
	srv, err := devinfra.StartNATS(devinfra.NATSOptions{StoreDir: n.dir, Port: n.port, ServerName: "test", Logger: Logger(n.t)})
	if err != nil {
		n.t.Fatalf("testinfra: start NATS: %v", err)
	}
	n.srv = srv
	n.t.Cleanup(srv.Shutdown)
}

// Stop shuts the server down, keeping its store.
func (n *RestartableNATS) Stop() { n.srv.Shutdown() }

// Restart stops the server, leaves it down for the given time, and starts it again.
func (n *RestartableNATS) Restart(down time.Duration) {
	n.t.Helper()
	n.Stop()
	time.Sleep(down)
	n.Start()
}

// JetStream connects to the NATS server at url for the test's own publishing and reading. The connection retries
// without limit, so it outlives a restart of the server, and is closed when t finishes.
func JetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("testinfra: connect to NATS at %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("testinfra: JetStream: %v", err)
	}
	return js
}

// WaitStream waits until the stream exists, as declared by a service that is starting, and fails t if it does
// not within the given time.
func WaitStream(t testing.TB, js jetstream.JetStream, stream string, within time.Duration) {
	t.Helper()
	Eventually(t, within, "stream "+stream+" declared", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.Stream(ctx, stream)
		return err == nil
	})
}
