package jqsandbox

import (
	"context"
	"sync/atomic"
	"time"
)

// A transform's time limit is CPU time, not wall time: the workers run at nice 19 so that the service wins the CPU
// from them, and on a busy machine a worker may wait far longer for the CPU than its program needs. A wall-clock
// limit then fails (and quarantines) programs that did nothing wrong — a loaded run saw `.data.id` stopped after
// 500 ms. So a run is stopped when it has used its budget of CPU time, and in any case after wallFactor times
// that on the clock, which bounds how long a starved run holds its slot.
const wallFactor = 4

// budgetContext ends with context.DeadlineExceeded once the process has used budget more CPU time than when it
// was made, or after wallFactor × budget, whichever comes first.
type budgetContext struct {
	context.Context
	over atomic.Bool
}

func (c *budgetContext) Err() error {
	if c.over.Load() {
		return context.DeadlineExceeded
	}
	return c.Context.Err()
}

// withCPUBudget is the context a worker runs one program under. Without a CPU clock (cpuTime fails) it is the
// wall clock alone, at the budget itself.
func withCPUBudget(budget time.Duration) (context.Context, context.CancelFunc) {
	start, err := cpuTime()
	if err != nil {
		return context.WithTimeout(context.Background(), budget)
	}
	inner, cancel := context.WithTimeout(context.Background(), wallFactor*budget)
	c := &budgetContext{Context: inner}
	go func() {
		tick := time.NewTicker(budget / 25)
		defer tick.Stop()
		for {
			select {
			case <-inner.Done():
				return
			case <-tick.C:
				if used, err := cpuTime(); err == nil && used-start > budget {
					c.over.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	return c, cancel
}
