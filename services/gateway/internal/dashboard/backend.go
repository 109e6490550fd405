package dashboard

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// Webhooks is the part of casekeeperv1.WebhookServiceClient the dashboard uses.
type Webhooks interface {
	CreateEndpoint(ctx context.Context, in *casekeeperv1.CreateEndpointRequest, opts ...grpc.CallOption) (*casekeeperv1.CreateEndpointResponse, error)
	GetEndpoint(ctx context.Context, in *casekeeperv1.GetEndpointRequest, opts ...grpc.CallOption) (*casekeeperv1.GetEndpointResponse, error)
	ListEndpoints(ctx context.Context, in *casekeeperv1.ListEndpointsRequest, opts ...grpc.CallOption) (*casekeeperv1.ListEndpointsResponse, error)
	UpdateEndpoint(ctx context.Context, in *casekeeperv1.UpdateEndpointRequest, opts ...grpc.CallOption) (*casekeeperv1.UpdateEndpointResponse, error)
	DeleteEndpoint(ctx context.Context, in *casekeeperv1.DeleteEndpointRequest, opts ...grpc.CallOption) (*casekeeperv1.DeleteEndpointResponse, error)
	RevealSecret(ctx context.Context, in *casekeeperv1.RevealSecretRequest, opts ...grpc.CallOption) (*casekeeperv1.RevealSecretResponse, error)
	RotateSecret(ctx context.Context, in *casekeeperv1.RotateSecretRequest, opts ...grpc.CallOption) (*casekeeperv1.RotateSecretResponse, error)
	SendTestEvent(ctx context.Context, in *casekeeperv1.SendTestEventRequest, opts ...grpc.CallOption) (*casekeeperv1.SendTestEventResponse, error)
	PreviewTransform(ctx context.Context, in *casekeeperv1.PreviewTransformRequest, opts ...grpc.CallOption) (*casekeeperv1.PreviewTransformResponse, error)
	GetNoticeSettings(ctx context.Context, in *casekeeperv1.GetNoticeSettingsRequest, opts ...grpc.CallOption) (*casekeeperv1.GetNoticeSettingsResponse, error)
	UpdateNoticeSettings(ctx context.Context, in *casekeeperv1.UpdateNoticeSettingsRequest, opts ...grpc.CallOption) (*casekeeperv1.UpdateNoticeSettingsResponse, error)
	ListNotices(ctx context.Context, in *casekeeperv1.ListNoticesRequest, opts ...grpc.CallOption) (*casekeeperv1.ListNoticesResponse, error)
	GetEndpointHealth(ctx context.Context, in *casekeeperv1.GetEndpointHealthRequest, opts ...grpc.CallOption) (*casekeeperv1.GetEndpointHealthResponse, error)
	ListDeliveries(ctx context.Context, in *casekeeperv1.ListDeliveriesRequest, opts ...grpc.CallOption) (*casekeeperv1.ListDeliveriesResponse, error)
	GetDelivery(ctx context.Context, in *casekeeperv1.GetDeliveryRequest, opts ...grpc.CallOption) (*casekeeperv1.GetDeliveryResponse, error)
	ResendDelivery(ctx context.Context, in *casekeeperv1.ResendDeliveryRequest, opts ...grpc.CallOption) (*casekeeperv1.ResendDeliveryResponse, error)
	RecoverFailed(ctx context.Context, in *casekeeperv1.RecoverFailedRequest, opts ...grpc.CallOption) (*casekeeperv1.RecoverFailedResponse, error)
}

// Cases reads cases; casekeeperv1.CaseQueryServiceClient (the gateway, audited) and CaseServiceClient both fit.
type Cases interface {
	GetCase(ctx context.Context, in *casekeeperv1.GetCaseRequest, opts ...grpc.CallOption) (*casekeeperv1.GetCaseResponse, error)
	ListCases(ctx context.Context, in *casekeeperv1.ListCasesRequest, opts ...grpc.CallOption) (*casekeeperv1.ListCasesResponse, error)
}

// Events reads the tenant's change feed (casekeeperv1.CaseQueryServiceClient), from which a case's timeline is
// taken.
type Events interface {
	ListCaseEvents(ctx context.Context, in *casekeeperv1.ListCaseEventsRequest, opts ...grpc.CallOption) (*casekeeperv1.ListCaseEventsResponse, error)
}

// asUser makes a backing call carry the signed-in user's own access token: the services then see the user's tenant
// and roles exactly as if the user had called the API, and enforce them themselves.
func asUser(ctx context.Context, accessToken string) context.Context {
	return metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+accessToken))
}

// fieldErrors maps a call's InvalidArgument details to form fields: "endpoint.url" → "url". Violations of fields
// the form does not show are returned under "" and shown above the form.
func fieldErrors(err error, prefix string) (map[string]string, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return nil, false
	}
	out := map[string]string{}
	add := func(field, msg string) {
		if prev, ok := out[field]; ok {
			out[field] = prev + "; " + msg
			return
		}
		out[field] = msg
	}
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			add(strings.TrimPrefix(v.GetField(), prefix), v.GetDescription())
		}
	}
	if len(out) == 0 {
		out[""] = st.Message()
	}
	return out, true
}

// errorPage is what the user sees when a backing call fails for a reason other than their input.
type errorPage struct {
	Status  int
	Title   string
	Message string
	// Role is set when the page is about a missing role.
	Role string
}

func pageFor(err error) errorPage {
	switch status.Code(err) {
	case codes.NotFound:
		return errorPage{Status: 404, Title: "Not found", Message: "There is nothing here for your organisation. It may have been deleted."}
	case codes.PermissionDenied:
		return errorPage{Status: 403, Title: "Not allowed", Message: "Your account does not have the role this page needs. Ask your Case-keeper administrator."}
	case codes.Unauthenticated:
		return errorPage{Status: 401, Title: "Signed out", Message: "Your session is no longer valid. Sign in again."}
	case codes.Unavailable, codes.DeadlineExceeded:
		return errorPage{Status: 503, Title: "Service unavailable", Message: "A Case-keeper service did not answer. Try again in a moment."}
	case codes.ResourceExhausted:
		return errorPage{Status: 429, Title: "Too many requests", Message: "Slow down a little and try again in a few seconds."}
	case codes.FailedPrecondition, codes.Aborted, codes.AlreadyExists, codes.InvalidArgument:
		return errorPage{Status: 409, Title: "Not possible right now", Message: status.Convert(err).Message()}
	}
	if errors.Is(err, context.Canceled) {
		return errorPage{Status: 499, Title: "Cancelled", Message: "The request was cancelled."}
	}
	return errorPage{Status: 500, Title: "Something went wrong", Message: "The request failed. Try again; if it keeps failing, tell your Case-keeper operator."}
}
