package casekeeper

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is a capped exponential wait with jitter: the n-th consecutive failure waits a random time between half
// of and the full min·2ⁿ, never more than max, so that many clients cut off at once do not return in step.
type backoff struct{ min, max time.Duration }

func (b backoff) delay(failures int) time.Duration {
	d := b.max
	if failures < 30 {
		d = min(b.max, b.min<<failures)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends, reporting whether it waited the whole time.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
