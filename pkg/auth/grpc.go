package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/tenant"
)

// Metadata keys by which a delegating service (holding RoleDelegate) names the caller it acts for.
const (
	mdSubject = "x-casekeeper-subject"
	mdClient  = "x-casekeeper-client"
	mdTenant  = "x-casekeeper-tenant"
	mdRoles   = "x-casekeeper-roles"
)

// Policy names the role each gRPC method needs. Methods missing from it are refused, so a new RPC is closed until
// someone decides who may call it. Public lists methods that need no token (health checks, reflection).
type Policy struct {
	Roles  map[string]string
	Public func(fullMethod string) bool
	// Admit, when set, runs after the caller is authenticated and authorised, with its principal: a place for
	// per-client checks such as a rate limit. An error it returns (a gRPC status) refuses the call.
	Admit func(ctx context.Context, fullMethod string, p Principal) error
}

// IsInfrastructure is the usual Public: gRPC health checks and server reflection.
func IsInfrastructure(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

// TokenVerifier is what the interceptors need of a Verifier.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (Principal, error)
}

// Authenticate verifies the bearer token of an incoming call, applies a delegated identity when the caller may
// assert one, and checks the role the policy asks for.
func Authenticate(ctx context.Context, v TokenVerifier, p Policy, fullMethod string) (context.Context, error) {
	if p.Public != nil && p.Public(fullMethod) {
		return ctx, nil
	}
	role, known := p.Roles[fullMethod]
	if !known {
		return nil, status.Error(codes.PermissionDenied, "method is not open to any role")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	raw, err := bearer(md)
	if err != nil {
		return nil, ToStatus(err)
	}
	principal, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, ToStatus(err)
	}
	if principal.Has(RoleDelegate) && len(md.Get(mdSubject)) > 0 {
		principal, err = delegated(md, principal)
		if err != nil {
			return nil, err
		}
	}
	if role != "" && !principal.Has(role) {
		return nil, status.Errorf(codes.PermissionDenied, "the token lacks the role %s", role)
	}
	if p.Admit != nil {
		if err := p.Admit(ctx, fullMethod, principal); err != nil {
			return nil, err
		}
	}
	return WithPrincipal(ctx, principal), nil
}

// delegated reads the identity a delegating service asserts. Each key must come exactly once (two values mean
// something upstream appended instead of replacing, and we will not guess which one is meant), the tenant must be
// well formed, and the asserted roles may not include RoleDelegate: delegation does not chain.
func delegated(md metadata.MD, via Principal) (Principal, error) {
	for _, k := range []string{mdSubject, mdClient, mdTenant, mdRoles} {
		if len(md.Get(k)) > 1 {
			return Principal{}, status.Errorf(codes.InvalidArgument, "metadata %s given more than once", k)
		}
	}
	p := Principal{
		Subject:   first(md, mdSubject),
		ClientID:  first(md, mdClient),
		Tenant:    first(md, mdTenant),
		Roles:     strings.Fields(first(md, mdRoles)),
		Via:       via.ClientID,
		ExpiresAt: via.ExpiresAt,
	}
	if p.Tenant != "" && !tenant.Valid(p.Tenant) {
		return Principal{}, status.Errorf(codes.InvalidArgument, "metadata %s is not a tenant id", mdTenant)
	}
	if p.Has(RoleDelegate) {
		return Principal{}, status.Error(codes.PermissionDenied, "a delegated identity cannot delegate again")
	}
	return p, nil
}

// ToStatus maps auth errors to gRPC statuses without revealing why a token was refused.
func ToStatus(err error) error {
	switch {
	case errors.Is(err, ErrNoToken):
		return status.Error(codes.Unauthenticated, "missing bearer token in the authorization metadata")
	case errors.Is(err, ErrInvalidToken):
		return status.Error(codes.Unauthenticated, "invalid or expired access token")
	case errors.Is(err, ErrNoTenant):
		return status.Error(codes.PermissionDenied, "the token names no tenant")
	case errors.Is(err, ErrForbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	default:
		return status.Error(codes.Unavailable, "cannot verify the access token now")
	}
}

// UnaryServerInterceptor authenticates unary calls.
func UnaryServerInterceptor(v TokenVerifier, p Policy) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := Authenticate(ctx, v, p, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor authenticates streaming calls.
func StreamServerInterceptor(v TokenVerifier, p Policy) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := Authenticate(ss.Context(), v, p, info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// TenantOf returns the tenant of the request's principal, or ErrNoTenant.
func TenantOf(ctx context.Context) (Principal, error) {
	p, ok := FromContext(ctx)
	if !ok {
		return Principal{}, ErrNoToken
	}
	if p.Tenant == "" {
		return Principal{}, ErrNoTenant
	}
	return p, nil
}

// bearer returns the token of the one "authorization: Bearer …" value. Several values are refused rather than
// picking one: they mean the metadata was appended to somewhere on the way.
func bearer(md metadata.MD) (string, error) {
	vs := md.Get("authorization")
	switch {
	case len(vs) == 0:
		return "", ErrNoToken
	case len(vs) > 1:
		return "", fmt.Errorf("%w: more than one authorization value", ErrInvalidToken)
	}
	v := vs[0]
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		if t := strings.TrimSpace(v[7:]); t != "" {
			return t, nil
		}
	}
	return "", ErrNoToken
}

// BearerToken extracts the token of an HTTP Authorization header value ("Bearer …"), or "".
func BearerToken(header string) string {
	if len(header) > 7 && strings.EqualFold(header[:7], "bearer ") {
		return strings.TrimSpace(header[7:])
	}
	return ""
}

func first(md metadata.MD, key string) string {
	if vs := md.Get(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}
