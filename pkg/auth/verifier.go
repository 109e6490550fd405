package auth

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/golang-jwt/jwt/v5"
)

// VerifierConfig says which tokens to trust.
type VerifierConfig struct {
	KeycloakURL string
	Realm       string
	// Issuer defaults to KeycloakURL/realms/Realm.
	Issuer   string
	Audience string
	// Introspect asks Keycloak whether each new token is still active (revocation); needs ClientID and ClientSecret.
	Introspect   bool
	ClientID     string
	ClientSecret string
	// KeyRefreshInterval bounds how often an unknown key id may trigger a fetch of the realm's keys.
	KeyRefreshInterval time.Duration
	// Leeway tolerates clock skew on exp and nbf.
	Leeway time.Duration
}

// Verifier checks Keycloak access tokens locally against the realm's signing keys. Keys are cached and fetched
// again when a token names an unknown key id (rate limited), so a key rotation needs no restart. In steady state a
// verification makes no call to Keycloak.
type Verifier struct {
	cfg    VerifierConfig
	kc     *gocloak.GoCloak
	log    *slog.Logger
	parser *jwt.Parser

	mu          sync.RWMutex
	keys        map[string]*rsa.PublicKey
	lastRefresh time.Time
	refreshMu   sync.Mutex

	introspected sync.Map // sha256(token) → introspection{active, until}
	keyFetches   int64
}

type introspection struct {
	active bool
	until  time.Time
}

// NewVerifier validates the configuration; keys are fetched on first use.
func NewVerifier(cfg VerifierConfig, log *slog.Logger) (*Verifier, error) {
	if cfg.KeycloakURL == "" || cfg.Realm == "" || cfg.Audience == "" {
		return nil, errors.New("auth: KeycloakURL, Realm and Audience are required")
	}
	if cfg.Introspect && (cfg.ClientID == "" || cfg.ClientSecret == "") {
		return nil, errors.New("auth: introspection needs the service's ClientID and ClientSecret")
	}
	cfg.KeycloakURL = strings.TrimRight(cfg.KeycloakURL, "/")
	if cfg.Issuer == "" {
		cfg.Issuer = cfg.KeycloakURL + "/realms/" + cfg.Realm
	}
	if cfg.KeyRefreshInterval <= 0 {
		cfg.KeyRefreshInterval = 10 * time.Second
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	return &Verifier{
		cfg: cfg,
		kc:  gocloak.NewClient(cfg.KeycloakURL),
		log: log,
		// RS256 only: Keycloak's default realm key. Pinning the algorithm refuses "none" and HMAC-confusion tokens.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
		),
		keys: map[string]*rsa.PublicKey{},
	}, nil
}

// keycloakClaims are the parts of a Keycloak access token we read.
type keycloakClaims struct {
	jwt.RegisteredClaims
	Type           string                              `json:"typ"`
	AuthorizedBy   string                              `json:"azp"`
	Tenant         string                              `json:"tenant"`
	RealmAccess    struct{ Roles []string }            `json:"realm_access"`
	ResourceAccess map[string]struct{ Roles []string } `json:"resource_access"`
}

// Verify checks the token and returns its principal. Every failure wraps ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	if raw == "" {
		return Principal{}, ErrNoToken
	}
	var claims keycloakClaims
	_, err := v.parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return v.key(ctx, kid)
	})
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	// Keycloak marks access tokens "Bearer"; ID and refresh tokens are signed by the same key and must not pass.
	if claims.Type != "Bearer" {
		return Principal{}, fmt.Errorf("%w: token type %q is not an access token", ErrInvalidToken, claims.Type)
	}
	if v.cfg.Introspect {
		if err := v.checkActive(ctx, raw, claims.ExpiresAt.Time); err != nil {
			return Principal{}, err
		}
	}
	roles := append([]string(nil), claims.RealmAccess.Roles...)
	if client, ok := claims.ResourceAccess[v.cfg.Audience]; ok {
		roles = append(roles, client.Roles...)
	}
	return Principal{
		Subject:  claims.Subject,
		ClientID: claims.AuthorizedBy,
		Tenant:   claims.Tenant,
		Roles:    roles,
	}, nil
}

// KeyFetches counts how often the realm's keys were fetched (for benchmarks and tests of the steady state).
func (v *Verifier) KeyFetches() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.keyFetches
}

func (v *Verifier) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	v.mu.RLock()
	k, ok := v.keys[kid]
	v.mu.RUnlock()
	if ok {
		return k, nil
	}
	if err := v.refreshKeys(ctx); err != nil {
		return nil, err
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown signing key %q", kid)
}

// refreshKeys fetches the realm's keys unless that happened less than KeyRefreshInterval ago, so a flood of tokens
// with made-up key ids cannot turn into a flood of calls to Keycloak.
func (v *Verifier) refreshKeys(ctx context.Context) error {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	v.mu.RLock()
	recent := !v.lastRefresh.IsZero() && time.Since(v.lastRefresh) < v.cfg.KeyRefreshInterval
	v.mu.RUnlock()
	if recent {
		return nil
	}
	certs, err := v.kc.GetCerts(ctx, v.cfg.Realm)
	if err != nil {
		return fmt.Errorf("fetching realm keys: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	if certs.Keys != nil {
		for _, k := range *certs.Keys {
			if k.Kid == nil || k.Kty == nil || *k.Kty != "RSA" || k.N == nil || k.E == nil {
				continue
			}
			if k.Use != nil && *k.Use != "sig" {
				continue
			}
			pub, err := rsaKey(*k.N, *k.E)
			if err != nil {
				v.log.Warn("skipping malformed realm key", "kid", *k.Kid, "error", err)
				continue
			}
			keys[*k.Kid] = pub
		}
	}
	v.mu.Lock()
	v.keys = keys
	v.lastRefresh = time.Now()
	v.keyFetches++
	v.mu.Unlock()
	v.log.Info("realm signing keys loaded", "realm", v.cfg.Realm, "keys", len(keys))
	return nil
}

func rsaKey(n, e string) (*rsa.PublicKey, error) {
	nb, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil {
		return nil, fmt.Errorf("modulus: %w", err)
	}
	eb, err := base64.RawURLEncoding.DecodeString(e)
	if err != nil {
		return nil, fmt.Errorf("exponent: %w", err)
	}
	exp := new(big.Int).SetBytes(eb)
	if !exp.IsInt64() || exp.Int64() < 3 {
		return nil, errors.New("exponent out of range")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(exp.Int64())}, nil
}

// checkActive asks Keycloak once per token whether it is still active, and remembers the answer until it expires.
func (v *Verifier) checkActive(ctx context.Context, raw string, exp time.Time) error {
	sum := sha256.Sum256([]byte(raw))
	key := string(sum[:])
	if cached, ok := v.introspected.Load(key); ok {
		in := cached.(introspection)
		if time.Now().Before(in.until) {
			if !in.active {
				return fmt.Errorf("%w: token is not active", ErrInvalidToken)
			}
			return nil
		}
		v.introspected.Delete(key)
	}
	res, err := v.kc.RetrospectToken(ctx, raw, v.cfg.ClientID, v.cfg.ClientSecret, v.cfg.Realm)
	if err != nil {
		return fmt.Errorf("introspecting token: %w", err)
	}
	active := res.Active != nil && *res.Active
	v.introspected.Store(key, introspection{active: active, until: exp})
	if !active {
		return fmt.Errorf("%w: token is not active", ErrInvalidToken)
	}
	return nil
}
