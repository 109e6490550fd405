package testinfra

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Recorder is an HTTP endpoint inside the test, such as a webhook receiver, that keeps every request it answers.
type Recorder struct {
	*httptest.Server
	respond func(n int, r *http.Request) int
	mu      sync.Mutex
	got     []Request
}

// Request is one request a Recorder answered.
type Request struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
	Status int // what the Recorder answered
}

// NewRecorder serves on a fresh loopback port until t finishes. respond chooses the status of the n-th request
// (counted from 1); nil answers 200 to every one.
func NewRecorder(t testing.TB, respond func(n int, r *http.Request) int) *Recorder {
	return NewRecorderOn(t, nil, respond)
}

// NewRecorderOn is NewRecorder serving on lis, for a receiver that must come up on an address known before; nil
// is a fresh loopback port.
func NewRecorderOn(t testing.TB, lis net.Listener, respond func(n int, r *http.Request) int) *Recorder {
	rc := &Recorder{respond: respond}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	if lis != nil {
		_ = rc.Listener.Close()
		rc.Listener = lis
	}
	rc.Start()
	t.Cleanup(rc.Close)
	return rc
}

func (rc *Recorder) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, Request{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()})
	n := len(rc.got)
	rc.mu.Unlock()
	code := http.StatusOK
	if rc.respond != nil {
		code = rc.respond(n, r)
	}
	rc.mu.Lock()
	rc.got[n-1].Status = code
	rc.mu.Unlock()
	w.WriteHeader(code)
	_, _ = w.Write([]byte("ok"))
}

// Requests returns the requests answered so far, in the order they arrived.
func (rc *Recorder) Requests() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Request(nil), rc.got...)
}
