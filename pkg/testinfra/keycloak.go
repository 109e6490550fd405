package testinfra

import (
	"context"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

// ClientToken returns a real access token of a client of the casekeeper realm, by client credentials, from the
// Keycloak at KEYCLOAK_URL. Demo clients and secrets are listed in the README.
func ClientToken(t testing.TB, clientID, secret string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	login := clientcredentials.Config{ClientID: clientID, ClientSecret: secret,
		TokenURL: KeycloakURL(t) + "/realms/casekeeper/protocol/openid-connect/token"}
	tok, err := login.Token(ctx)
	if err != nil {
		t.Fatalf("testinfra: token for %s: %v", clientID, err)
	}
	return tok.AccessToken
}

// Eventually polls cond until it holds, and fails t when it still does not after within.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
