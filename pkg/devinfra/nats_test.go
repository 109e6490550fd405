package devinfra

import (
	"bytes"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func startTestNATS(t *testing.T, opts NATSOptions) *NATSServer {
	t.Helper()
	srv, err := StartNATS(opts)
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func connectJetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

func TestStartNATS_StreamSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()

	first, err := StartNATS(NATSOptions{StoreDir: dir})
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	t.Cleanup(first.Shutdown) // no-op when the test already shut it down
	if !strings.HasPrefix(first.URL(), "nats://127.0.0.1:") || strings.HasSuffix(first.URL(), ":-1") {
		t.Fatalf("URL() = %q, want nats://127.0.0.1:<actual port>", first.URL())
	}

	js := connectJetStream(t, first.URL())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"events.>"},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "events.case", []byte("msg-"+strconv.Itoa(i))); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	first.Shutdown()

	second := startTestNATS(t, NATSOptions{StoreDir: dir})
	js = connectJetStream(t, second.URL())
	stream, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	if got := stream.CachedInfo().State.Msgs; got != 3 {
		t.Fatalf("messages after restart = %d, want 3", got)
	}
	msg, err := stream.GetMsg(ctx, 3)
	if err != nil {
		t.Fatalf("get msg: %v", err)
	}
	if string(msg.Data) != "msg-2" {
		t.Fatalf("last message = %q, want msg-2", msg.Data)
	}
}

func TestStartNATS_PortInUseNamesAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	start := time.Now()
	srv, err := StartNATS(NATSOptions{StoreDir: t.TempDir(), Port: port})
	if err == nil {
		srv.Shutdown()
		t.Fatal("StartNATS on a taken port succeeded")
	}
	if want := "127.0.0.1:" + strconv.Itoa(port); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("failing took %s; a taken port should fail fast", elapsed)
	}
}

func TestStartNATS_FatalStartupErrorFailsFast(t *testing.T) {
	// A store "directory" that is a file makes JetStream refuse to start,
	// which nats-server reports only through its fatal log.
	file := t.TempDir() + "/not-a-dir"
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv, err := StartNATS(NATSOptions{StoreDir: file, ReadyTimeout: 30 * time.Second})
	if err == nil {
		srv.Shutdown()
		t.Fatal("StartNATS with a file as StoreDir succeeded")
	}
	if !strings.Contains(err.Error(), "JetStream") {
		t.Fatalf("error %q does not mention JetStream", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("failing took %s, want well under the ready timeout", elapsed)
	}
}

func TestStartNATS_InvalidOptions(t *testing.T) {
	tests := map[string]struct {
		opts NATSOptions
		want string
	}{
		"missing store dir": {NATSOptions{}, "missing StoreDir"},
		"port too large":    {NATSOptions{StoreDir: "x", Port: 70000}, "invalid Port 70000"},
		"port too small":    {NATSOptions{StoreDir: "x", Port: -2}, "invalid Port -2"},
		"negative timeout":  {NATSOptions{StoreDir: "x", ReadyTimeout: -time.Second}, "ReadyTimeout"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := StartNATS(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("StartNATS(%+v) error = %v, want it to mention %q", tc.opts, err, tc.want)
			}
		})
	}
}

func TestNATSServer_ShutdownTwice(t *testing.T) {
	srv := startTestNATS(t, NATSOptions{StoreDir: t.TempDir()})
	srv.Shutdown()
	srv.Shutdown()
	if _, err := nats.Connect(srv.URL(), nats.Timeout(time.Second)); err == nil {
		t.Fatal("connected after Shutdown")
	}
}

// storeHolds reports whether any file under dir contains needle, as read from the disk.
func storeHolds(t *testing.T, dir, needle string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = found || bytes.Contains(b, []byte(needle))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func publishSecret(t *testing.T, srv *NATSServer, body string) {
	t.Helper()
	js := connectJetStream(t, srv.URL())
	if _, err := js.CreateOrUpdateStream(t.Context(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "events.case", []byte(body)); err != nil {
		t.Fatal(err)
	}
}

func lastBody(t *testing.T, srv *NATSServer) string {
	t.Helper()
	s, err := connectJetStream(t, srv.URL()).Stream(t.Context(), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(t.Context(), "events.case")
	if err != nil {
		t.Fatal(err)
	}
	return string(m.Data)
}

// With a key, nothing of a message is on the disk in clear; a store written without one is encrypted when the
// server starts with one; a rotation reads with the previous key and seals with the new one.
func TestStartNATS_EncryptsTheStoreAtRest(t *testing.T) {
	const applicant = "Wilhelmina Testperson-Encrypted 1987-03-14 P-X9Q47Z"
	plain := t.TempDir()
	srv := startTestNATS(t, NATSOptions{StoreDir: plain})
	publishSecret(t, srv, applicant)
	srv.Shutdown()
	if !storeHolds(t, plain, applicant) {
		t.Fatal("the plaintext store does not hold the message: the scan cannot see what it looks for")
	}

	// The same store, now with a key: converted, readable, and no longer in clear.
	srv = startTestNATS(t, NATSOptions{StoreDir: plain, EncryptionKey: "first-key-of-the-store"})
	if got := lastBody(t, srv); got != applicant {
		t.Fatalf("after encrypting an existing store: %q", got)
	}
	publishSecret(t, srv, applicant+" again")
	srv.Shutdown()
	if storeHolds(t, plain, "Wilhelmina") {
		t.Fatal("the encrypted store holds the applicant in clear")
	}

	// Rotation: the previous key reads, the new one seals; afterwards the new key alone reads it.
	srv = startTestNATS(t, NATSOptions{StoreDir: plain, EncryptionKey: "second-key", PreviousEncryptionKey: "first-key-of-the-store"})
	if got := lastBody(t, srv); got != applicant+" again" {
		t.Fatalf("during the rotation: %q", got)
	}
	srv.Shutdown()
	srv = startTestNATS(t, NATSOptions{StoreDir: plain, EncryptionKey: "second-key"})
	if got := lastBody(t, srv); got != applicant+" again" {
		t.Fatalf("after the rotation: %q", got)
	}
	srv.Shutdown()
	if storeHolds(t, plain, "Wilhelmina") {
		t.Fatal("the rotated store holds the applicant in clear")
	}
}
