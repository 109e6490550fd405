package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// introspector asks Keycloak's token introspection endpoint (RFC 7662) whether a token is still active. It is one
// form post with the service's client credentials; neither go-oidc nor x/oauth2 covers it.
type introspector struct {
	url          string
	http         *http.Client
	clientID     string
	clientSecret string
}

func (i *introspector) active(ctx context.Context, token string) (bool, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.url, strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// client_secret_basic (RFC 6749 2.3.1 form-encodes both parts): the secret stays out of a body a proxy might log.
	req.SetBasicAuth(url.QueryEscape(i.clientID), url.QueryEscape(i.clientSecret))
	resp, err := i.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("introspection endpoint answered %s", resp.Status)
	}
	var answer struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer); err != nil {
		return false, fmt.Errorf("introspection answer: %w", err)
	}
	return answer.Active, nil
}
