//go:build !linux

package jqsandbox

import "os/exec"

// limitMemory has no hard limit to set outside Linux: the soft limit and the pool's time limit remain.
func limitMemory(int64) error { return nil }

// maxThreads bounds a worker's threads (debug.SetMaxThreads); see limit_linux.go.
const maxThreads = 16

func lowerPriority() {}

func detach(*exec.Cmd) {}
