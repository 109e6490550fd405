// Package payload turns a case event into the JSON body of a webhook: the full case, a thin notice without personal
// data, or the full payload passed through the endpoint's jq program.
package payload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/itchyny/gojq"
	"google.golang.org/protobuf/encoding/protojson"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// Limits of a jq run: a transform that loops or explodes fails the attempt instead of the service. The memory a
// run may take is bounded by the process it runs in (see package jqsandbox).
const (
	TransformTimeout = 250 * time.Millisecond
	MaxBodyBytes     = 256 << 10
	// MaxInputBytes bounds the full payload a transform is given.
	MaxInputBytes = 1 << 20
)

var (
	// ErrTransform marks failures of a jq program at run time.
	ErrTransform = errors.New("jq transform failed")
	// ErrLimit marks a run that exceeded a limit (time, memory, input or output size), as opposed to a program that
	// stopped with an error of its own; every ErrLimit is also an ErrTransform.
	ErrLimit = errors.New("exceeds the limits of a transform")
)

// Limited is an ErrTransform and ErrLimit with the reason.
func Limited(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrTransform, ErrLimit, fmt.Sprintf(format, args...))
}

var marshal = protojson.MarshalOptions{UseProtoNames: true}

// Full is the standard body {"type", "timestamp", "data": case}.
func Full(e *casekeeperv1.CaseEvent) ([]byte, error) {
	data, err := marshal.Marshal(e.GetData())
	if err != nil {
		return nil, fmt.Errorf("encoding case: %w", err)
	}
	// protojson varies its whitespace on purpose; compacting makes the body stable across builds.
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, fmt.Errorf("compacting case: %w", err)
	}
	return envelope(e, json.RawMessage(compact.Bytes()))
}

// Thin names the event and where to fetch the case, with no personal data.
func Thin(e *casekeeperv1.CaseEvent, gatewayURL string) ([]byte, error) {
	return envelope(e, map[string]any{
		"event_id":     e.GetId(),
		"type":         e.GetType(),
		"case_id":      e.GetCaseId(),
		"case_version": e.GetCaseVersion(),
		"url":          gatewayURL + "/v1/cases/" + e.GetCaseId(),
	})
}

func envelope(e *casekeeperv1.CaseEvent, data any) ([]byte, error) {
	return json.Marshal(struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      any    `json:"data"`
	}{e.GetType(), e.GetOccurredAt().AsTime().UTC().Format(time.RFC3339Nano), data})
}

// CompileError is a jq program that does not parse or compile, with the offset of the fault when jq knows it.
type CompileError struct {
	Offset       int // byte offset into the program where jq stopped, -1 when unknown
	Line, Column int // 1-based position of Offset
	Msg          string
}

func (e *CompileError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("jq: %s at line %d, column %d", e.Msg, e.Line, e.Column)
	}
	return "jq: " + e.Msg
}

// position converts a byte offset into a 1-based line and column (in runes).
func position(program string, offset int) (line, col int) {
	offset = min(max(offset, 0), len(program))
	before := program[:offset]
	line = strings.Count(before, "\n") + 1
	col = utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}

// Transform is a compiled jq program.
type Transform struct{ code *gojq.Code }

// Compile parses and compiles a jq program; failures are *CompileError.
func Compile(program string) (*Transform, error) {
	q, err := gojq.Parse(program)
	if err != nil {
		ce := &CompileError{Offset: -1, Msg: err.Error()}
		var pe *gojq.ParseError
		if errors.As(err, &pe) {
			ce.Offset = pe.Offset
			ce.Line, ce.Column = position(program, pe.Offset)
		}
		return nil, ce
	}
	// No environment, no modules, no input: a transform sees only the payload.
	code, err := gojq.Compile(q, gojq.WithEnvironLoader(func() []string { return nil }))
	if err != nil {
		return nil, &CompileError{Offset: -1, Msg: err.Error()}
	}
	return &Transform{code: code}, nil
}

// Apply runs the program on a full payload and returns its first output as the body. A program that errors, yields
// nothing, runs past TransformTimeout or yields more than MaxBodyBytes fails with ErrTransform.
func (t *Transform) Apply(ctx context.Context, full []byte) ([]byte, error) {
	if len(full) > MaxInputBytes {
		return nil, Limited("payload of %d bytes exceeds %d", len(full), MaxInputBytes)
	}
	var input any
	dec := json.NewDecoder(bytes.NewReader(full))
	dec.UseNumber()
	if err := dec.Decode(&input); err != nil {
		return nil, fmt.Errorf("%w: decoding payload: %v", ErrTransform, err)
	}
	input = normalize(input)
	ctx, cancel := context.WithTimeout(ctx, TransformTimeout)
	defer cancel()
	iter := t.code.RunWithContext(ctx, input)
	v, ok := iter.Next()
	if !ok {
		return nil, fmt.Errorf("%w: the program produced no output", ErrTransform)
	}
	if err, isErr := v.(error); isErr {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, Limited("ran longer than %s", TransformTimeout)
		}
		return nil, fmt.Errorf("%w: %v", ErrTransform, err)
	}
	out, err := gojq.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding output: %v", ErrTransform, err)
	}
	if len(out) > MaxBodyBytes {
		return nil, Limited("output of %d bytes exceeds %d", len(out), MaxBodyBytes)
	}
	return out, nil
}

// normalize turns json.Number into the int or float64 gojq works with, keeping integers exact.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	}
	return v
}
