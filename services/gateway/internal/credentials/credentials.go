// Package credentials manages tenants' API credentials: confidential Keycloak clients for the client-credentials
// grant, whose tokens read the tenant's cases (interval fetch). The gateway creates, lists, rotates and revokes
// them through Keycloak's admin API (gocloak), logged in as its own service account for this job
// (GATEWAY_CREDENTIALS_CLIENT_ID), which holds realm-management's manage-clients and nothing else: it cannot
// touch users, roles or the realm.
//
// What a credential can do is fixed here, never chosen by the tenant admin: its tokens carry the tenant as a
// hard-coded claim, the audience casekeeper-api and the single role cases:read, each from a mapper on the client
// itself (so no user role mapping is needed, which manage-clients could not make). The client is marked with the
// tenant and the purpose in its attributes; the gateway lists, rotates and revokes only clients marked with the
// caller's tenant, so a tenant admin never reaches another tenant's credential or any other client.
package credentials

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/Nerzal/gocloak/v13"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/validation"
)

// MaxPerTenant bounds a tenant's credentials, so that one tenant admin cannot fill the realm with clients.
const MaxPerTenant = 20

// Attributes that mark a credential's client.
const (
	attrTenant  = "casekeeper.tenant"
	attrPurpose = "casekeeper.purpose"
	attrName    = "casekeeper.name"
	attrCreated = "casekeeper.created"
	purpose     = "api-credential"
)

var (
	// ErrNotFound is a credential that is not the tenant's (or does not exist).
	ErrNotFound = errors.New("no such credential")
	// ErrNoAccess is Keycloak refusing the gateway's own login: the service account is missing (a realm imported
	// before it existed) or its secret is not the realm's.
	ErrNoAccess = errors.New("the gateway cannot log in to Keycloak as its credentials account")
	// ErrLimit is a tenant that has MaxPerTenant credentials already.
	ErrLimit = fmt.Errorf("a tenant has at most %d API credentials: revoke one first", MaxPerTenant)
)

// Credential is one client, as its tenant sees it.
type Credential struct {
	ClientID string
	Name     string
	Created  time.Time
}

// Keycloak manages credentials in one realm.
type Keycloak struct {
	gc            *gocloak.GoCloak
	realm         string
	adminClientID string
	adminSecret   string
	now           func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// New returns a manager that logs in to the realm as the client adminClientID; httpClient, when set, carries the
// calls (its transport and timeout).
func New(keycloakURL, realm, adminClientID, adminSecret string, httpClient *http.Client) *Keycloak {
	gc := gocloak.NewClient(strings.TrimRight(keycloakURL, "/"))
	if httpClient != nil {
		if httpClient.Transport != nil {
			gc.RestyClient().SetTransport(httpClient.Transport)
		}
		if httpClient.Timeout > 0 {
			gc.RestyClient().SetTimeout(httpClient.Timeout)
		}
	} else {
		gc.RestyClient().SetTimeout(10 * time.Second)
	}
	return &Keycloak{gc: gc, realm: realm, adminClientID: adminClientID, adminSecret: adminSecret, now: time.Now}
}

// adminToken is the service account's access token, renewed 30 s before it expires.
func (k *Keycloak) adminToken(ctx context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.token != "" && k.now().Before(k.expires) {
		return k.token, nil
	}
	jwt, err := k.gc.LoginClient(ctx, k.adminClientID, k.adminSecret, k.realm)
	var apiErr *gocloak.APIError
	if errors.As(err, &apiErr) && (apiErr.Code == http.StatusUnauthorized || apiErr.Code == http.StatusBadRequest) {
		return "", fmt.Errorf("%w %s: %v", ErrNoAccess, k.adminClientID, err)
	}
	if err != nil {
		return "", fmt.Errorf("credentials: logging in to Keycloak as %s: %w", k.adminClientID, err)
	}
	k.token, k.expires = jwt.AccessToken, k.now().Add(time.Duration(jwt.ExpiresIn)*time.Second-30*time.Second)
	return k.token, nil
}

// CheckName refuses a name that is empty, longer than 64 characters or not plain one-line text.
func CheckName(name string) error {
	var errs validation.Errors
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		errs.Add("name", "is required")
	case n > 64:
		errs.Add("name", "must be at most 64 characters (got %d)", n)
	default:
		errs.Text("name", name, validation.TextRule{})
	}
	return errs.Err()
}

