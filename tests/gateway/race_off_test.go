//go:build !race

package gateway_test

import "time"

// wakeBudget is the median long-poll wake-up the tests accept: 100 ms from the write.
const wakeBudget = 100 * time.Millisecond
