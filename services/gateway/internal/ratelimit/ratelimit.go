// Package ratelimit keeps one token bucket per client (the token's azp, or the address of callers that have not
// authenticated), so that one noisy client slows down alone.
package ratelimit

import (
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter holds the buckets. Buckets idle for longer than it takes to refill are dropped, which keeps the map
// bounded by the number of recently active clients (an address flood cannot grow it without limit: see maxKeys).
type Limiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
	// refunded is the tokens given back (Refund) and not taken again yet; guarded by Limiter.mu. A rate.Limiter
	// cannot take tokens back, so they are kept beside it and spent first.
	refunded int
}

// maxKeys caps the buckets kept; past it, the idle ones go first and then, if needed, all of them (resetting
// every client's budget is better than running out of memory).
const maxKeys = 100000

// New returns a limiter allowing perSecond requests per client with bursts of burst. perSecond ≤ 0 disables it.
func New(perSecond float64, burst int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	l := rate.Limit(perSecond)
	if perSecond <= 0 {
		l = rate.Inf
	}
	return &Limiter{limit: l, burst: burst, buckets: map[string]*bucket{}}
}

// Allow takes one token from the client's bucket. When it is empty it returns false and how long until a token is
// there (for Retry-After).
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l.limit == rate.Inf {
		return true, 0
	}
	now := time.Now()
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		l.sweepLocked(now)
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	if b.refunded > 0 {
		b.refunded--
		l.mu.Unlock()
		return true, 0
	}
	l.mu.Unlock()
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *Limiter) sweepLocked(now time.Time) {
	full := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	if len(l.buckets) < maxKeys && now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxKeys {
		clear(l.buckets)
	}
}

// Refund gives back the token of a request that turned out to cost nothing worth counting (a 304: the client
// already had the answer). The bucket never holds more than its burst.
func (l *Limiter) Refund(key string) {
	if l.limit == rate.Inf {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if ok && math.Floor(b.lim.TokensAt(now))+float64(b.refunded)+1 <= float64(l.burst) {
		b.refunded++
	}
}

// RetryAfterSeconds renders a delay as the whole seconds of a Retry-After header (at least 1).
func RetryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// Exhausted reports, without taking a token, whether the key's bucket is empty and how long until it is not: for
// budgets charged after the fact (failed authentications) but enforced before the work.
func (l *Limiter) Exhausted(key string) (bool, time.Duration) {
	if l.limit == rate.Inf {
		return false, 0
	}
	now := time.Now()
	l.mu.Lock()
	b, ok := l.buckets[key]
	refunded := 0
	if ok {
		refunded = b.refunded
	}
	l.mu.Unlock()
	if !ok {
		return false, 0
	}
	tokens := b.lim.TokensAt(now) + float64(refunded)
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
}
