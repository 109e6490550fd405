package casekeeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrResyncRequired means the feed no longer holds the position of the stored cursor (it is older than the feed's
// retention, 30 days by default): events were dropped that this client never saw. Resync: list the cases
// (ListCases) and store their current state, then follow the feed from Latest, replacing the stored cursor. The
// client never restarts from another position by itself.
var ErrResyncRequired = errors.New("casekeeper: the cursor has expired: resync by listing the cases, then follow the feed from \"latest\"")

// Errors an APIError matches with errors.Is, by its gRPC code.
var (
	ErrUnauthenticated  = errors.New("casekeeper: unauthenticated")
	ErrPermissionDenied = errors.New("casekeeper: permission denied")
	ErrNotFound         = errors.New("casekeeper: not found")
	ErrInvalidArgument  = errors.New("casekeeper: invalid argument")
	ErrRateLimited      = errors.New("casekeeper: rate limited")
)

// ReasonCursorExpired is the google.rpc.ErrorInfo reason of an expired cursor.
const ReasonCursorExpired = "CURSOR_EXPIRED"

// APIError is an error answer of the gateway or of a service: the gRPC status, and for HTTP the status code.
type APIError struct {
	HTTPStatus int // 0 for a gRPC call
	Code       codes.Code
	Message    string
	// Reason is the google.rpc.ErrorInfo reason, when the answer has one (ReasonCursorExpired).
	Reason string
	// Fields are the field violations of a BadRequest: field name to description.
	Fields map[string]string
	// RetryAfter is the wait the server asked for (429, RESOURCE_EXHAUSTED), zero when it named none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if b.Len() == 0 {
		b.WriteString(e.Code.String())
	}
	for f, d := range e.Fields {
		fmt.Fprintf(&b, "; %s %s", f, d)
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	} else {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrResyncRequired) and the Err* kinds above work on an APIError.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrResyncRequired:
		return e.Reason == ReasonCursorExpired
	case ErrUnauthenticated:
		return e.Code == codes.Unauthenticated
	case ErrPermissionDenied:
		return e.Code == codes.PermissionDenied
	case ErrNotFound:
		return e.Code == codes.NotFound
	case ErrInvalidArgument:
		return e.Code == codes.InvalidArgument
	case ErrRateLimited:
		return e.Code == codes.ResourceExhausted
	}
	return false
}

// temporary reports whether the same call may succeed later without any change by the caller.
func (e *APIError) temporary() bool {
	switch e.Code {
	case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return e.HTTPStatus >= 500
}

// statusJSON is google.rpc.Status as the gateway writes it.
type statusJSON struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

type detailJSON struct {
	Type            string `json:"@type"`
	Reason          string `json:"reason"`
	FieldViolations []struct {
		Field       string `json:"field"`
		Description string `json:"description"`
	} `json:"field_violations"`
	RetryDelay string `json:"retry_delay"`
}

// httpError reads an error answer: the JSON status when the body is one, the HTTP status otherwise.
func httpError(resp *http.Response, body []byte) *APIError {
	e := &APIError{HTTPStatus: resp.StatusCode, Code: codeOfHTTP(resp.StatusCode)}
	var st statusJSON
	if json.Unmarshal(body, &st) == nil && (st.Code != 0 || st.Message != "") {
		e.Code, e.Message = codes.Code(st.Code), st.Message
		for _, raw := range st.Details {
			var d detailJSON
			if json.Unmarshal(raw, &d) != nil {
				continue
			}
			switch {
			case strings.HasSuffix(d.Type, "google.rpc.ErrorInfo"):
				e.Reason = d.Reason
			case strings.HasSuffix(d.Type, "google.rpc.BadRequest"):
				for _, v := range d.FieldViolations {
					if e.Fields == nil {
						e.Fields = map[string]string{}
					}
					e.Fields[v.Field] = v.Description
				}
			case strings.HasSuffix(d.Type, "google.rpc.RetryInfo"):
				if d, err := time.ParseDuration(d.RetryDelay); err == nil {
					e.RetryAfter = d
				}
			}
		}
	} else {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 || e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	if ra := retryAfter(resp.Header.Get("Retry-After")); ra > 0 {
		e.RetryAfter = ra
	}
	// A 410 from the feed is an expired cursor even if a proxy on the way replaced the body.
	if resp.StatusCode == http.StatusGone && e.Reason == "" {
		e.Reason = ReasonCursorExpired
	}
	return e
}

// grpcError turns a gRPC error into an APIError, or returns err as is when it is not a status.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &APIError{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			e.Reason = d.GetReason()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				if e.Fields == nil {
					e.Fields = map[string]string{}
				}
				e.Fields[v.GetField()] = v.GetDescription()
			}
		case *errdetails.RetryInfo:
			e.RetryAfter = d.GetRetryDelay().AsDuration()
		}
	}
	return e
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(at))
	}
	return 0
}

func codeOfHTTP(s int) codes.Code {
	switch s {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.Aborted
	case http.StatusGone:
		return codes.FailedPrecondition
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	}
	if s >= 500 {
		return codes.Internal
	}
	return codes.Unknown
}
