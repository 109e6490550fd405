package gatewaysvc

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/auth"
)

// verifyCaller authenticates the HTTP caller of a route that grpc-gateway forwards straight to a backing service
// (the webhook settings). grpc-gateway puts the caller's Authorization header in the outgoing metadata; it is
// verified here exactly as the gateway's own gRPC server would (same verifier, policy and rate limit), the principal
// goes into the context, and the delegating interceptor that runs next replaces the caller's token with the
// gateway's own. Errors of the backing service that could reveal its internals are masked on the way back.
func verifyCaller(v auth.TokenVerifier, p auth.Policy, log *slog.Logger) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		authed, err := auth.Authenticate(metadata.NewIncomingContext(ctx, md), v, p, method)
		if err != nil {
			return err
		}
		principal, _ := auth.FromContext(authed)
		if principal.Tenant == "" {
			return auth.ToStatus(auth.ErrNoTenant)
		}
		err = invoker(auth.WithPrincipal(ctx, principal), method, req, reply, cc, opts...)
		switch status.Code(err) {
		case codes.Unavailable:
			log.WarnContext(ctx, "webhook service unavailable", "method", method, "error", err)
			return status.Error(codes.Unavailable, "webhook service unavailable; try again")
		case codes.Internal, codes.Unknown, codes.DataLoss:
			log.ErrorContext(ctx, "webhook service failed", "method", method, "error", err)
			return status.Error(codes.Internal, "internal error")
		}
		return err
	}
}
