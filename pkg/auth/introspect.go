package auth

import (
	"context"
	"fmt"
	"net/http"

	"github.com/Nerzal/gocloak/v13"
)

// introspector asks Keycloak's token introspection endpoint (RFC 7662) whether a token is still active, through
// gocloak's client for Keycloak's API (neither go-oidc nor x/oauth2 covers introspection), with the service's own
// client credentials.
type introspector struct {
	keycloak     *gocloak.GoCloak
	realm        string
	clientID     string
	clientSecret string
}

func newIntrospector(keycloakURL, realm, clientID, clientSecret string, hc *http.Client) *introspector {
	kc := gocloak.NewClient(keycloakURL)
	if hc.Transport != nil {
		kc.RestyClient().SetTransport(hc.Transport)
	}
	kc.RestyClient().SetTimeout(hc.Timeout)
	return &introspector{keycloak: kc, realm: realm, clientID: clientID, clientSecret: clientSecret}
}

func (i *introspector) active(ctx context.Context, token string) (bool, error) {
	res, err := i.keycloak.RetrospectToken(ctx, token, i.clientID, i.clientSecret, i.realm)
	if err != nil {
		return false, fmt.Errorf("token introspection: %w", err)
	}
	return res.Active != nil && *res.Active, nil
}
