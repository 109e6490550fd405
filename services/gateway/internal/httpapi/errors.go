package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/casekeeper/core/services/gateway/internal/grpcapi"
	"github.com/casekeeper/core/services/gateway/internal/ratelimit"
)

// errorMarshaler writes errors as the google.rpc.Status JSON the OpenAPI description documents:
// {"code": <gRPC code>, "message": "…", "details": [{"@type": "…BadRequest", "field_violations": [{"field": "after", …}]}]}.
var errorMarshaler = protojson.MarshalOptions{UseProtoNames: true}

// writeError is the one way the HTTP side answers an error, whether it came from a gRPC call through grpc-gateway
// or from the HTTP layer itself (body too large, rate limit, SSE set-up).
func writeError(w http.ResponseWriter, err error) {
	httpStatus := 0
	var custom *runtime.HTTPStatusError
	if errors.As(err, &custom) {
		httpStatus, err = custom.HTTPStatus, custom.Err
	}
	st := status.Convert(err)
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Del("ETag")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	switch st.Code() {
	case codes.Unauthenticated:
		// RFC 6750: tell the client it needs (another) bearer token, without saying what was wrong with this one.
		h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	case codes.FailedPrecondition:
		// An expired feed cursor is 410 Gone, as a too-old resource version is elsewhere: the client must resync.
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == grpcapi.ReasonCursorExpired && ei.GetDomain() == grpcapi.ErrorDomain {
				httpStatus = http.StatusGone
			}
		}
	case codes.ResourceExhausted:
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				h.Set("Retry-After", ratelimit.RetryAfterSeconds(ri.GetRetryDelay().AsDuration()))
			}
		}
	}
	body, merr := errorMarshaler.Marshal(st.Proto())
	if merr != nil {
		body = []byte(`{"code":13,"message":"internal error"}`)
		httpStatus = http.StatusInternalServerError
	}
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

// gatewayErrorHandler plugs writeError into grpc-gateway (for RPC errors and for its routing errors: unknown path,
// wrong method, unparsable query parameter).
func gatewayErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	writeError(w, err)
}

// routingErrorHandler answers a request no route takes with its own HTTP status: grpc-gateway's default turns a
// wrong method into UNIMPLEMENTED, which is 501, a server error, where the client is the one that is wrong (405).
func routingErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, httpStatus int) {
	code := codes.NotFound
	switch httpStatus {
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	case http.StatusMethodNotAllowed:
		code = codes.InvalidArgument
	}
	writeError(w, statusError(httpStatus, code, http.StatusText(httpStatus)))
}

// statusError is a gRPC status with an HTTP status of its own, for the cases gRPC has no code for (413).
func statusError(httpStatus int, code codes.Code, msg string) error {
	return &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: status.Error(code, msg)}
}
