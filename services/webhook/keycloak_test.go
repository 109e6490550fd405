package webhooksvc_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

// Against the real Keycloak: the gateway's token (service:delegate) naming an administrator of acme, exactly as
// the gateway calls, may manage acme's endpoints; a tenant backend's own token (cases:read only) is refused; the
// delegated tenant is the one the calls act on.
func TestKeycloakTokens(t *testing.T) {
	kc := testinfra.KeycloakURL(t)
	e := newEnv(t)
	e.start(func(c *webhooksvc.Config) {
		c.Verifier = nil
		c.Keycloak.URL, c.Keycloak.Realm, c.Keycloak.Audience = kc, "casekeeper", "casekeeper-api"
	})
	gateway := auth.NewClientCredentials(kc, "casekeeper", "casekeeper-gateway", "gatewayDevSecret")
	conn := testinfra.Dial(t, e.svc.GRPCAddr(), grpc.WithUnaryInterceptor(auth.DelegatingInterceptor(gateway)))
	viaGateway := casekeeperv1.NewWebhookServiceClient(conn)
	admin := auth.WithPrincipal(context.Background(), auth.Principal{Subject: "admin@acme.test", Tenant: "acme",
		Roles: []string{auth.RoleWebhooksManage, auth.RoleCasesRead}})
	rc := newReceiver(t, nil)
	created, err := viaGateway.CreateEndpoint(admin, &casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{Url: rc.URL}})
	if err != nil {
		t.Fatalf("delegated admin: %v", err)
	}
	viewer := auth.WithPrincipal(context.Background(), auth.Principal{Subject: "viewer@acme.test", Tenant: "acme",
		Roles: []string{auth.RoleCasesRead}})
	if _, err := viaGateway.ListEndpoints(viewer, &casekeeperv1.ListEndpointsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("delegated viewer: %v, want PermissionDenied", err)
	}
	globex := auth.WithPrincipal(context.Background(), auth.Principal{Subject: "admin@globex.test", Tenant: "globex",
		Roles: []string{auth.RoleWebhooksManage}})
	if _, err := viaGateway.GetEndpoint(globex, &casekeeperv1.GetEndpointRequest{Id: created.GetEndpoint().GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("other tenant: %v, want NotFound", err)
	}

	ctx := testinfra.Bearer(context.Background(), testinfra.ClientToken(t, "acme-backend", "acmeBackendDevSecret"))
	if _, err := e.client.ListEndpoints(ctx, &casekeeperv1.ListEndpointsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("acme-backend token: %v, want PermissionDenied", err)
	}
	// A backend may not pose as someone else through the delegation metadata: only service:delegate may.
	ctx = metadata.AppendToOutgoingContext(ctx, "x-casekeeper-subject", "x", "x-casekeeper-tenant", "acme", "x-casekeeper-roles", auth.RoleWebhooksManage)
	if _, err := e.client.ListEndpoints(ctx, &casekeeperv1.ListEndpointsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("acme-backend asserting an identity: %v, want PermissionDenied", err)
	}
	ctx = testinfra.Bearer(context.Background(), "not-a-token")
	if _, err := e.client.ListEndpoints(ctx, &casekeeperv1.ListEndpointsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("garbage token: %v, want Unauthenticated", err)
	}
}
