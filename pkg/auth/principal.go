// Package auth verifies Keycloak access tokens and carries the caller's identity through a request. Every service
// uses it: the gateway for tenants' tokens, the case and webhook services for tokens of tenants and of the gateway
// acting on a tenant's behalf.
package auth

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Roles of the casekeeper realm.
const (
	RoleCasesRead      = "cases:read"
	RoleCasesWrite     = "cases:write"
	RoleWebhooksManage = "webhooks:manage"
	// RoleDelegate lets a service (the gateway) call other services on behalf of the caller it authenticated.
	RoleDelegate = "service:delegate"
)

var (
	// ErrNoToken means the request carried no bearer token.
	ErrNoToken = errors.New("auth: no bearer token")
	// ErrInvalidToken covers every token that must not be trusted: bad signature, wrong issuer, audience or type,
	// expired, not yet valid, revoked.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrNoTenant means a valid token that names no tenant called a tenant's API.
	ErrNoTenant = errors.New("auth: token has no tenant")
	// ErrForbidden means a valid token without the role the call needs.
	ErrForbidden = errors.New("auth: missing role")
)

// Principal is who is calling: taken from a verified token, or asserted by a trusted service for its caller.
// Treat it as read-only: the verifier hands the same Roles slice to every request made with one token.
type Principal struct {
	Subject  string
	ClientID string
	Tenant   string
	Roles    []string
	// Via is the client id of the service that asserted this identity; empty when the caller presented its own token.
	Via string
	// ExpiresAt is when the token presented stops being accepted: its exp claim plus the verifier's leeway, the
	// moment a new call with it would be refused. A long-running call (a stream) ends then. Zero when unknown.
	ExpiresAt time.Time
}

// Has reports whether the principal holds the role.
func (p Principal) Has(role string) bool { return slices.Contains(p.Roles, role) }

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the authenticated principal of the request.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
