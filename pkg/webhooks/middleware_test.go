package webhooks_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/webhooks"
)

// Bodies as the webhook service writes them (services/webhook/internal/payload): int64 as strings, enums by name.
const (
	fullBody = `{"type":"case.status_changed","timestamp":"2027-01-15T08:00:00.123456Z","data":{"id":"cas_1",` +
		`"tenant":"acme","external_ref":"cust-42","status":"CASE_STATUS_SUBMITTED","version":"4",` +
		`"created_at":"2027-01-15T07:59:00Z","updated_at":"2027-01-15T08:00:00.123456Z","future_field":1}}`
	thinBody = `{"type":"case.risk_set","timestamp":"2027-01-15T08:00:00Z","data":{"event_id":"evt_1",` +
		`"type":"case.risk_set","case_id":"cas_1","case_version":5,"url":"https://api.example/v1/cases/cas_1"}}`
)

func TestDecode(t *testing.T) {
	e, err := webhooks.Decode(webhooks.FormatFull, []byte(fullBody))
	if err != nil {
		t.Fatal(err)
	}
	var data struct{ Status string }
	if err := json.Unmarshal(e.Data, &data); err != nil || e.Type != webhooks.TypeStatusChanged ||
		data.Status != "CASE_STATUS_SUBMITTED" || e.OccurredAt.Nanosecond() != 123456000 || e.Thin != nil {
		t.Fatalf("full: %+v %s", e, e.Data)
	}
	if id, v, ok := e.CaseVersion(); id != "cas_1" || v != 4 || !ok {
		t.Fatalf("CaseVersion = %s %d %v", id, v, ok)
	}
	// protobuf's JSON mapping writes an int64 as a string, reads it as a number too, and leaves out a zero.
	for data, want := range map[string]int64{`{"id":"c","version":7}`: 7, `{"id":"c","version":"7"}`: 7, `{"id":"c"}`: 0} {
		e, err := webhooks.Decode(webhooks.FormatFull, []byte(`{"type":"x","timestamp":"2027-01-15T08:00:00Z","data":`+data+`}`))
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if _, v, ok := e.CaseVersion(); v != want || !ok {
			t.Errorf("%s: version %d %v, want %d", data, v, ok, want)
		}
	}
	e, err = webhooks.Decode(webhooks.FormatThin, []byte(thinBody))
	if err != nil {
		t.Fatal(err)
	}
	if e.Thin.CaseVersion != 5 || e.Thin.URL != "https://api.example/v1/cases/cas_1" || !bytes.HasPrefix(e.Data, []byte(`{"event_id"`)) {
		t.Fatalf("thin: %+v", e.Thin)
	}
	// A full endpoint gets the thin form of an event that is no longer stored (a retry after a redaction).
	e, err = webhooks.Decode(webhooks.FormatFull, []byte(thinBody))
	if err != nil || e.Thin == nil || e.Thin.CaseID != "cas_1" {
		t.Fatalf("the thin form on a full endpoint: %+v %v", e, err)
	}
	if id, v, ok := e.CaseVersion(); id != "cas_1" || v != 5 || !ok {
		t.Fatalf("CaseVersion of the thin form on a full endpoint = %s %d %v", id, v, ok)
	}
	// A mismatch between the endpoint's format and the receiver's is reported, not decoded into zero values.
	for _, c := range []struct {
		f    webhooks.Format
		body string
	}{
		{webhooks.FormatThin, fullBody}, {webhooks.FormatFull, `{}`},
		{webhooks.FormatFull, `[1]`}, {webhooks.FormatThin, `{"type":"x","timestamp":"nope","data":{}}`},
		{webhooks.FormatFull, `{"type":"x","timestamp":"2027-01-15T08:00:00Z","data":null}`},
		{webhooks.FormatFull, `{"type":"x","timestamp":"2027-01-15T08:00:00Z","data":{"id":"c","version":true}}`},
		{webhooks.FormatFull, `{"type":"x","timestamp":"2027-01-15T08:00:00Z","data":{"id":"c","version":"4x"}}`},
		{webhooks.FormatFull, `{"type":"x","timestamp":"2027-01-15T08:00:00Z","data":{"id":"c","version":1.5}}`},
		{webhooks.FormatFull, `{"type":"x","timestamp":"2027-01-15T08:00:00Z","data":{"id":7,"version":"1"}}`},
		{webhooks.FormatRaw, `{`},
	} {
		if _, err := webhooks.Decode(c.f, []byte(c.body)); !errors.Is(err, webhooks.ErrBadPayload) {
			t.Errorf("Decode(%s, %s) = %v, want ErrBadPayload", c.f, c.body, err)
		}
	}
	if e, err := webhooks.Decode(webhooks.FormatRaw, []byte(`{"anything":1}`)); err != nil || e.Data != nil || e.Thin != nil {
		t.Fatalf("raw: %v %v", e, err)
	}
}

