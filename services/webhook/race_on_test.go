//go:build race

package webhooksvc_test

// slowdown stretches the waits of the heavy tests under the race detector, which makes the embedded FerretDB and
// NATS several times slower.
const slowdown = 5
