package casekeeper

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// Defaults of a development stack (`make run`).
const (
	DefaultAPI         = "http://127.0.0.1:8080"
	DefaultGRPC        = "127.0.0.1:9090"
	DefaultCaseService = "127.0.0.1:9091"
	DefaultIssuer      = "http://127.0.0.1:8180/realms/casekeeper"
	// DefaultRefreshBefore is how long before its expiry a token is replaced by a new one.
	DefaultRefreshBefore = 30 * time.Second
)

// Client talks to one Case-keeper installation as one Keycloak client. Safe for concurrent use; Close it when done
// to release its gRPC connections.
type Client struct {
	api      string
	grpcAddr string
	caseAddr string
	http     *http.Client
	tokens   *tokens
	dialOpts []grpc.DialOption
	backoff  backoff

	connMu sync.Mutex
	conns  map[string]*grpc.ClientConn
}

type settings struct {
	api, grpcAddr, caseAddr, issuer string
	clientID, clientSecret          string
	source                          oauth2.TokenSource
	static                          string
	refreshBefore                   time.Duration
	http                            *http.Client
	dialOpts                        []grpc.DialOption
	backoff                         backoff
}

// Option configures a Client; New reports the first invalid one.
type Option func(*settings) error

// WithAPI sets the gateway's HTTP base URL (DefaultAPI).
func WithAPI(base string) Option {
	return func(s *settings) error {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("casekeeper: API URL %q is not an http(s) URL", base)
		}
		s.api = strings.TrimSuffix(base, "/")
		return nil
	}
}

// WithGRPC sets the gateway's gRPC address, host:port (DefaultGRPC), used by FollowOptions.Via ViaGRPC.
func WithGRPC(addr string) Option {
	return func(s *settings) error {
		if addr == "" {
			return errors.New("casekeeper: empty gRPC address")
		}
		s.grpcAddr = addr
		return nil
	}
}

// WithCaseService sets the case service's gRPC address (DefaultCaseService), used by the KYC provider's writes.
func WithCaseService(addr string) Option {
	return func(s *settings) error {
		if addr == "" {
			return errors.New("casekeeper: empty case service address")
		}
		s.caseAddr = addr
		return nil
	}
}

// WithIssuer sets the Keycloak realm URL the tokens come from (DefaultIssuer); the token endpoint is
// <issuer>/protocol/openid-connect/token.
func WithIssuer(issuer string) Option {
	return func(s *settings) error {
		u, err := url.Parse(issuer)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("casekeeper: issuer %q is not an http(s) URL", issuer)
		}
		s.issuer = strings.TrimSuffix(issuer, "/")
		return nil
	}
}

// WithClientCredentials authenticates as a Keycloak client of the realm (its service account): tokens are taken
// by the client credentials grant and renewed before they expire.
func WithClientCredentials(clientID, secret string) Option {
	return func(s *settings) error {
		if clientID == "" || secret == "" {
			return errors.New("casekeeper: client credentials need a client id and a secret")
		}
		s.clientID, s.clientSecret = clientID, secret
		return nil
	}
}

// WithToken uses one access token as given. It is not renewed: streams end when it expires, and calls fail with
// UNAUTHENTICATED from then on.
func WithToken(accessToken string) Option {
	return func(s *settings) error {
		if accessToken == "" {
			return errors.New("casekeeper: empty access token")
		}
		s.static = accessToken
		return nil
	}
}

// WithTokenSource takes tokens from src (for another grant); the client caches them and asks src again
// RefreshBefore ahead of their expiry, or when the server refused one.
func WithTokenSource(src oauth2.TokenSource) Option {
	return func(s *settings) error {
		if src == nil {
			return errors.New("casekeeper: nil token source")
		}
		s.source = src
		return nil
	}
}

// WithRefreshBefore sets how long before its expiry a token is replaced (DefaultRefreshBefore).
func WithRefreshBefore(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("casekeeper: refresh-before %s is negative", d)
		}
		s.refreshBefore = d
		return nil
	}
}

