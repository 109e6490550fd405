package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestReceiver(t *testing.T, secret string, keep int) (*receiver, *httptest.Server) {
	t.Helper()
	r := newReceiver(secret, keep, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(r.routes())
	t.Cleanup(srv.Close)
	return r, srv
}

func post(t *testing.T, url, body string, headers map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func deliveries(t *testing.T, base string) []Delivery {
	t.Helper()
	resp, err := http.Get(base + "/deliveries")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []Delivery
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sign(key []byte, id, ts, body string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestReceiveAndList(t *testing.T) {
	_, srv := newTestReceiver(t, "", 10)
	if got := post(t, srv.URL+"/hooks/acme", `{"type":"case.created"}`, map[string]string{"webhook-id": "msg_1"}); got != http.StatusNoContent {
		t.Fatalf("POST /hooks: status %d, want 204", got)
	}
	if got := post(t, srv.URL+"/fail/acme", "not json", nil); got != http.StatusServiceUnavailable {
		t.Fatalf("POST /fail: status %d, want 503", got)
	}
	ds := deliveries(t, srv.URL)
	if len(ds) != 2 {
		t.Fatalf("got %d deliveries, want 2", len(ds))
	}
	if ds[0].Path != "/hooks/acme" || ds[0].Headers["webhook-id"] != "msg_1" || string(ds[0].Body) != `{"type":"case.created"}` {
		t.Errorf("first delivery = %+v", ds[0])
	}
	if ds[0].Signature != "unchecked" {
		t.Errorf("signature = %q without a secret, want unchecked", ds[0].Signature)
	}
	if ds[1].Status != http.StatusServiceUnavailable || string(ds[1].Body) != `"not json"` {
		t.Errorf("second delivery = %+v", ds[1])
	}
}

func TestKeepsOnlyTheLastDeliveries(t *testing.T) {
	_, srv := newTestReceiver(t, "", 3)
	for i := range 5 {
		post(t, srv.URL+"/hooks/n", `{"n":`+string(rune('0'+i))+`}`, nil)
	}
	ds := deliveries(t, srv.URL)
	if len(ds) != 3 || string(ds[0].Body) != `{"n":2}` || string(ds[2].Body) != `{"n":4}` {
		t.Fatalf("deliveries = %+v, want n=2..4", ds)
	}
}

func TestStandardWebhooksSignature(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	_, srv := newTestReceiver(t, secret, 10)
	body, id, ts := `{"type":"case.updated"}`, "msg_2", "1700000000"

	post(t, srv.URL+"/hooks/a", body, map[string]string{
		"webhook-id": id, "webhook-timestamp": ts,
		// A rotated secret: an old signature first, the current one second.
		"webhook-signature": "v1,b2xk " + sign(key, id, ts, body),
	})
	post(t, srv.URL+"/hooks/a", body, map[string]string{
		"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sign([]byte("wrong"), id, ts, body),
	})
	post(t, srv.URL+"/hooks/a", body, nil)

	ds := deliveries(t, srv.URL)
	want := []string{"valid", "invalid", "missing"}
	for i, d := range ds {
		if d.Signature != want[i] {
			t.Errorf("delivery %d: signature %q, want %q", i, d.Signature, want[i])
		}
	}
}

func TestRawSecret(t *testing.T) {
	if got := string(signingKey("plain-secret")); got != "plain-secret" {
		t.Errorf("signingKey(raw) = %q", got)
	}
	if signingKey("") != nil {
		t.Error("signingKey(\"\") should be nil")
	}
}

func TestRejectsOversizedBody(t *testing.T) {
	_, srv := newTestReceiver(t, "", 10)
	if got := post(t, srv.URL+"/hooks/big", strings.Repeat("x", maxBody+1), nil); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", got)
	}
	if n := len(deliveries(t, srv.URL)); n != 0 {
		t.Fatalf("oversized delivery was recorded (%d)", n)
	}
}

func TestProbe(t *testing.T) {
	_, srv := newTestReceiver(t, "", 10)
	addr := strings.TrimPrefix(srv.URL, "http://")
	if err := probe(addr, time.Second); err != nil {
		t.Fatalf("probe(%s): %v", addr, err)
	}
	_, port, _ := net.SplitHostPort(addr)
	if err := probe("0.0.0.0:"+port, time.Second); err != nil {
		t.Fatalf("probe of a wildcard address should use loopback: %v", err)
	}
	srv.Close()
	if err := probe(addr, time.Second); err == nil {
		t.Fatal("probe of a stopped receiver succeeded")
	}
	if err := probe("no-port", time.Second); err == nil {
		t.Fatal("probe accepted an address without a port")
	}
}
