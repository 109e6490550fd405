// Command demo-receiver is a tiny webhook endpoint for demos and the docker-compose stack: it logs every delivery it
// receives, keeps the last ones in memory for GET /deliveries, and, given the endpoint's signing secret, checks the
// Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature headers).
//
// Routes:
//
//	POST /hooks/{name...}   accept a delivery (204)
//	POST /fail/{name...}    refuse a delivery (503), to watch retries and dead letters
//	GET  /deliveries        the last deliveries received, oldest first, as JSON
//	GET  /healthz           200 while running
//
// Configuration (environment): DEMO_RECEIVER_ADDR (127.0.0.1:8099), DEMO_RECEIVER_SECRET (optional signing secret,
// "whsec_<base64>" or raw), DEMO_RECEIVER_KEEP (100 deliveries kept).
//
// `demo-receiver -healthcheck` probes /healthz of a running receiver and exits 0 or 1: the image has no shell or
// curl, so this is what a container health check runs.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const maxBody = 1 << 20 // 1 MiB: larger deliveries are refused with 413

func main() {
	healthcheck := flag.Bool("healthcheck", false, "probe /healthz of the receiver at DEMO_RECEIVER_ADDR and exit")
	flag.Parse()

	addr := envOr("DEMO_RECEIVER_ADDR", "127.0.0.1:8099")
	if *healthcheck {
		if err := probe(addr, 2*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "unhealthy:", err)
			os.Exit(1)
		}
		return
	}

	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	keep, err := strconv.Atoi(envOr("DEMO_RECEIVER_KEEP", "100"))
	if err != nil || keep < 1 {
		log.Error("DEMO_RECEIVER_KEEP must be a positive integer", "value", os.Getenv("DEMO_RECEIVER_KEEP"))
		os.Exit(2)
	}
	rcv := newReceiver(os.Getenv("DEMO_RECEIVER_SECRET"), keep, log)

	srv := &http.Server{Addr: addr, Handler: rcv.routes(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Info("demo-receiver listening", "addr", addr, "signature_check", rcv.key != nil)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// probe asks the receiver listening on addr for /healthz. A wildcard listen address is probed on loopback.
func probe(addr string, timeout time.Duration) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("DEMO_RECEIVER_ADDR %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// Delivery is what the receiver remembers of one request.
type Delivery struct {
	ReceivedAt time.Time         `json:"received_at"`
	Path       string            `json:"path"`
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	// Body is the payload as JSON when it is JSON, else as a string.
	Body json.RawMessage `json:"body"`
	// Signature is "valid", "invalid", "missing" or "unchecked" (no secret configured).
	Signature string `json:"signature"`
}

type receiver struct {
	key  []byte // nil: signatures are not checked
	keep int
	log  *slog.Logger

	mu   sync.Mutex
	seen []Delivery
}

func newReceiver(secret string, keep int, log *slog.Logger) *receiver {
	return &receiver{key: signingKey(secret), keep: keep, log: log}
}

// signingKey follows Standard Webhooks: a "whsec_" secret carries the key base64-encoded; any other value is used as
// the key bytes as it is.
func signingKey(secret string) []byte {
	if secret == "" {
		return nil
	}
	if b64, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if key, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return key
		}
	}
	return []byte(secret)
}

func (r *receiver) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/{name...}", func(w http.ResponseWriter, req *http.Request) {
		r.receive(w, req, http.StatusNoContent)
	})
	mux.HandleFunc("POST /fail/{name...}", func(w http.ResponseWriter, req *http.Request) {
		r.receive(w, req, http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /deliveries", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		out := append([]Delivery(nil), r.seen...)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

func (r *receiver) receive(w http.ResponseWriter, req *http.Request, status int) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	d := Delivery{
		ReceivedAt: time.Now().UTC(),
		Path:       req.URL.Path,
		Status:     status,
		Headers:    interestingHeaders(req.Header),
		Body:       asJSON(body),
		Signature:  r.verify(req.Header, body),
	}
	r.mu.Lock()
	r.seen = append(r.seen, d)
	if len(r.seen) > r.keep {
		r.seen = r.seen[len(r.seen)-r.keep:]
	}
	r.mu.Unlock()
	r.log.Info("delivery", "path", d.Path, "status", d.Status, "webhook_id", req.Header.Get("webhook-id"),
		"signature", d.Signature, "headers", d.Headers, "body", d.Body)
	w.WriteHeader(status)
}

// interestingHeaders keeps the webhook-* and content headers plus any X-* header, one value each.
func interestingHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for name, values := range h {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "webhook-") || strings.HasPrefix(lower, "x-") || strings.HasPrefix(lower, "content-") ||
			lower == "user-agent" {
			out[lower] = strings.Join(values, ", ")
		}
	}
	return out
}

func asJSON(body []byte) json.RawMessage {
	if json.Valid(body) && len(body) > 0 {
		return json.RawMessage(body)
	}
	s, _ := json.Marshal(string(body))
	return s
}

// verify checks a Standard Webhooks signature: base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)), sent as
// one or more space-separated "v1,<signature>" entries (several while a rotated secret overlaps the previous one).
func (r *receiver) verify(h http.Header, body []byte) string {
	if r.key == nil {
		return "unchecked"
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return "missing"
	}
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, entry := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return "valid"
		}
	}
	return "invalid"
}