// WithHTTPClient sets the HTTP client for the gateway and Keycloak. Leave its Timeout zero: long-polls and streams
// outlive any fixed one; every call has a deadline of its own.
func WithHTTPClient(hc *http.Client) Option {
	return func(s *settings) error {
		if hc == nil {
			return errors.New("casekeeper: nil HTTP client")
		}
		s.http = hc
		return nil
	}
}

// WithGRPCDialOptions adds dial options for the gRPC connections, after the defaults (plaintext, for a development
// stack): pass grpc.WithTransportCredentials(credentials.NewTLS(...)) in production.
func WithGRPCDialOptions(opts ...grpc.DialOption) Option {
	return func(s *settings) error {
		s.dialOpts = append(s.dialOpts, opts...)
		return nil
	}
}

// WithReconnectBackoff sets the bounds of the jittered exponential wait between reconnects and retries (default
// 500ms to 30s).
func WithReconnectBackoff(minWait, maxWait time.Duration) Option {
	return func(s *settings) error {
		if minWait <= 0 || maxWait < minWait {
			return fmt.Errorf("casekeeper: backoff bounds %s, %s: want 0 < min <= max", minWait, maxWait)
		}
		s.backoff = backoff{min: minWait, max: maxWait}
		return nil
	}
}

// New builds a client. Exactly one way to authenticate is needed: WithClientCredentials, WithToken or
// WithTokenSource. Nothing is contacted until the first call.
func New(opts ...Option) (*Client, error) {
	s := settings{api: DefaultAPI, grpcAddr: DefaultGRPC, caseAddr: DefaultCaseService, issuer: DefaultIssuer,
		refreshBefore: DefaultRefreshBefore, backoff: backoff{min: 500 * time.Millisecond, max: 30 * time.Second}}
	for _, o := range opts {
		if err := o(&s); err != nil {
			return nil, err
		}
	}
	if s.http == nil {
		s.http = &http.Client{}
	}
	ways := 0
	for _, set := range []bool{s.clientID != "", s.static != "", s.source != nil} {
		if set {
			ways++
		}
	}
	if ways != 1 {
		return nil, errors.New("casekeeper: give exactly one of WithClientCredentials, WithToken, WithTokenSource")
	}
	t := &tokens{refreshBefore: s.refreshBefore, now: time.Now}
	switch {
	case s.static != "":
		t.static = &oauth2.Token{AccessToken: s.static, TokenType: "Bearer"}
	case s.source != nil:
		t.fetch = func(context.Context) (*oauth2.Token, error) { return s.source.Token() }
	default:
		cc := clientcredentials.Config{ClientID: s.clientID, ClientSecret: s.clientSecret,
			TokenURL: s.issuer + "/protocol/openid-connect/token", AuthStyle: oauth2.AuthStyleInParams}
		hc := s.http
		t.fetch = func(ctx context.Context) (*oauth2.Token, error) {
			return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
		}
	}
	return &Client{api: s.api, grpcAddr: s.grpcAddr, caseAddr: s.caseAddr, http: s.http, tokens: t,
		dialOpts: append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
			// A watch on a connection that died without a word (a NAT that forgot it) is noticed within 40 s;
			// the services accept a ping every 10 s.
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second})},
			s.dialOpts...),
		backoff: s.backoff, conns: map[string]*grpc.ClientConn{}}, nil
}

// Token returns a valid access token, the cached one while it is not within RefreshBefore of its expiry.
func (c *Client) Token(ctx context.Context) (string, error) {
	tok, err := c.tokens.get(ctx)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// Close releases the gRPC connections.
func (c *Client) Close() error {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	var errs []error
	for addr, cc := range c.conns {
		errs = append(errs, cc.Close())
		delete(c.conns, addr)
	}
	return errors.Join(errs...)
}

// conn is the shared gRPC connection to addr, made on first use.
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, c.dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("casekeeper: gRPC client for %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}
