package jqsandbox

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// The budget counts CPU time: a run that only waits is not stopped at its budget, one that burns the CPU is; the
// wall clock stops either at wallFactor × the budget.
func TestCPUBudget(t *testing.T) {
	budget := 100 * time.Millisecond
	ctx, cancel := withCPUBudget(budget)
	defer cancel()
	select {
	case <-ctx.Done():
		t.Fatalf("a run that waits ended after %s of waiting", budget*2)
	case <-time.After(2 * budget):
	}
	select {
	case <-ctx.Done():
	case <-time.After(wallFactor*budget + time.Second):
		t.Fatal("the wall clock did not end a run that waits")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("waiting run: %v", ctx.Err())
	}

	cpu0, err := cpuTime()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = withCPUBudget(budget)
	defer cancel()
	start := time.Now()
	for ctx.Err() == nil {
		for i := 0; i < 1e5; i++ {
			_ = i * i
		}
	}
	cpu1, _ := cpuTime()
	elapsed := time.Since(start)
	// Ended by its CPU budget, or (on a machine too busy to give it that much) by the wall clock; never sooner.
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || (cpu1-cpu0 < budget && elapsed < wallFactor*budget) {
		t.Fatalf("a run that burns the CPU: %v after %s and %s of CPU, want it stopped at %s of CPU", ctx.Err(), elapsed, cpu1-cpu0, budget)
	}
	if elapsed < wallFactor*budget {
		t.Logf("stopped by the CPU budget after %s (%s of CPU)", elapsed, cpu1-cpu0)
	}
}

func TestProcessCPUTime(t *testing.T) {
	before, err := processCPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(150 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := processCPUTime(os.Getpid())
	if err != nil || after-before < 50*time.Millisecond {
		t.Fatalf("CPU time %s → %s (%v), want it to grow by about 150ms of busy loop", before, after, err)
	}
}
