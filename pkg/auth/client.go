package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// ClientCredentials is a service's own access token, obtained with its client id and secret and renewed before it
// expires. One login runs at a time (single flight) and never under the lock: the new token is swapped in when it
// arrives. Once the token is past 3/4 of its life a renewal starts in the background, so callers holding a still-valid
// token never wait for Keycloak; they wait only for the very first token or after it expired, and then all of them
// wait for the same login.
type ClientCredentials struct {
	login      clientcredentials.Config
	now        func() time.Time
	httpClient *http.Client

	mu        sync.Mutex // guards token, renewAt and expiresAt; never held across a login
	token     string
	renewAt   time.Time
	expiresAt time.Time

	logins singleflight.Group
	count  atomic.Int64
}

// loginTimeout bounds one login; it does not depend on the caller that happened to start it, since every caller
// waiting at the time shares its result.
const loginTimeout = 15 * time.Second

// CredentialsOption adjusts a ClientCredentials.
type CredentialsOption func(*ClientCredentials)

// WithCredentialsHTTPClient sends the logins through hc (tests count calls to Keycloak with it).
func WithCredentialsHTTPClient(hc *http.Client) CredentialsOption {
	return func(c *ClientCredentials) { c.httpClient = hc }
}

// NewClientCredentials prepares a token source; the first token is fetched on first use.
func NewClientCredentials(keycloakURL, realm, clientID, clientSecret string, opts ...CredentialsOption) *ClientCredentials {
	c := &ClientCredentials{
		login: clientcredentials.Config{
			ClientID:     clientID,
			ClientSecret: clientSecret,
			TokenURL:     strings.TrimRight(keycloakURL, "/") + "/realms/" + realm + "/protocol/openid-connect/token",
			AuthStyle:    oauth2.AuthStyleInHeader,
		},
		now: time.Now,
	}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	c.httpClient = keycloakHTTP(c.httpClient)
	return c
}

// Logins counts the logins made so far (one per token lifetime in steady state).
func (c *ClientCredentials) Logins() int64 { return c.count.Load() }

// Token returns a valid access token.
func (c *ClientCredentials) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	token, renewAt, expiresAt := c.token, c.renewAt, c.expiresAt
	c.mu.Unlock()
	now := c.now()
	if token != "" && now.Before(expiresAt) {
		if !now.Before(renewAt) {
			// Starts a renewal unless one is in flight; nobody waits for it. A failure leaves the current token in
			// place and the next call tries again.
			c.logins.DoChan("login", c.renew)
		}
		return token, nil
	}
	select {
	case r := <-c.logins.DoChan("login", c.renew):
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("client credentials login of %s: %w", c.login.ClientID, ctx.Err())
	}
}

// renew logs in and swaps the new token in. It runs in its own goroutine, one at a time.
func (c *ClientCredentials) renew() (any, error) {
	c.mu.Lock()
	if c.token != "" && c.now().Before(c.renewAt) {
		// A login finished between the caller's look and this flight.
		token := c.token
		c.mu.Unlock()
		return token, nil
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	c.count.Add(1)
	// Config.Token logs in anew on every call; when to renew is decided here, not by an oauth2.TokenSource, which
	// would renew only once the token is about to expire and make that caller wait.
	tok, err := c.login.Token(context.WithValue(ctx, oauth2.HTTPClient, c.httpClient))
	if err != nil {
		return "", fmt.Errorf("client credentials login of %s: %w", c.login.ClientID, err)
	}
	// Expiry was set from expires_in on the wall clock; its distance from now is the token's life on ours.
	life := time.Until(tok.Expiry)
	if tok.AccessToken == "" || tok.Expiry.IsZero() || life <= 0 {
		return "", errors.New("client credentials login returned no usable token")
	}
	now := c.now()
	c.mu.Lock()
	c.token = tok.AccessToken
	c.renewAt = now.Add(life * 3 / 4)
	c.expiresAt = now.Add(life - 5*time.Second)
	c.mu.Unlock()
	return tok.AccessToken, nil
}

// DelegatingInterceptor authenticates outgoing calls with the service's own token and names the caller found in
// the context, for services that hold RoleDelegate (the gateway).
func DelegatingInterceptor(creds *ClientCredentials) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, err := delegate(ctx, creds)
		if err != nil {
			return err
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// DelegatingStreamInterceptor is DelegatingInterceptor for streams.
func DelegatingStreamInterceptor(creds *ClientCredentials) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx, err := delegate(ctx, creds)
		if err != nil {
			return nil, err
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}

// delegate replaces — never appends to — the authorization and identity metadata of the outgoing call. Whatever
// arrived with the incoming request (grpc-gateway turns Grpc-Metadata-* HTTP headers into outgoing metadata) must
// not reach the backing service next to the gateway's token, or a caller could name another tenant.
func delegate(ctx context.Context, creds *ClientCredentials) (context.Context, error) {
	token, err := creds.Token(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	for _, k := range []string{"authorization", mdSubject, mdClient, mdTenant, mdRoles} {
		md.Delete(k)
	}
	md.Set("authorization", "Bearer "+token)
	if p, ok := FromContext(ctx); ok {
		md.Set(mdSubject, p.Subject)
		md.Set(mdClient, p.ClientID)
		md.Set(mdTenant, p.Tenant)
		md.Set(mdRoles, strings.Join(p.Roles, " "))
	}
	return metadata.NewOutgoingContext(ctx, md), nil
}
