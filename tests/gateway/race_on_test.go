//go:build race

package gateway_test

import "time"

// wakeBudget is the median long-poll wake-up the tests accept. The race detector slows the embedded FerretDB, which
// the projector writes to before it wakes readers, several times over; without it the budget is the 100 ms.
const wakeBudget = 300 * time.Millisecond
