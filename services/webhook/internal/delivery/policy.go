package delivery

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// DefaultSchedule is the wait before each attempt: the first at once, the last about three days later.
var DefaultSchedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour}

// MaxRetryAfter caps a receiver's Retry-After so that a typo on its side cannot park a delivery for a year.
const MaxRetryAfter = 24 * time.Hour

// Policy decides what follows an attempt.
type Policy struct {
	// Schedule[i] is the wait before attempt i+1; after len(Schedule) failed attempts the delivery is dead.
	Schedule []time.Duration
	// Jitter spreads each wait by ±Jitter (0.2 = ±20 %) so that a recovering receiver is not hit by every retry at
	// the same second.
	Jitter float64
	// DisableAfter disables an endpoint whose attempts have failed without a success for this long.
	DisableAfter time.Duration
	// Rand returns a float in [0, 1); nil means math/rand/v2.
	Rand func() float64
}

// Validate checks the policy once at start-up.
func (p Policy) Validate() error {
	if len(p.Schedule) == 0 {
		return fmt.Errorf("the retry schedule is empty")
	}
	for i, d := range p.Schedule {
		if d < 0 {
			return fmt.Errorf("retry schedule entry %d is negative", i+1)
		}
	}
	if p.Jitter < 0 || p.Jitter >= 1 {
		return fmt.Errorf("jitter %v is outside [0, 1)", p.Jitter)
	}
	if p.DisableAfter <= 0 {
		return fmt.Errorf("disable-after must be positive")
	}
	return nil
}

// Result is what one attempt produced.
type Result struct {
	StatusCode int
	RetryAfter time.Duration // parsed Retry-After of a 429 or 503; 0 when absent
	Err        error         // transport failure, refused address, transform failure
}

// Verdict is the step after an attempt.
type Verdict struct {
	Status        Status
	NextAttemptAt time.Time // set when Status is StatusRetrying
	// DisableReason is set when the endpoint must be disabled (410 Gone, or failing for DisableAfter).
	DisableReason string
}

// Succeeded reports whether the result is a success: any 2xx.
func (r Result) Succeeded() bool { return r.Err == nil && r.StatusCode >= 200 && r.StatusCode < 300 }

// Judge decides the step after attempt number n (1-based). failingSince is when the endpoint's current run of
// failures began (zero when this is the first failure).
func (p Policy) Judge(r Result, n int, failingSince, now time.Time) Verdict {
	if r.Succeeded() {
		return Verdict{Status: StatusSucceeded}
	}
	if r.Err == nil && r.StatusCode == http.StatusGone {
		return Verdict{Status: StatusDead, DisableReason: "the endpoint answered 410 Gone"}
	}
	var v Verdict
	if !failingSince.IsZero() && now.Sub(failingSince) >= p.DisableAfter {
		v.DisableReason = fmt.Sprintf("every attempt failed for %s", p.DisableAfter)
	}
	if n >= len(p.Schedule) {
		v.Status = StatusDead
		return v
	}
	wait := p.jittered(p.Schedule[n])
	if r.Err == nil && (r.StatusCode == http.StatusTooManyRequests || r.StatusCode == http.StatusServiceUnavailable) && r.RetryAfter > wait {
		// The receiver said when it can take more: a later time than the schedule's is honoured exactly, no jitter
		// (it asked for that time). An earlier one is not: each attempt spends one of the schedule's, so a receiver
		// answering 429 with "Retry-After: 1" would otherwise use up the whole budget in seconds.
		wait = max(min(r.RetryAfter, MaxRetryAfter), wait)
	}
	v.Status = StatusRetrying
	v.NextAttemptAt = now.Add(wait)
	return v
}

func (p Policy) jittered(d time.Duration) time.Duration {
	if p.Jitter == 0 || d == 0 {
		return d
	}
	rnd := p.Rand
	if rnd == nil {
		rnd = rand.Float64
	}
	f := 1 + p.Jitter*(2*rnd()-1)
	return time.Duration(float64(d) * f)
}
