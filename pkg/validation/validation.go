// Package validation describes bad input field by field, so that every edge can name the field at fault: gRPC as
// InvalidArgument with BadRequest details, HTTP as a JSON error.
package validation

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is one field that is wrong, named by its path in the request (e.g. "applicant.email").
type FieldError struct {
	Field   string
	Message string
}

// Errors is a list of field errors; it is an error when not empty.
type Errors []FieldError

// Add records one wrong field.
func (e *Errors) Add(field, format string, args ...any) {
	*e = append(*e, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns nil when nothing was added.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

func (e Errors) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid " + strings.Join(parts, "; ")
}

// As extracts field errors from err.
func As(err error) (Errors, bool) {
	var errs Errors
	if errors.As(err, &errs) {
		return errs, true
	}
	return nil, false
}
