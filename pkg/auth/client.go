package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// ClientCredentials is a service's own access token, obtained with its client id and secret and renewed before it
// expires.
type ClientCredentials struct {
	kc           *gocloak.GoCloak
	realm        string
	clientID     string
	clientSecret string

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// NewClientCredentials prepares a token source; the first token is fetched on first use.
func NewClientCredentials(keycloakURL, realm, clientID, clientSecret string) *ClientCredentials {
	return &ClientCredentials{
		kc:           gocloak.NewClient(strings.TrimRight(keycloakURL, "/")),
		realm:        realm,
		clientID:     clientID,
		clientSecret: clientSecret,
	}
}

// Token returns a valid access token, logging in again when the current one is past 3/4 of its life.
func (c *ClientCredentials) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Now().Before(c.renewAt) {
		return c.token, nil
	}
	jwt, err := c.kc.LoginClient(ctx, c.clientID, c.clientSecret, c.realm)
	if err != nil {
		return "", fmt.Errorf("client credentials login of %s: %w", c.clientID, err)
	}
	c.token = jwt.AccessToken
	c.renewAt = time.Now().Add(time.Duration(jwt.ExpiresIn) * time.Second * 3 / 4)
	return c.token, nil
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

func delegate(ctx context.Context, creds *ClientCredentials) (context.Context, error) {
	token, err := creds.Token(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	pairs := []string{"authorization", "Bearer " + token}
	if p, ok := FromContext(ctx); ok {
		pairs = append(pairs,
			mdSubject, p.Subject,
			mdClient, p.ClientID,
			mdTenant, p.Tenant,
			mdRoles, strings.Join(p.Roles, " "))
	}
	return metadata.AppendToOutgoingContext(ctx, pairs...), nil
}