// List returns the tenant's credentials, oldest first.
func (k *Keycloak) List(ctx context.Context, tenant string) ([]Credential, error) {
	clients, err := k.tenantClients(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Credential, 0, len(clients))
	for _, c := range clients {
		out = append(out, view(c))
	}
	slices.SortFunc(out, func(a, b Credential) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Create makes a credential for the tenant and returns it with its secret, which the dashboard shows once.
func (k *Keycloak) Create(ctx context.Context, tenant, name string) (Credential, string, error) {
	if err := CheckName(name); err != nil {
		return Credential{}, "", err
	}
	existing, err := k.tenantClients(ctx, tenant)
	if err != nil {
		return Credential{}, "", err
	}
	if len(existing) >= MaxPerTenant {
		return Credential{}, "", ErrLimit
	}
	token, err := k.adminToken(ctx)
	if err != nil {
		return Credential{}, "", err
	}
	clientID := tenant + "-api-" + randomSuffix()
	created := k.now().UTC().Truncate(time.Second)
	attrs := map[string]string{attrTenant: tenant, attrPurpose: purpose, attrName: name, attrCreated: created.Format(time.RFC3339),
		"client_credentials.use_refresh_token": "false"}
	mappers := []gocloak.ProtocolMapperRepresentation{
		mapper("tenant", "oidc-hardcoded-claim-mapper", map[string]string{"claim.name": "tenant", "claim.value": tenant,
			"jsonType.label": "String", "access.token.claim": "true", "introspection.token.claim": "true"}),
		mapper("audience casekeeper-api", "oidc-audience-mapper", map[string]string{"included.custom.audience": "casekeeper-api",
			"access.token.claim": "true", "introspection.token.claim": "true"}),
		mapper("role cases:read", "oidc-hardcoded-role-mapper", map[string]string{"role": auth.RoleCasesRead}),
	}
	id, err := k.gc.CreateClient(ctx, token, k.realm, gocloak.Client{
		ClientID: gocloak.StringP(clientID), Name: gocloak.StringP(name),
		Description: gocloak.StringP("API credential of tenant " + tenant + ", made in the Case-keeper Dashboard"),
		Enabled:     gocloak.BoolP(true), Protocol: gocloak.StringP("openid-connect"),
		PublicClient: gocloak.BoolP(false), ClientAuthenticatorType: gocloak.StringP("client-secret"),
		ServiceAccountsEnabled: gocloak.BoolP(true), StandardFlowEnabled: gocloak.BoolP(false),
		DirectAccessGrantsEnabled: gocloak.BoolP(false), ImplicitFlowEnabled: gocloak.BoolP(false),
		// The mappers above and the "roles" scope (which writes realm_access, where the hard-coded role lands) make
		// the token; without full scope no role of the service account user (the realm's defaults) comes along.
		FullScopeAllowed: gocloak.BoolP(false), DefaultClientScopes: &[]string{"basic", "roles"}, OptionalClientScopes: &[]string{},
		Attributes: &attrs, ProtocolMappers: &mappers,
	})
	if err != nil {
		return Credential{}, "", fmt.Errorf("credentials: creating the client: %w", err)
	}
	secret, err := k.gc.GetClientSecret(ctx, token, k.realm, id)
	if err != nil || secret.Value == nil {
		return Credential{}, "", fmt.Errorf("credentials: reading the new client's secret: %w", err)
	}
	return Credential{ClientID: clientID, Name: name, Created: created}, *secret.Value, nil
}

// Rotate gives the tenant's credential a new secret; the old one stops working at once.
func (k *Keycloak) Rotate(ctx context.Context, tenant, clientID string) (string, error) {
	c, err := k.tenantClient(ctx, tenant, clientID)
	if err != nil {
		return "", err
	}
	token, err := k.adminToken(ctx)
	if err != nil {
		return "", err
	}
	secret, err := k.gc.RegenerateClientSecret(ctx, token, k.realm, *c.ID)
	if err != nil || secret.Value == nil {
		return "", fmt.Errorf("credentials: rotating the secret: %w", err)
	}
	return *secret.Value, nil
}

// Revoke deletes the tenant's credential: it gets no token any more.
func (k *Keycloak) Revoke(ctx context.Context, tenant, clientID string) error {
	c, err := k.tenantClient(ctx, tenant, clientID)
	if err != nil {
		return err
	}
	token, err := k.adminToken(ctx)
	if err != nil {
		return err
	}
	if err := k.gc.DeleteClient(ctx, token, k.realm, *c.ID); err != nil {
		return fmt.Errorf("credentials: deleting the client: %w", err)
	}
	return nil
}

// tenantClients are the clients marked as the tenant's credentials. Keycloak searches client ids by a part (its
// attribute search takes only the attributes its operator made searchable); the marks are checked here, so that
// what the search matches loosely is never taken for the tenant's.
func (k *Keycloak) tenantClients(ctx context.Context, tenant string) ([]*gocloak.Client, error) {
	token, err := k.adminToken(ctx)
	if err != nil {
		return nil, err
	}
	prefix := tenant + "-api-"
	clients, err := k.gc.GetClients(ctx, token, k.realm, gocloak.GetClientsParams{ClientID: &prefix, Search: gocloak.BoolP(true),
		Max: gocloak.IntP(10 * MaxPerTenant)})
	if err != nil {
		return nil, fmt.Errorf("credentials: listing clients: %w", err)
	}
	var out []*gocloak.Client
	for _, c := range clients {
		if owned(c, tenant) && strings.HasPrefix(gocloak.PString(c.ClientID), prefix) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (k *Keycloak) tenantClient(ctx context.Context, tenant, clientID string) (*gocloak.Client, error) {
	if !strings.HasPrefix(clientID, tenant+"-api-") {
		return nil, ErrNotFound
	}
	token, err := k.adminToken(ctx)
	if err != nil {
		return nil, err
	}
	clients, err := k.gc.GetClients(ctx, token, k.realm, gocloak.GetClientsParams{ClientID: &clientID})
	if err != nil {
		return nil, fmt.Errorf("credentials: reading the client: %w", err)
	}
	for _, c := range clients {
		if c.ClientID != nil && *c.ClientID == clientID && c.ID != nil && owned(c, tenant) {
			return c, nil
		}
	}
	return nil, ErrNotFound
}

func owned(c *gocloak.Client, tenant string) bool {
	if c.Attributes == nil {
		return false
	}
	a := *c.Attributes
	return a[attrTenant] == tenant && a[attrPurpose] == purpose
}

func view(c *gocloak.Client) Credential {
	a := *c.Attributes
	created, _ := time.Parse(time.RFC3339, a[attrCreated])
	return Credential{ClientID: gocloak.PString(c.ClientID), Name: a[attrName], Created: created}
}

func mapper(name, kind string, config map[string]string) gocloak.ProtocolMapperRepresentation {
	return gocloak.ProtocolMapperRepresentation{Name: gocloak.StringP(name), Protocol: gocloak.StringP("openid-connect"),
		ProtocolMapper: gocloak.StringP(kind), Config: &config}
}

// randomSuffix is 10 random base32 characters: 50 bits, so that client ids are not guessed.
func randomSuffix() string {
	b := make([]byte, 7)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:10]
}
