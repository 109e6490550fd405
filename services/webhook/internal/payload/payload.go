// Package payload runs an endpoint's jq program on the full payload of a webhook. The full and thin bodies themselves
// are built by github.com/casekeeper/core/proto/webhookbody, which the SDK's local forwarder shares.
package payload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/itchyny/gojq"
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
	if _, bounded := ctx.Deadline(); !bounded {
		// A caller with a budget of its own (the transform workers: CPU time) gives a context with a deadline.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, TransformTimeout)
		defer cancel()
	}
	iter := t.code.RunWithContext(ctx, input)
	v, ok := iter.Next()
	if !ok {
		return nil, fmt.Errorf("%w: the program produced no output", ErrTransform)
	}
	if err, isErr := v.(error); isErr {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, Limited("ran past its time limit (%s of CPU time)", TransformTimeout)
		}
		return nil, fmt.Errorf("%w: %s", ErrTransform, RuntimeErrorText(err))
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

// RuntimeErrorText describes a jq run-time error without the values it was about: gojq's messages quote a preview of
// the offending value ("cannot iterate over: string (\"Jane Doe\")"), and `error(x)` makes x the message, while a
// transform runs on a person's case and its error text is stored with the attempt, logged and shown in the
// dashboard. Types stay, values go.
func RuntimeErrorText(err error) string {
	var ve gojq.ValueError
	if errors.As(err, &ve) {
		return "the program raised an error with a value of type " + gojq.TypeOf(ve.Value())
	}
	// Some messages quote the value as JSON instead ("tonumber cannot be applied to \"…\""): no string literal
	// survives either.
	return quotedString.ReplaceAllString(withoutPreviews(err.Error()), `"…"`)
}

var quotedString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"?`)

// previewTypes are the type names gojq puts before a value preview: "<type> (<preview of at most 30 bytes>)".
var previewTypes = []string{"null (", "boolean (", "number (", "string (", "array (", "object ("}

// withoutPreviews cuts every "<type> (<preview>)" down to "<type>". A preview is at most 30 bytes and is followed by
// ")" and the end of the message or " and " (the right operand); when no such end is found within that bound,
// everything after the type goes: too much is cut rather than too little.
func withoutPreviews(msg string) string {
	var b strings.Builder
	for {
		at, typ := -1, ""
		for _, t := range previewTypes {
			if i := strings.Index(msg, t); i >= 0 && (at < 0 || i < at) {
				at, typ = i, t
			}
		}
		if at < 0 {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(msg[:at+len(typ)-2]) // the type name, without " ("
		rest := msg[at+len(typ):]
		end, from := -1, 0
		if strings.HasPrefix(rest, `"`) { // a string preview: its closing quote first, escapes skipped
			for i := 1; i < len(rest); i++ {
				if rest[i] == '\\' {
					i++
				} else if rest[i] == '"' {
					from = i + 1
					break
				}
			}
			if from == 0 {
				return b.String()
			}
		}
		for i := from; i < len(rest) && i <= from+40; i++ {
			if rest[i] == ')' && (i+1 == len(rest) || strings.HasPrefix(rest[i+1:], " and ")) {
				end = i
				break
			}
		}
		if end < 0 {
			return b.String()
		}
		msg = rest[end+1:]
	}
}
