package kyc

import (
	"fmt"
	"slices"
	"strings"
)

// Status is where a case stands in its lifecycle.
type Status string

const (
	StatusDraft                 Status = "draft"
	StatusSubmitted             Status = "submitted"
	StatusInReview              Status = "in_review"
	StatusApproved              Status = "approved"
	StatusRejected              Status = "rejected"
	StatusResubmissionRequested Status = "resubmission_requested"
	StatusOnHold                Status = "on_hold"
	StatusExpired               Status = "expired"
	StatusRedacted              Status = "redacted"
)

// Statuses lists every status.
var Statuses = []Status{StatusDraft, StatusSubmitted, StatusInReview, StatusApproved, StatusRejected,
	StatusResubmissionRequested, StatusOnHold, StatusExpired, StatusRedacted}

// transitions is the state machine: the statuses each status may move to.
//
//	draft → submitted → in_review → approved | rejected | resubmission_requested (→ submitted)
//	in_review ⇄ on_hold; any open status → expired; any status but redacted → redacted.
var transitions = map[Status][]Status{
	StatusDraft:                 {StatusSubmitted, StatusExpired, StatusRedacted},
	StatusSubmitted:             {StatusInReview, StatusExpired, StatusRedacted},
	StatusInReview:              {StatusApproved, StatusRejected, StatusResubmissionRequested, StatusOnHold, StatusExpired, StatusRedacted},
	StatusOnHold:                {StatusInReview, StatusExpired, StatusRedacted},
	StatusResubmissionRequested: {StatusSubmitted, StatusExpired, StatusRedacted},
	StatusApproved:              {StatusRedacted},
	StatusRejected:              {StatusRedacted},
	StatusExpired:               {StatusRedacted},
	StatusRedacted:              nil,
}

// Allowed returns the statuses s may move to.
func (s Status) Allowed() []Status { return slices.Clone(transitions[s]) }

// CanMoveTo reports whether the state machine allows s → to.
func (s Status) CanMoveTo(to Status) bool { return slices.Contains(transitions[s], to) }

// Open reports whether the case is still being worked on: its data may change and it may expire.
func (s Status) Open() bool {
	switch s {
	case StatusDraft, StatusSubmitted, StatusInReview, StatusOnHold, StatusResubmissionRequested:
		return true
	}
	return false
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// TransitionError says which move was refused, from where, and what would have been allowed.
type TransitionError struct {
	From, To Status
}

func (e *TransitionError) Error() string {
	allowed := e.From.Allowed()
	names := make([]string, len(allowed))
	for i, s := range allowed {
		names[i] = string(s)
	}
	next := strings.Join(names, ", ")
	if next == "" {
		next = "none"
	}
	return fmt.Sprintf("case is %s and cannot become %s; allowed next: %s", e.From, e.To, next)
}

func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }
