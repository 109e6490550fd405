// Package jqsandbox runs the jq programs of webhook endpoints in a pool of worker processes, so that a program
// that loops, allocates without bound or produces too much costs its own run and nothing else: each worker has a
// hard memory ceiling, a run that passes its time is killed with its worker, a dead worker is replaced, and a
// tenant holds at most half of the workers. A program that exceeded its limits is set aside for a while, so that
// its endpoint's next attempts fail at once instead of burning a worker each.
package jqsandbox

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casekeeper/core/services/webhook/internal/payload"
)

// ErrNewlyQuarantined is matched (errors.Is) by the one failed run that set its program aside, so that the caller
// can tell the endpoint's owner once rather than at every attempt.
var ErrNewlyQuarantined = errors.New("the program is set aside after exceeding its limits")

// Options configure a Pool; zero values take the defaults.
type Options struct {
	// Workers is the number of worker processes (default 2). A tenant holds at most half of them (at least one).
	Workers int
	// MemoryLimit is each worker's memory ceiling in bytes (default 64 MiB).
	MemoryLimit int64
	// Timeout bounds the CPU time of one run, after which the worker is killed (default payload.TransformTimeout
	// plus 250ms: the program's own deadline is checked between jq instructions, this one is not); the wall clock
	// bounds it at wallFactor times that.
	Timeout time.Duration
	// QueueWait bounds the wait for a free worker (default 5s).
	QueueWait time.Duration
	// Quarantine is how long a program that exceeded its limits is refused without running (default 1 minute).
	Quarantine time.Duration
	// Executable is the binary started as a worker (default os.Executable()); it must link this package.
	Executable string
	Log        *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.MemoryLimit == 0 {
		o.MemoryLimit = 64 << 20
	}
	if o.Timeout == 0 {
		o.Timeout = payload.TransformTimeout + 250*time.Millisecond
	}
	if o.QueueWait == 0 {
		o.QueueWait = 5 * time.Second
	}
	if o.Quarantine == 0 {
		o.Quarantine = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Workers < 1 || o.Workers > 256:
		return o, fmt.Errorf("jq workers: %d is not between 1 and 256", o.Workers)
	case o.MemoryLimit < 16<<20:
		return o, fmt.Errorf("jq worker memory limit: %d bytes is less than 16 MiB", o.MemoryLimit)
	case o.Timeout < 0 || o.QueueWait < 0 || o.Quarantine < 0:
		return o, errors.New("jq worker durations must be positive")
	}
	if o.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("jq workers: finding this program's executable: %w", err)
		}
		o.Executable = exe
	}
	return o, nil
}

// Pool is a bounded set of worker processes.
type Pool struct {
	o         Options
	tenantCap int
	slots     chan struct{} // one token per run in progress, Workers in all

	mu      sync.Mutex
	idle    []*worker
	tenants map[string]*tenantShare
	benched map[[32]byte]time.Time // quarantined programs (with their tenant) and until when
	closed  bool
}

type tenantShare struct {
	slots   chan struct{}
	waiters int
}

// New checks the options; workers start on first use and are kept.
func New(o Options) (*Pool, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Pool{o: o, tenantCap: max(1, o.Workers/2), slots: make(chan struct{}, o.Workers),
		tenants: map[string]*tenantShare{}, benched: map[[32]byte]time.Time{}}, nil
}

// Start starts every worker now, so that the first runs do not wait for them.
func (p *Pool) Start() error {
	var ws []*worker
	for range p.o.Workers {
		w, err := p.spawn()
		if err != nil {
			for _, w := range ws {
				w.kill()
			}
			return err
		}
		ws = append(ws, w)
	}
	p.mu.Lock()
	p.idle = append(p.idle, ws...)
	p.mu.Unlock()
	return nil
}

// Quarantine is how long a program that exceeded its limits is set aside (Options.Quarantine after defaults).
func (p *Pool) Quarantine() time.Duration { return p.o.Quarantine }

// Close kills every idle worker; a worker busy with a run is killed when the run returns.
func (p *Pool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		w.kill()
	}
}

