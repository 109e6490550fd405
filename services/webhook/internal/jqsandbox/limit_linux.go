package jqsandbox

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// limitMemory caps the process's data segment (RLIMIT_DATA: private writable mappings, where the Go heap lives)
// and its address space (RLIMIT_AS: every mapping, whatever its protection and however it is made) at what each
// holds now plus limit. Counting from the current sizes keeps the limits meaningful whatever the binary maps at
// start (a race-detector build maps terabytes of shadow address space before main). Both are needed: a single
// large allocation was seen to get past RLIMIT_DATA alone.
func limitMemory(limit int64) error {
	data, err := status("VmData:")
	if err != nil {
		return err
	}
	size, err := status("VmSize:")
	if err != nil {
		return err
	}
	for _, l := range []struct {
		resource int
		max      uint64
	}{{syscall.RLIMIT_DATA, uint64(data + limit)}, {syscall.RLIMIT_AS, uint64(size + limit)}} {
		if err := syscall.Setrlimit(l.resource, &syscall.Rlimit{Cur: l.max, Max: l.max}); err != nil {
			return err
		}
	}
	return nil
}

func status(field string) (int64, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			kib, err := strconv.ParseInt(f[0], 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// lowerPriority lets the service win the CPU over a transform that burns it: nice 19 (a weight of 15 against the
// service's 1024). Linux keeps a nice value per thread, so every thread the runtime has started gets it; threads
// started later inherit it from the thread that creates them.
func lowerPriority() {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19)
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19)
		}
	}
}

// detach makes the worker die with the service.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