func TestMiddleware(t *testing.T) {
	v, err := webhooks.NewVerifier([]string{secretA})
	if err != nil {
		t.Fatal(err)
	}
	var got *webhooks.Event
	var rejected []int
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = webhooks.FromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})
	h := webhooks.Middleware(v, webhooks.FormatFull, next, webhooks.WithMaxBodyBytes(4096),
		webhooks.WithRejectHook(func(_ *http.Request, status int, _ error) { rejected = append(rejected, status) }))

	send := func(method string, hdr http.Header, body string) *httptest.ResponseRecorder {
		got = nil
		r := httptest.NewRequest(method, "/webhooks", strings.NewReader(body))
		for k, vs := range hdr {
			r.Header[k] = vs
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	signed := func(id string, at time.Time, body string, secrets ...string) http.Header {
		hdr, err := webhooks.SignedHeaders(id, at, []byte(body), secrets...)
		if err != nil {
			t.Fatal(err)
		}
		return hdr
	}
	now := time.Now()

	w := send(http.MethodPost, signed("msg_1", now, fullBody, secretA), fullBody)
	if w.Code != http.StatusNoContent || got == nil || got.ID != "msg_1" || !bytes.Contains(got.Data, []byte(`"id":"cas_1"`)) ||
		got.SignedAt.Unix() != now.Unix() || !bytes.Equal(got.Body, []byte(fullBody)) {
		t.Fatalf("valid request: %d %+v", w.Code, got)
	}
	for _, c := range []struct {
		name   string
		method string
		hdr    http.Header
		body   string
		want   int
	}{
		{"GET", http.MethodGet, signed("msg_1", now, fullBody, secretA), fullBody, http.StatusMethodNotAllowed},
		{"tampered body", http.MethodPost, signed("msg_1", now, fullBody, secretA), strings.Replace(fullBody, "SUBMITTED", "APPROVED", 1), http.StatusUnauthorized},
		{"other secret", http.MethodPost, signed("msg_1", now, fullBody, secretB), fullBody, http.StatusUnauthorized},
		{"replay after ten minutes", http.MethodPost, signed("msg_1", now.Add(-10*time.Minute), fullBody, secretA), fullBody, http.StatusUnauthorized},
		{"unsigned", http.MethodPost, http.Header{}, fullBody, http.StatusBadRequest},
		{"a body that is neither form", http.MethodPost, signed("msg_2", now, `{"type":"x","timestamp":"2027-01-15T08:00:00Z","data":{}}`, secretA), `{"type":"x","timestamp":"2027-01-15T08:00:00Z","data":{}}`, http.StatusBadRequest},
		{"too large", http.MethodPost, signed("msg_3", now, strings.Repeat(" ", 5000), secretA), strings.Repeat(" ", 5000), http.StatusRequestEntityTooLarge},
	} {
		w := send(c.method, c.hdr, c.body)
		if w.Code != c.want || got != nil {
			t.Errorf("%s: status %d (next called: %v), want %d; body %q", c.name, w.Code, got != nil, c.want, w.Body.String())
		}
	}
	if len(rejected) != 7 {
		t.Errorf("reject hook saw %v", rejected)
	}

	thin := webhooks.Middleware(v, webhooks.FormatThin, next)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(thinBody))
	for k, vs := range signed("msg_4", now, thinBody, secretB, secretA) {
		r.Header[k] = vs
	}
	w = httptest.NewRecorder()
	thin.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent || got == nil || got.Thin.CaseID != "cas_1" {
		t.Fatalf("thin during rotation: %d %+v", w.Code, got)
	}
}