// Run applies program to input (a full payload) in a worker on behalf of tenant. Failures are payload.ErrTransform;
// those that exceeded a limit (time, memory, input or output size) are payload.ErrLimit as well.
func (p *Pool) Run(ctx context.Context, tenant, program string, input []byte) ([]byte, error) {
	if len(input) > payload.MaxInputBytes {
		return nil, payload.Limited("payload of %d bytes exceeds %d", len(input), payload.MaxInputBytes)
	}
	if len(program) > maxProgram {
		return nil, fmt.Errorf("%w: the program is longer than %d bytes", payload.ErrTransform, maxProgram)
	}
	key := sha256.Sum256([]byte(tenant + "\x00" + program))
	if err := p.quarantined(key); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, p.o.QueueWait)
	defer cancel()
	release, err := p.acquire(wctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("%w: no transform worker free within %s", payload.ErrTransform, p.o.QueueWait)
	}
	defer release()
	// Runs of the same program queue behind the one that gets it quarantined: they stop here.
	if err := p.quarantined(key); err != nil {
		return nil, err
	}

	w, err := p.take()
	if err != nil {
		return nil, fmt.Errorf("%w: starting a transform worker: %v", payload.ErrTransform, err)
	}
	kind, body, err := p.call(ctx, w, program, input)
	if err != nil {
		// The worker is gone or in an unknown state: it is killed and the next run starts a fresh one.
		why := w.kill()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %v", payload.ErrTransform, ctx.Err())
		}
		p.o.Log.Warn("jq worker replaced", "tenant", tenant, "reason", why)
		return nil, p.bench(key, why)
	}
	p.put(w)
	switch kind {
	case kindOK:
		return body, nil
	case kindLimit:
		return nil, p.bench(key, string(body))
	default:
		return nil, fmt.Errorf("%w: %s", payload.ErrTransform, body)
	}
}

// acquire takes a share of the tenant's and then of the pool's slots.
func (p *Pool) acquire(ctx context.Context, tenant string) (func(), error) {
	p.mu.Lock()
	ts := p.tenants[tenant]
	if ts == nil {
		ts = &tenantShare{slots: make(chan struct{}, p.tenantCap)}
		p.tenants[tenant] = ts
	}
	ts.waiters++
	p.mu.Unlock()
	leave := func() {
		p.mu.Lock()
		if ts.waiters--; ts.waiters == 0 {
			delete(p.tenants, tenant)
		}
		p.mu.Unlock()
	}
	select {
	case ts.slots <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		<-ts.slots
		leave()
		return nil, ctx.Err()
	}
	return func() { <-p.slots; <-ts.slots; leave() }, nil
}

func (p *Pool) take() (*worker, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()
	return p.spawn()
}

func (p *Pool) put(w *worker) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		w.kill()
		return
	}
	p.idle = append(p.idle, w)
	p.mu.Unlock()
}

// call makes one round trip, bounded by the pool's timeout and ctx.
func (p *Pool) call(ctx context.Context, w *worker, program string, input []byte) (byte, []byte, error) {
	type reply struct {
		kind byte
		body []byte
		err  error
	}
	done := make(chan reply, 1)
	go func() {
		var r reply
		r.kind, r.body, r.err = w.roundTrip(program, input)
		done <- r
	}()
	// The limit is the worker's CPU time during this run (see wallFactor): when Timeout has passed on the clock,
	// the worker is killed if it used that much CPU, or once wallFactor × Timeout has passed; a worker that was
	// only waiting for the CPU gets on with it meanwhile.
	started := time.Now()
	base, cpuErr := processCPUTime(w.cmd.Process.Pid)
	t := time.NewTimer(p.o.Timeout)
	defer t.Stop()
	for {
		select {
		case r := <-done:
			return r.kind, r.body, r.err
		case <-t.C:
			used, err := processCPUTime(w.cmd.Process.Pid)
			if cpuErr == nil && err == nil && used-base < p.o.Timeout && time.Since(started) < wallFactor*p.o.Timeout {
				t.Reset(p.o.Timeout / 10)
				continue
			}
			w.timedOut.Store(true)
		case <-ctx.Done():
		}
		break
	}
	w.kill()
	<-done
	return 0, nil, errors.New("interrupted")
}

