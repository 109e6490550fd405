package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// oidcClient speaks the parts of OpenID Connect the dashboard needs with Keycloak: the authorization-code flow with
// PKCE S256, the refresh_token grant and RP-initiated logout. It is written against the endpoints directly (a few
// form posts) rather than through a library, so that every parameter that matters for security is visible here.
type oidcClient struct {
	// browserBase is where the browser is sent (authorize, logout): the realm under its public name.
	browserBase string
	// backBase is where the gateway itself calls (token endpoint).
	backBase     string
	issuer       string
	clientID     string
	clientSecret string
	redirectURI  string
	logoutURI    string
	http         *http.Client
}

// tokenSet is what the token endpoint answers.
type tokenSet struct {
	AccessToken      string `json:"access_token"`
	IDToken          string `json:"id_token"`
	RefreshToken     string `json:"refresh_token"`
	ExpiresIn        int    `json:"expires_in"`
	RefreshExpiresIn int    `json:"refresh_expires_in"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
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
	// 32 random bytes give a 43-character verifier, the minimum length RFC 7636 allows, with 256 bits of entropy.
	if lr.Verifier, err = randomToken(32); err != nil {
		return lr, err
	}
	lr.Next = next
	lr.Expires = now.Add(loginTimeout)
	return lr, nil
}

// authURL is Keycloak's authorization endpoint with the request's state, nonce and S256 code challenge.
func (c *oidcClient) authURL(lr loginRequest) string {
	sum := sha256.Sum256([]byte(lr.Verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.clientID},
		"redirect_uri":          {c.redirectURI},
		"scope":                 {"openid"},
		"state":                 {lr.State},
		"nonce":                 {lr.Nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	return c.browserBase + "/protocol/openid-connect/auth?" + q.Encode()
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
	return c.token(ctx, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {c.redirectURI},
		"code_verifier": {verifier},
	})
}

func (c *oidcClient) refresh(ctx context.Context, refreshToken string) (tokenSet, error) {
	return c.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

func (c *oidcClient) token(ctx context.Context, form url.Values) (tokenSet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.backBase+"/protocol/openid-connect/token",
		strings.NewReader(form.Encode()))
	if err != nil {
		return tokenSet{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// client_secret_basic: the secret never sits in a form body that a proxy might log.
	req.SetBasicAuth(url.QueryEscape(c.clientID), url.QueryEscape(c.clientSecret))
	resp, err := c.http.Do(req)
	if err != nil {
		return tokenSet{}, fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	var ts tokenSet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ts); err != nil {
		return tokenSet{}, fmt.Errorf("token endpoint answered %d with no JSON: %w", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized {
		return tokenSet{}, fmt.Errorf("%w: %s", errTokenRefused, ts.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return tokenSet{}, fmt.Errorf("token endpoint answered %d: %s", resp.StatusCode, ts.Error)
	}
	if ts.AccessToken == "" || ts.ExpiresIn <= 0 {
		return tokenSet{}, errors.New("token endpoint answered without an access token")
	}
	return ts, nil
}

// idClaims are the ID token's claims the dashboard checks or shows.
type idClaims struct {
	Issuer   string   `json:"iss"`
	Audience audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	Nonce    string   `json:"nonce"`
	Subject  string   `json:"sub"`
	Email    string   `json:"email"`
	Name     string   `json:"name"`
	Username string   `json:"preferred_username"`
}

type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// checkIDToken checks the ID token received from the token endpoint. Its signature is not checked: the token came
// straight from Keycloak over the back channel, authenticated with the client secret (OpenID Connect Core 3.1.3.7
// allows this); the access token, which is what grants access, is fully verified by the gateway's verifier. What
// matters here is the nonce — it ties the answer to the login this browser started — plus issuer, audience and
// expiry.
func (c *oidcClient) checkIDToken(raw, nonce string, now time.Time) (idClaims, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return idClaims{}, errors.New("id token is not a JWT")
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return idClaims{}, fmt.Errorf("id token payload: %w", err)
	}
	var cl idClaims
	if err := json.Unmarshal(body, &cl); err != nil {
		return idClaims{}, fmt.Errorf("id token payload: %w", err)
	}
	switch {
	case cl.Issuer != c.issuer:
		return idClaims{}, fmt.Errorf("id token of issuer %q, want %q", cl.Issuer, c.issuer)
	case !slices.Contains(cl.Audience, c.clientID):
		return idClaims{}, errors.New("id token is not for the dashboard client")
	case now.After(time.Unix(cl.Expiry, 0).Add(30 * time.Second)):
		return idClaims{}, errors.New("id token expired")
	case !equalSecret(cl.Nonce, nonce):
		return idClaims{}, errors.New("id token nonce does not match the login")
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
