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

func TestRefundGivesBackOneTokenUpToTheBurst(t *testing.T) {
	l := New(0.001, 2) // no refill to speak of during the test
	l.Allow("a")
	l.Allow("a")
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("burst of 2 allowed a third request")
	}
	l.Refund("a")
	if blocked, _ := l.Exhausted("a"); blocked {
		t.Fatal("a refunded token does not count")
	}
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("the refunded token was not there")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("one refund gave more than one request")
	}
	// Refunds never fill a bucket past its burst.
	l.Refund("fresh") // unknown key: nothing to refund
	l.Allow("b")
	for range 5 {
		l.Refund("b")
	}
	for i := range 2 {
		if ok, _ := l.Allow("b"); !ok {
			t.Fatalf("request %d after refunds refused", i)
		}
	}
	if ok, _ := l.Allow("b"); ok {
		t.Fatal("refunds raised the bucket past its burst")
	}
}