// quarantined is the error of a program set aside, nil otherwise.
func (p *Pool) quarantined(key [32]byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	until, ok := p.benched[key]
	if !ok {
		return nil
	}
	if time.Now().After(until) {
		delete(p.benched, key)
		return nil
	}
	return &limitError{reason: fmt.Sprintf("it exceeded them recently and is not run again before %s",
		until.UTC().Format(time.RFC3339))}
}

// bench sets the program aside and returns the run's error.
func (p *Pool) bench(key [32]byte, reason string) error {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.benched) >= 10000 {
		for k, until := range p.benched {
			if now.After(until) {
				delete(p.benched, k)
			}
		}
	}
	_, already := p.benched[key]
	p.benched[key] = now.Add(p.o.Quarantine)
	return &limitError{reason: reason, fresh: !already}
}

// limitError is payload.ErrTransform and payload.ErrLimit; ErrNewlyQuarantined too when fresh.
type limitError struct {
	reason string
	fresh  bool
}

func (e *limitError) Error() string {
	return payload.ErrTransform.Error() + ": " + payload.ErrLimit.Error() + ": " + e.reason
}

func (e *limitError) Is(target error) bool {
	return target == payload.ErrTransform || target == payload.ErrLimit || (e.fresh && target == ErrNewlyQuarantined)
}

func (p *Pool) spawn() (*worker, error) {
	cmd := exec.Command(p.o.Executable)
	// Nothing of the service's environment (database URI, keys) reaches a worker.
	cmd.Env = []string{workerEnv + "=" + strconv.FormatInt(p.o.MemoryLimit, 10), "GOMAXPROCS=1", "GOTRACEBACK=none"}
	detach(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w := &worker{cmd: cmd, in: stdin, out: bufio.NewReaderSize(stdout, 64<<10), stderr: &tail{max: 2048},
		limit: p.o.MemoryLimit, timeout: p.o.Timeout, exited: make(chan struct{})}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(w.exited) }()
	return w, nil
}

type worker struct {
	cmd      *exec.Cmd
	in       io.WriteCloser
	out      *bufio.Reader
	stderr   *tail
	limit    int64
	timeout  time.Duration
	exited   chan struct{}
	timedOut atomic.Bool
	once     sync.Once
}

func (w *worker) roundTrip(program string, input []byte) (byte, []byte, error) {
	if err := writeField(w.in, []byte(program)); err != nil {
		return 0, nil, err
	}
	if err := writeField(w.in, input); err != nil {
		return 0, nil, err
	}
	kind, err := w.out.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	limit := maxReason
	if kind == kindOK {
		limit = payload.MaxBodyBytes
	}
	body, err := readField(w.out, limit)
	if err != nil {
		return 0, nil, err
	}
	if kind != kindOK && kind != kindError && kind != kindLimit {
		return 0, nil, errFrame
	}
	return kind, body, nil
}

// kill ends the worker (if it has not ended) and says why it is gone.
func (w *worker) kill() string {
	w.once.Do(func() {
		_ = w.in.Close()
		_ = w.cmd.Process.Kill()
	})
	<-w.exited
	switch {
	case w.timedOut.Load():
		return fmt.Sprintf("ran past its time limit (%s of CPU time, or %s on the clock) and was stopped", w.timeout, wallFactor*w.timeout)
	case oom(w.stderr.String()):
		return fmt.Sprintf("used more than the %d MiB of memory a transform may use", w.limit>>20)
	}
	// At the ceiling the runtime does not always get to say so: some of its allocations end in a crash instead.
	how := "ended"
	if st := w.cmd.ProcessState; st != nil {
		how = st.String()
	}
	return fmt.Sprintf("the transform worker died (%s), which is how a run beyond the %d MiB memory ceiling ends", how, w.limit>>20)
}

// tail keeps the first bytes written to it: the reason a Go program gives when it dies comes first.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.b); room > 0 {
		t.b = append(t.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// oom recognises the last words of a worker that hit its memory ceiling: the Go runtime's, or the race detector's.
func oom(stderr string) bool {
	return strings.Contains(stderr, "out of memory") || strings.Contains(stderr, "failed to allocate")
}
