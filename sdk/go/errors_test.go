package casekeeper

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestExpiredCursorIsResyncRequired(t *testing.T) {
	body := `{"code":9,"message":"cursor expired","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",` +
		`"reason":"CURSOR_EXPIRED","domain":"casekeeper.dev","metadata":{}}]}`
	err := error(httpError(&http.Response{StatusCode: http.StatusGone, Header: http.Header{}}, []byte(body)))
	if !errors.Is(err, ErrResyncRequired) {
		t.Fatalf("%v is not ErrResyncRequired", err)
	}
	if _, retry := (&Client{}).retryAfter(t.Context(), err, 0, nil); retry {
		t.Fatal("an expired cursor is retried")
	}
	other := httpError(&http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{}},
		[]byte(`{"code":3,"message":"bad","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","field_violations":[{"field":"after","description":"is not a cursor"}]}]}`))
	if errors.Is(other, ErrResyncRequired) || !errors.Is(other, ErrInvalidArgument) || other.Fields["after"] == "" {
		t.Fatalf("bad request read as %+v", other)
	}
}

func TestRetryAfterHeaderIsHonoured(t *testing.T) {
	h := http.Header{}
	h.Set("Retry-After", "3")
	err := httpError(&http.Response{StatusCode: http.StatusTooManyRequests, Header: h}, []byte(`{"code":8,"message":"slow down"}`))
	d, retry := (&Client{backoff: backoff{min: time.Millisecond, max: time.Millisecond}}).retryAfter(t.Context(), err, 0, nil)
	if !retry || d != 3*time.Second {
		t.Fatalf("429 with Retry-After 3: retry %v after %s", retry, d)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	seen := map[time.Duration]bool{}
	for n := range 40 {
		d := b.delay(n)
		if d > time.Second || d < 50*time.Millisecond {
			t.Fatalf("delay(%d) = %s", n, d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("delays barely vary: %v", seen)
	}
}
