package testinfra

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Realm is the realm of deploy/keycloak/casekeeper-realm.json, the one the services trust.
const Realm = "casekeeper"

// ClientToken returns a real access token of a client of the casekeeper realm, by client credentials, from the
// Keycloak at KEYCLOAK_URL. Demo clients and secrets are listed in the README. Every call fetches a new token.
func ClientToken(t testing.TB, clientID, secret string) string {
	t.Helper()
	return clientToken(t, clientID, secret).AccessToken
}

func clientToken(t testing.TB, clientID, secret string) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	login := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: tokenURL(t, Realm)}
	tok, err := login.Token(ctx)
	if err != nil {
		t.Fatalf("testinfra: token for %s: %v", clientID, err)
	}
	return tok
}

// tokens caches CachedClientToken's tokens for the test binary's run, per Keycloak, client and secret.
var tokens = struct {
	mu    sync.Mutex
	cache map[[3]string]*oauth2.Token
}{cache: map[[3]string]*oauth2.Token{}}

// CachedClientToken is ClientToken, but hands out the same token to every test of the binary until a minute
// before it expires: a shared Keycloak answers slowly under a parallel test run. Use ClientToken where the test
// needs a token issued now (after a key rotation, say).
func CachedClientToken(t testing.TB, clientID, secret string) string {
	t.Helper()
	key := [3]string{KeycloakURL(t), clientID, secret}
	tokens.mu.Lock()
	defer tokens.mu.Unlock()
	if tok := tokens.cache[key]; tok != nil && time.Until(tok.Expiry) > time.Minute {
		return tok.AccessToken
	}
	tok := clientToken(t, clientID, secret)
	tokens.cache[key] = tok
	return tok.AccessToken
}

// Tokens is what Keycloak answers to a user's login.
type Tokens struct {
	AccessToken  string
	IDToken      string
	RefreshToken string
}

// PasswordLogin logs a user of realm in through clientID by the password grant (clientSecret is empty for a
// public client such as the master realm's admin-cli), asking for the given scopes.
func PasswordLogin(t testing.TB, realm, clientID, clientSecret, username, password string, scopes ...string) Tokens {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	login := oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, Scopes: scopes,
		Endpoint: oauth2.Endpoint{TokenURL: tokenURL(t, realm), AuthStyle: oauth2.AuthStyleInParams}}
	tok, err := login.PasswordCredentialsToken(ctx, username, password)
	if err != nil {
		t.Fatalf("testinfra: login of %s through %s: %v", username, clientID, err)
	}
	id, _ := tok.Extra("id_token").(string)
	return Tokens{AccessToken: tok.AccessToken, IDToken: id, RefreshToken: tok.RefreshToken}
}

func tokenURL(t testing.TB, realm string) string {
	return KeycloakURL(t) + "/realms/" + realm + "/protocol/openid-connect/token"
}
