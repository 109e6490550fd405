package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcClient is the dashboard's side of OpenID Connect with Keycloak: the authorization-code flow with PKCE S256
// and the refresh_token grant through x/oauth2, the ID token verified by go-oidc against the realm's keys, and
// RP-initiated logout.
type oidcClient struct {
	// browserBase is where the browser is sent (authorize, logout): the realm under its public name. The gateway
	// itself calls the realm under backBase (token endpoint, keys).
	browserBase string
	clientID    string
	logoutURI   string
	oauth       oauth2.Config
	idTokens    *oidc.IDTokenVerifier
	http        *http.Client
}

// newOIDCClient talks to the realm whose public name is issuer (where browsers go) and which the gateway reaches
// under backBase.
func newOIDCClient(issuer, backBase, clientID, clientSecret, origin string, hc *http.Client, now func() time.Time) *oidcClient {
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), hc), backBase+"/protocol/openid-connect/certs")
	return &oidcClient{
		browserBase: issuer,
		clientID:    clientID,
		logoutURI:   origin + "/dashboard/signed-out",
		oauth: oauth2.Config{
			ClientID:     clientID,
			ClientSecret: clientSecret,
			RedirectURL:  origin + "/dashboard/callback",
			Scopes:       []string{oidc.ScopeOpenID},
			Endpoint: oauth2.Endpoint{
				AuthURL:  issuer + "/protocol/openid-connect/auth",
				TokenURL: backBase + "/protocol/openid-connect/token",
				// client_secret_basic: the secret never sits in a form body that a proxy might log.
				AuthStyle: oauth2.AuthStyleInHeader,
			},
		},
		idTokens: oidc.NewVerifier(issuer, keys, &oidc.Config{
			ClientID:             clientID,
			SupportedSigningAlgs: []string{oidc.RS256},
			Now:                  now,
		}),
		http: hc,
	}
}

// tokenSet is what the token endpoint answers, as the session keeps it.
type tokenSet struct {
	AccessToken      string
	IDToken          string
	RefreshToken     string
	ExpiresIn        int
	RefreshExpiresIn int
}

// errTokenRefused is a definite "no" from the token endpoint (invalid_grant: code used twice, session ended in
// Keycloak, refresh token expired) as opposed to Keycloak being unreachable.
var errTokenRefused = errors.New("token endpoint refused the grant")

// loginRequest is what one sign-in attempt must remember between the redirect to Keycloak and the callback.
type loginRequest struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Next     string    `json:"r"`
	Expires  time.Time `json:"e"`
}

func newLoginRequest(next string, now time.Time) (loginRequest, error) {
	var lr loginRequest
	var err error
	if lr.State, err = randomToken(32); err != nil {
		return lr, err
	}
	if lr.Nonce, err = randomToken(32); err != nil {
		return lr, err
	}
	lr.Verifier = oauth2.GenerateVerifier()
	lr.Next = next
	lr.Expires = now.Add(loginTimeout)
	return lr, nil
}

// authURL is Keycloak's authorization endpoint with the request's state, nonce and S256 code challenge.
func (c *oidcClient) authURL(lr loginRequest) string {
	return c.oauth.AuthCodeURL(lr.State, oauth2.S256ChallengeOption(lr.Verifier), oidc.Nonce(lr.Nonce))
}

// logoutURL ends the Keycloak session too; without id_token_hint Keycloak would ask the user to confirm.
func (c *oidcClient) logoutURL(idToken string) string {
	q := url.Values{"client_id": {c.clientID}, "post_logout_redirect_uri": {c.logoutURI}}
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	return c.browserBase + "/protocol/openid-connect/logout?" + q.Encode()
}

func (c *oidcClient) exchangeCode(ctx context.Context, code, verifier string) (tokenSet, error) {
	t, err := c.oauth.Exchange(c.withHTTP(ctx), code, oauth2.VerifierOption(verifier))
	return c.tokenSet(t, err)
}

func (c *oidcClient) refresh(ctx context.Context, refreshToken string) (tokenSet, error) {
	// A token with no access token is never valid, so the source goes straight to the refresh_token grant.
	t, err := c.oauth.TokenSource(c.withHTTP(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	return c.tokenSet(t, err)
}

func (c *oidcClient) withHTTP(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.http)
}

func (c *oidcClient) tokenSet(t *oauth2.Token, err error) (tokenSet, error) {
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil &&
			(re.Response.StatusCode == http.StatusBadRequest || re.Response.StatusCode == http.StatusUnauthorized) {
			return tokenSet{}, fmt.Errorf("%w: %s", errTokenRefused, re.ErrorCode)
		}
		return tokenSet{}, fmt.Errorf("token endpoint: %w", err)
	}
	if t.AccessToken == "" || t.ExpiresIn <= 0 {
		return tokenSet{}, errors.New("token endpoint answered without an access token")
	}
	ts := tokenSet{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, ExpiresIn: int(t.ExpiresIn)}
	ts.IDToken, _ = t.Extra("id_token").(string)
	// Keycloak's own field: how long the refresh token lasts (0 for an offline token).
	if s, ok := t.Extra("refresh_expires_in").(float64); ok {
		ts.RefreshExpiresIn = int(s)
	}
	return ts, nil
}

// idClaims are the ID token's claims the dashboard shows.
type idClaims struct {
	Subject  string `json:"sub"`
	Email    string `json:"email"`
	Name     string `json:"name"`
	Username string `json:"preferred_username"`
}

// checkIDToken verifies the ID token received from the token endpoint: signature, issuer, audience and expiry by
// go-oidc, and the nonce, which ties the answer to the login this browser started.
func (c *oidcClient) checkIDToken(ctx context.Context, raw, nonce string) (idClaims, error) {
	if raw == "" {
		return idClaims{}, errors.New("token endpoint answered without an id token")
	}
	tok, err := c.idTokens.Verify(c.withHTTP(ctx), raw)
	if err != nil {
		return idClaims{}, err
	}
	if !equalSecret(tok.Nonce, nonce) {
		return idClaims{}, errors.New("id token nonce does not match the login")
	}
	var cl idClaims
	if err := tok.Claims(&cl); err != nil {
		return idClaims{}, fmt.Errorf("id token claims: %w", err)
	}
	return cl, nil
}

// randomToken is n random bytes, base64url without padding.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
