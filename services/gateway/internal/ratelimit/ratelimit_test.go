package ratelimit

import "testing"

func TestBucketsArePerClient(t *testing.T) {
	l := New(1, 3)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, d := l.Allow("a")
	if ok || d <= 0 {
		t.Fatalf("4th request: ok=%v retry=%v", ok, d)
	}
	if RetryAfterSeconds(d) != "1" {
		t.Fatalf("Retry-After = %s", RetryAfterSeconds(d))
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another client was slowed down")
	}
	if ok, _ := New(0, 0).Allow("a"); !ok {
		t.Fatal("disabled limiter refused")
	}
}
