// Command receiver is an example Case-keeper webhook receiver in Go, built on github.com/casekeeper/core/pkg/webhooks:
// it verifies each request, drops what it has seen already (by webhook-id) and events older than the version of
// the case it holds, and writes one JSON line per verified event.
//
// Environment:
//
//	PORT             port to listen on, on 127.0.0.1 (required)
//	WEBHOOK_SECRET   the endpoint's signing secret, whsec_…; several, space-separated, while you roll out a rotation
//	PAYLOAD_FORMAT   full (default) or thin: the endpoint's payload format
//	EVENTS_FILE      where to append the JSON lines (default: standard output)
//
// A real receiver stores the webhook-id and the case version in its database, in the same transaction as the
// change the event causes; the maps below stand in for that.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/casekeeper/core/pkg/webhooks"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run() error {
	port := os.Getenv("PORT")
	if port == "" {
		return errors.New("PORT is not set")
	}
	v, err := webhooks.NewVerifier(strings.Fields(os.Getenv("WEBHOOK_SECRET")))
	if err != nil {
		return fmt.Errorf("WEBHOOK_SECRET: %w", err)
	}
	format := webhooks.FormatFull
	switch f := os.Getenv("PAYLOAD_FORMAT"); f {
	case "", "full":
	case "thin":
		format = webhooks.FormatThin
	default:
		return fmt.Errorf("PAYLOAD_FORMAT %q: want full or thin", f)
	}
	out := io.Writer(os.Stdout)
	if path := os.Getenv("EVENTS_FILE"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("EVENTS_FILE: %w", err)
		}
		defer f.Close()
		out = f
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rcv := &receiver{out: out, seen: map[string]bool{}, versions: map[string]int64{}}

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks", webhooks.Middleware(v, format, http.HandlerFunc(rcv.handle),
		webhooks.WithRejectHook(func(r *http.Request, status int, err error) {
			log.Warn("webhook refused", "status", status, "webhook_id", r.Header.Get(webhooks.HeaderID), "error", err)
		})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })

	lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return err
	}
	log.Info("receiver listening", "addr", lis.Addr().String(), "format", format.String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return srv.Serve(lis)
}

type receiver struct {
	mu       sync.Mutex
	out      io.Writer
	seen     map[string]bool  // webhook-ids already handled
	versions map[string]int64 // case id → newest version applied
}

// line is what the receiver records per verified event.
type line struct {
	WebhookID   string `json:"webhook_id"`
	Type        string `json:"type"`
	CaseID      string `json:"case_id"`
	CaseVersion int64  `json:"case_version"`
	// Applied is false for an event older than the version already held (it arrived late: drop it).
	Applied bool `json:"applied"`
}

func (rc *receiver) handle(w http.ResponseWriter, r *http.Request) {
	e := webhooks.FromContext(r.Context())
	rc.mu.Lock()
	defer rc.mu.Unlock()
	// A retry of something already handled: answer 2xx, or it will be sent again.
	if rc.seen[e.ID] {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	caseID, version, _ := e.CaseVersion()
	applied := version > rc.versions[caseID]
	if applied {
		rc.versions[caseID] = version
		// Here a thin receiver fetches the case: GET e.Thin.URL with a token of its tenant (docs/webhooks.md).
	}
	b, _ := json.Marshal(line{WebhookID: e.ID, Type: e.Type, CaseID: caseID, CaseVersion: version, Applied: applied})
	if _, err := rc.out.Write(append(b, '\n')); err != nil {
		// Not stored: answer 5xx so that it comes again.
		http.Error(w, "could not store the event", http.StatusServiceUnavailable)
		return
	}
	rc.seen[e.ID] = true
	w.WriteHeader(http.StatusNoContent)
}
