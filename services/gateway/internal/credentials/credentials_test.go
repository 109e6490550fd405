package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/pkg/validation"
)

// tokenStatus asks Keycloak for a token with the client's credentials and returns the HTTP status and the token.
func tokenStatus(t *testing.T, kc, clientID, secret string) (int, string) {
	t.Helper()
	resp, err := http.PostForm(kc+"/realms/"+testinfra.Realm+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	_ = decodeJSON(resp, &body)
	return resp.StatusCode, body.AccessToken
}

// TestCredentialsInRealKeycloak: a credential made for a tenant gets tokens that the gateway's verifier accepts as
// that tenant's, with cases:read and nothing more; only its tenant lists, rotates and revokes it; a rotated
// secret and a revoked credential get no token.
func TestCredentialsInRealKeycloak(t *testing.T) {
	kc := testinfra.KeycloakURL(t)
	k := New(kc, testinfra.Realm, "casekeeper-credentials", "credentialsDevSecret", nil)
	ctx := context.Background()
	verifier, err := auth.NewVerifier(auth.VerifierConfig{KeycloakURL: kc, Realm: testinfra.Realm, Audience: "casekeeper-api"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	c, secret, err := k.Create(ctx, "acme", "CRM nightly sync")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = k.Revoke(context.Background(), "acme", c.ClientID) })
	if !strings.HasPrefix(c.ClientID, "acme-api-") || secret == "" {
		t.Fatalf("created %+v with secret %q", c, secret)
	}
	code, token := tokenStatus(t, kc, c.ClientID, secret)
	if code != http.StatusOK {
		t.Fatalf("token for the new credential: HTTP %d", code)
	}
	p, err := verifier.Verify(ctx, token)
	if err != nil {
		t.Fatalf("the gateway's verifier refuses the credential's token: %v", err)
	}
	if p.Tenant != "acme" || !p.Has(auth.RoleCasesRead) || p.Has(auth.RoleWebhooksManage) || p.Has(auth.RoleCasesWrite) || p.Has(auth.RoleDelegate) {
		t.Fatalf("the credential's token is tenant %q with roles %v, want acme with cases:read only", p.Tenant, p.Roles)
	}

	list, err := k.List(ctx, "acme")
	if err != nil || !slices.ContainsFunc(list, func(x Credential) bool { return x.ClientID == c.ClientID && x.Name == "CRM nightly sync" }) {
		t.Fatalf("acme's list %v (%v) lacks %s", list, err, c.ClientID)
	}
	other, err := k.List(ctx, "globex")
	if err != nil || slices.ContainsFunc(other, func(x Credential) bool { return x.ClientID == c.ClientID }) {
		t.Fatalf("globex's list %v (%v) holds acme's credential", other, err)
	}
	// Another tenant, or any client that is not a credential, is out of reach.
	if _, err := k.Rotate(ctx, "globex", c.ClientID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("globex rotating acme's credential: %v", err)
	}
	if err := k.Revoke(ctx, "globex", c.ClientID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("globex revoking acme's credential: %v", err)
	}
	for _, id := range []string{"casekeeper-gateway", "acme-backend", "acme-api-" + strings.Repeat("a", 10)} {
		if err := k.Revoke(ctx, "acme", id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoking %s: %v, want ErrNotFound", id, err)
		}
	}
	if code, _ := tokenStatus(t, kc, "acme-backend", "acmeBackendDevSecret"); code != http.StatusOK {
		t.Fatalf("acme-backend after the refused revoke: HTTP %d", code)
	}

	rotated, err := k.Rotate(ctx, "acme", c.ClientID)
	if err != nil || rotated == secret {
		t.Fatalf("Rotate: %v", err)
	}
	if code, _ := tokenStatus(t, kc, c.ClientID, secret); code != http.StatusUnauthorized {
		t.Fatalf("the old secret after a rotation: HTTP %d, want 401", code)
	}
	if code, _ := tokenStatus(t, kc, c.ClientID, rotated); code != http.StatusOK {
		t.Fatalf("the new secret: HTTP %d", code)
	}
	if err := k.Revoke(ctx, "acme", c.ClientID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if code, _ := tokenStatus(t, kc, c.ClientID, rotated); code != http.StatusUnauthorized {
		t.Fatalf("a revoked credential: HTTP %d, want 401", code)
	}
}

func TestAWrongAccountSecretIsNoAccess(t *testing.T) {
	k := New(testinfra.KeycloakURL(t), testinfra.Realm, "casekeeper-credentials", "not-the-secret", nil)
	if _, err := k.List(context.Background(), "acme"); !errors.Is(err, ErrNoAccess) {
		t.Fatalf("List with a wrong secret: %v, want ErrNoAccess", err)
	}
}

func TestBadNamesAreRefusedNamingTheField(t *testing.T) {
	for _, name := range []string{"", "   ", strings.Repeat("n", 65), "line\nbreak", "bidi\u202e"} {
		err := CheckName(name)
		if fe, ok := validation.As(err); !ok || fe[0].Field != "name" {
			t.Errorf("name %q: %v, want an error naming name", name, err)
		}
	}
	if err := CheckName("CRM nightly sync — prod"); err != nil {
		t.Errorf("a plain name: %v", err)
	}
}

func decodeJSON(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
