package casekeeper

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The re-exported receiver side: a body signed with SignWebhook passes WebhookMiddleware, and its case decodes into
// the typed proto; a changed body is refused.
func TestWebhookReexports(t *testing.T) {
	secret, err := NewWebhookSecret()
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewWebhookVerifier([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	var got *WebhookEvent
	h := WebhookMiddleware(v, WebhookFormatFull, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = WebhookFromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	body := `{"type":"case.created","timestamp":"2026-11-26T12:10:21.788Z","data":{"id":"c1","tenant":"acme","version":"1","future":true}}`
	send := func(b string) int {
		hdr, err := SignWebhook("msg_1", time.Now(), []byte(body), secret)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/webhooks", strings.NewReader(b))
		r.Header = hdr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := send(body); code != http.StatusNoContent || got == nil || got.Type != TypeCreated || got.ID != "msg_1" {
		t.Fatalf("signed request: %d, %+v", code, got)
	}
	c, err := WebhookCase(got)
	if err != nil || c.GetId() != "c1" || c.GetVersion() != 1 {
		t.Fatalf("case %v: %v", c, err)
	}
	if code := send(strings.Replace(body, "c1", "c2", 1)); code != http.StatusUnauthorized {
		t.Fatalf("changed body: %d, want 401", code)
	}
	if err := v.Verify(http.Header{}, []byte(body)); !errors.Is(err, ErrWebhookMissingHeaders) {
		t.Fatalf("no headers: %v", err)
	}
}
