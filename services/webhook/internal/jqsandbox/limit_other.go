//go:build !linux

package jqsandbox

import (
	"errors"
	"os/exec"
	"time"
)

// limitMemory has no hard limit to set outside Linux: the soft limit and the pool's time limit remain.
func limitMemory(int64) error { return nil }

// maxThreads bounds a worker's threads (debug.SetMaxThreads); see limit_linux.go.
const maxThreads = 16

func lowerPriority() {}

func detach(*exec.Cmd) {}

var errNoCPUClock = errors.New("no CPU clock outside Linux")

// cpuTime and processCPUTime are not read outside Linux: the time limits are the wall clock's there.
func cpuTime() (time.Duration, error) { return 0, errNoCPUClock }

func processCPUTime(int) (time.Duration, error) { return 0, errNoCPUClock }
