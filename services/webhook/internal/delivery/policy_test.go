package delivery

import (
	"errors"
	"testing"
	"time"
)

func policy() Policy {
	return Policy{Schedule: DefaultSchedule, Jitter: 0.2, DisableAfter: 120 * time.Hour, Rand: func() float64 { return 1 }}
}

func TestJudge(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := policy()
	if v := p.Judge(Result{StatusCode: 204}, 1, time.Time{}, now); v.Status != StatusSucceeded {
		t.Errorf("204: %+v", v)
	}
	// The second attempt comes 5 s after the first failure, +20 % with Rand at its maximum (1 → +Jitter).
	if v := p.Judge(Result{StatusCode: 500}, 1, time.Time{}, now); v.Status != StatusRetrying || v.NextAttemptAt.Sub(now) > 6*time.Second || v.NextAttemptAt.Sub(now) < 5*time.Second {
		t.Errorf("500: %+v", v)
	}
	if v := p.Judge(Result{Err: errors.New("refused")}, 9, time.Time{}, now); v.Status != StatusRetrying || v.NextAttemptAt.Sub(now) < 24*time.Hour {
		t.Errorf("attempt 9: %+v", v)
	}
	if v := p.Judge(Result{StatusCode: 500}, len(DefaultSchedule), time.Time{}, now); v.Status != StatusDead {
		t.Errorf("last attempt: %+v", v)
	}
	if v := p.Judge(Result{StatusCode: 410}, 1, time.Time{}, now); v.Status != StatusDead || v.DisableReason == "" {
		t.Errorf("410: %+v", v)
	}
	if v := p.Judge(Result{StatusCode: 429, RetryAfter: 90 * time.Second}, 1, time.Time{}, now); v.NextAttemptAt.Sub(now) != 90*time.Second {
		t.Errorf("429 Retry-After: %+v", v)
	}
	if v := p.Judge(Result{StatusCode: 503, RetryAfter: 400 * 24 * time.Hour}, 1, time.Time{}, now); v.NextAttemptAt.Sub(now) != MaxRetryAfter {
		t.Errorf("503 with a huge Retry-After: %+v", v)
	}
	// Never sooner than the schedule: attempt 3 waits 5 min (+20 %), whatever shorter time the receiver asked for.
	for _, code := range []int{429, 503} {
		if v := p.Judge(Result{StatusCode: code, RetryAfter: time.Second}, 2, time.Time{}, now); v.NextAttemptAt.Sub(now) != 6*time.Minute {
			t.Errorf("%d with Retry-After 1s before attempt 3: waits %s, want the schedule's 6m", code, v.NextAttemptAt.Sub(now))
		}
	}
	// A budget of 10 attempts answered 429 "Retry-After: 1" every time lasts as long as the schedule.
	at, spent := now, 0
	for n := 1; ; n++ {
		v := p.Judge(Result{StatusCode: 429, RetryAfter: time.Second}, n, time.Time{}, at)
		spent = n
		if v.Status == StatusDead {
			break
		}
		at = v.NextAttemptAt
	}
	var schedule time.Duration
	for _, d := range DefaultSchedule {
		schedule += p.jittered(d)
	}
	if spent != len(DefaultSchedule) || at.Sub(now) != schedule {
		t.Errorf("429 with Retry-After 1s: %d attempts over %s, want %d over %s", spent, at.Sub(now), len(DefaultSchedule), schedule)
	}
	if v := p.Judge(Result{StatusCode: 500, RetryAfter: time.Hour}, 1, time.Time{}, now); v.NextAttemptAt.Sub(now) > time.Minute {
		t.Errorf("Retry-After on a 500 is not for us: %+v", v)
	}
	if v := p.Judge(Result{StatusCode: 500}, 3, now.Add(-121*time.Hour), now); v.DisableReason == "" {
		t.Errorf("failing for 121h: %+v", v)
	}
	if v := p.Judge(Result{StatusCode: 500}, 3, now.Add(-time.Hour), now); v.DisableReason != "" {
		t.Errorf("failing for 1h: %+v", v)
	}
}

func TestJitterStaysWithinBounds(t *testing.T) {
	p := Policy{Schedule: DefaultSchedule, Jitter: 0.2, DisableAfter: time.Hour}
	for range 1000 {
		d := p.jittered(time.Hour)
		if d < 48*time.Minute || d > 72*time.Minute {
			t.Fatalf("jittered hour %s", d)
		}
	}
}

func TestRotationKeepsPreviousFor24Hours(t *testing.T) {
	now := time.Now()
	e := Endpoint{Secrets: []Secret{{Value: "a", CreatedAt: now.Add(-time.Hour)}}}
	e.Rotate("b", now)
	if got := e.SigningSecrets(now); len(got) != 2 || got[0] != "b" || got[1] != "a" {
		t.Fatalf("after rotation %v", got)
	}
	if got := e.SigningSecrets(now.Add(SecretOverlap + time.Second)); len(got) != 1 || got[0] != "b" {
		t.Fatalf("a day later %v", got)
	}
	e.Rotate("c", now.Add(SecretOverlap+time.Second))
	if len(e.Secrets) != 2 {
		t.Fatalf("expired secrets kept: %v", e.Secrets)
	}
}

func TestDeliveryIDIsDeterministic(t *testing.T) {
	a, b := DeliveryID("evt_1", "ep_1"), DeliveryID("evt_1", "ep_1")
	if a != b || a == DeliveryID("evt_1", "ep_2") || len(a) != 30 {
		t.Fatalf("%s %s", a, b)
	}
}
