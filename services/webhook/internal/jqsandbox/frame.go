package jqsandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The protocol between the pool and a worker, over the worker's stdin and stdout: one request, then one response,
// each a sequence of length-prefixed fields. Every length is checked against a bound before anything is allocated,
// so that neither side can make the other allocate what it should not.

// Response kinds.
const (
	kindOK    byte = 1 // the body
	kindError byte = 2 // the program failed on its own terms: the reason
	kindLimit byte = 3 // the run exceeded a limit: the reason
)

const (
	maxProgram = 64 << 10
	maxReason  = 4 << 10
)

var errFrame = errors.New("malformed frame")

func writeField(w io.Writer, b []byte) error {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readField(r io.Reader, limit int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if int64(size) > int64(limit) {
		return nil, fmt.Errorf("%w: field of %d bytes exceeds %d", errFrame, size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
