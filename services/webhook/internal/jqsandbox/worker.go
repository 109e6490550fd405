package jqsandbox

import (
	"bufio"
	"errors"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/casekeeper/core/services/webhook/internal/payload"
)

// workerEnv marks a process started by a Pool as a worker; its value is the memory limit in bytes.
const workerEnv = "CASEKEEPER_JQ_WORKER"

// A worker is this program's own executable, started again with workerEnv set: whatever binary links the webhook
// service (the service, the dev server, a test binary) can serve as one without a main of its own. The check runs
// at package initialisation, before main or TestMain, so no caller has to remember it.
func init() {
	v, ok := os.LookupEnv(workerEnv)
	if !ok {
		return
	}
	limit, err := strconv.ParseInt(v, 10, 64)
	if err != nil || limit <= 0 {
		os.Exit(2)
	}
	os.Exit(serve(limit, os.Stdin, os.Stdout))
}

// maxCached bounds the compiled programs a worker keeps; the cache starts over when full.
const maxCached = 128

// serve answers requests until stdin closes. Its memory is bounded twice: the Go runtime's soft limit makes the
// collector work harder as the heap nears it, and the hard limit (see limitMemory) makes an allocation beyond it
// fail, which ends the process; the pool sees the exit and fails that one run.
func serve(limit int64, stdin io.Reader, stdout io.Writer) int {
	if err := limitMemory(limit); err != nil {
		_, _ = os.Stderr.WriteString("jq worker: setting the memory limit: " + err.Error() + "\n")
		return 2
	}
	debug.SetMemoryLimit(limit * 3 / 4)
	debug.SetMaxThreads(maxThreads)
	lowerPriority()
	r := bufio.NewReaderSize(stdin, 64<<10)
	w := bufio.NewWriterSize(stdout, 64<<10)
	cache := map[string]*payload.Transform{}
	for {
		program, err := readField(r, maxProgram)
		if errors.Is(err, io.EOF) {
			return 0
		}
		if err != nil {
			return 2
		}
		input, err := readField(r, payload.MaxInputBytes)
		if err != nil {
			return 2
		}
		kind, body := run(cache, string(program), input)
		if err := w.WriteByte(kind); err != nil {
			return 2
		}
		if err := writeField(w, body); err != nil {
			return 2
		}
		if err := w.Flush(); err != nil {
			return 2
		}
	}
}

func run(cache map[string]*payload.Transform, program string, input []byte) (byte, []byte) {
	t, ok := cache[program]
	if !ok {
		var err error
		if t, err = payload.Compile(program); err != nil {
			return kindError, reason(err)
		}
		if len(cache) >= maxCached {
			clear(cache)
		}
		cache[program] = t
	}
	ctx, cancel := withCPUBudget(payload.TransformTimeout)
	out, err := t.Apply(ctx, input)
	cancel()
	switch {
	case err == nil:
		return kindOK, out
	case errors.Is(err, payload.ErrLimit):
		return kindLimit, reason(err)
	default:
		return kindError, reason(err)
	}
}

// reason is the message without the sentinels' prefixes, which the pool puts back.
func reason(err error) []byte {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, payload.ErrTransform.Error()+": ")
	msg = strings.TrimPrefix(msg, payload.ErrLimit.Error()+": ")
	if len(msg) > maxReason {
		msg = msg[:maxReason]
	}
	return []byte(msg)
}
