package jqsandbox

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// limitMemory caps the process's data segment (RLIMIT_DATA: every private writable mapping, which is where the Go
// heap lives) at what it holds now plus limit. Counting from the current size keeps the limit meaningful whatever
// the binary maps at start (a race-detector build maps hundreds of MiB of shadow memory before main).
func limitMemory(limit int64) error {
	now, err := vmData()
	if err != nil {
		return err
	}
	max := uint64(now + limit)
	return syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: max, Max: max})
}

func vmData() (int64, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmData:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			kib, err := strconv.ParseInt(f[0], 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("no VmData in /proc/self/status")
}

// lowerPriority lets the service's own goroutines win the CPU over a transform that burns it.
func lowerPriority() { _ = syscall.Setpriority(syscall.PRIO_PROCESS, 0, 10) }

// detach makes the worker die with the service.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
