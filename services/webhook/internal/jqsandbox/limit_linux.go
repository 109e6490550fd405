package jqsandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// limitMemory caps the process's data segment (RLIMIT_DATA: private writable mappings, where the Go heap lives)
// and its address space (RLIMIT_AS: every mapping, whatever its protection and however it is made) at what each
// holds now plus limit, plus room for the stacks of the threads the runtime may still start (threadStacks).
// Counting from the current sizes keeps the limits meaningful whatever the binary maps at start (a race-detector
// build maps terabytes of shadow address space before main). Both are needed: a single large allocation was seen
// to get past RLIMIT_DATA alone.
func limitMemory(limit int64) error {
	data, err := status("VmData:")
	if err != nil {
		return err
	}
	size, err := status("VmSize:")
	if err != nil {
		return err
	}
	stacks, err := threadStacks()
	if err != nil {
		return err
	}
	for _, l := range []struct {
		resource int
		max      uint64
	}{{syscall.RLIMIT_DATA, uint64(data + limit + stacks)}, {syscall.RLIMIT_AS, uint64(size + limit + stacks)}} {
		if err := syscall.Setrlimit(l.resource, &syscall.Rlimit{Cur: l.max, Max: l.max}); err != nil {
			return err
		}
	}
	return nil
}

// maxThreads bounds the threads of a worker (debug.SetMaxThreads: one more ends it, and the pool replaces it). A
// worker runs one transform at a time on GOMAXPROCS=1; under a heavily loaded machine 5 threads were seen.
const maxThreads = 16

// threadStacks is the room the limits leave for the stacks of threads started after they are set. A Go-only
// binary gives each thread a small stack from its own heap: no room is needed. A binary linked with libc (cgo,
// the race detector, which test binaries are) starts every thread with pthread_create, which maps a stack of
// RLIMIT_STACK's size (8 MiB by default) up front, counted by both limits though only a few pages of it are ever
// touched: without this room a worker under load died in pthread_create after its fifth thread.
func threadStacks() (int64, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	if !linksLibc(string(maps)) {
		return 0, nil
	}
	var stack syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_STACK, &stack); err != nil {
		return 0, err
	}
	size := int64(8 << 20)
	if stack.Cur != ^uint64(0) && stack.Cur > 0 && stack.Cur < 1<<30 {
		size = int64(stack.Cur)
	}
	// A page more each: the guard page glibc puts below every stack.
	return maxThreads * (size + int64(os.Getpagesize())), nil
}

// linksLibc reports whether /proc/self/maps (its text) maps the C library.
func linksLibc(maps string) bool {
	for _, line := range strings.Split(maps, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.HasPrefix(filepath.Base(f[len(f)-1]), "libc.so") {
			return true
		}
	}
	return false
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

// cpuTime is the CPU time this process has used (user and system, every thread).
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// processCPUTime is the CPU time process pid has used, from /proc/<pid>/stat (user and system, in clock ticks of
// 10 ms: USER_HZ is 100 on every Linux the service runs on).
func processCPUTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// After the name: state (3), ..., utime (14), stime (15); f[0] is field 3.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
