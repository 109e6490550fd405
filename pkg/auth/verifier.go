package auth

import (
	"github.com/casekeeper/core/pkg/config"

	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/golang-jwt/jwt/v5"
)

// VerifierConfig says which tokens to trust.
type VerifierConfig struct {
	KeycloakURL string
	Realm       string
	// Issuer defaults to KeycloakURL/realms/Realm. Set it when the services reach Keycloak under another address than
	// the one it puts in its tokens (a cluster-internal name, a proxy).
	Issuer   string
	Audience string
	// Introspect asks Keycloak whether each new token is still active (revocation); needs ClientID and ClientSecret.
	// The answer is cached until the token expires, so each token costs one call, not each request.
	Introspect   bool
	ClientID     string
	ClientSecret string
	// KeyRefreshInterval bounds how often an unknown key id may trigger a fetch of the realm's keys (default 2s).
	KeyRefreshInterval time.Duration
	// KeyMaxAge is how long fetched keys are used before they are fetched again in the background (default 10m), so
	// that a key removed from the realm stops being trusted without a restart.
	KeyMaxAge time.Duration
	// Leeway tolerates clock skew on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// CacheSize bounds the cache of tokens already verified (default 10000; negative disables it). A token seen again
	// costs a hash and a map lookup instead of an RSA verification and a JSON decode.
	CacheSize int
	// HTTPClient, when set, carries the calls to Keycloak (tests count them with it).
	HTTPClient *http.Client
	// Now replaces the clock (tests of expiry).
	Now func() time.Time
}

// maxTokenBytes bounds what we parse: Keycloak access tokens are 1–3 KiB; a megabyte of base64 is an attack.
const maxTokenBytes = 16 << 10

// tenantPattern is the shape of a tenant id. The tenant ends up in NATS subjects and database keys, so a claim that
// does not fit (say "acme.>") is refused rather than escaped.
var tenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidTenant reports whether t has the shape of a tenant id.
func ValidTenant(t string) bool { return tenantPattern.MatchString(t) }

// Verifier checks Keycloak access tokens locally against the realm's signing keys. Keys are cached and fetched
// again when a token names an unknown key id (rate limited), so a key rotation needs no restart. In steady state a
// verification makes no call to Keycloak.
type Verifier struct {
	cfg    VerifierConfig
	kc     *gocloak.GoCloak
	log    *slog.Logger
	parser *jwt.Parser
	now    func() time.Time

	mu          sync.RWMutex
	keys        map[string]*rsa.PublicKey
	lastRefresh time.Time
	refreshMu   sync.Mutex
	bgRefresh   atomic.Bool

	cache        *tokenCache
	introspected *tokenCache
	keyFetches   atomic.Int64
	introspects  atomic.Int64
}

// NewVerifier validates the configuration; keys are fetched on first use.
func NewVerifier(cfg VerifierConfig, log *slog.Logger) (*Verifier, error) {
	if cfg.KeycloakURL == "" || cfg.Realm == "" || cfg.Audience == "" {
		return nil, errors.New("auth: KeycloakURL, Realm and Audience are required")
	}
	if cfg.Introspect && (cfg.ClientID == "" || cfg.ClientSecret == "") {
		return nil, errors.New("auth: introspection needs the service's ClientID and ClientSecret")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.KeycloakURL = strings.TrimRight(cfg.KeycloakURL, "/")
	if cfg.Issuer == "" {
		cfg.Issuer = cfg.KeycloakURL + "/realms/" + cfg.Realm
	}
	if cfg.KeyRefreshInterval <= 0 {
		cfg.KeyRefreshInterval = 2 * time.Second
	}
	if cfg.KeyMaxAge <= 0 {
		cfg.KeyMaxAge = 10 * time.Minute
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10000
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		cfg: cfg,
		kc:  newKeycloakClient(cfg.KeycloakURL, cfg.HTTPClient),
		log: log,
		now: now,
		// RS256 only: Keycloak's default realm key. Pinning the algorithm refuses "none" and HMAC-confusion tokens
		// (an HS256 token "signed" with the public key).
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(now),
		),
		keys:         map[string]*rsa.PublicKey{},
		introspected: newTokenCache(100000),
	}
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	return v, nil
}

func newKeycloakClient(url string, hc *http.Client) *gocloak.GoCloak {
	kc := gocloak.NewClient(url)
	if hc != nil {
		// Through gocloak's own resty client, so that its settings stay and the module needs no resty import.
		kc.RestyClient().SetTransport(hc.Transport)
		if hc.Timeout > 0 {
			kc.RestyClient().SetTimeout(hc.Timeout)
		}
	} else {
		// Keycloak hanging must not hold requests forever; contexts bound it too, but not every caller sets one.
		kc.RestyClient().SetTimeout(10 * time.Second)
	}
	return kc
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

// Verify checks the token and returns its principal. Every failure of the token itself wraps ErrInvalidToken; a
// failure to reach Keycloak (keys, introspection) is returned as is, so that callers answer "unavailable", not
// "unauthenticated".
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	if raw == "" {
		return Principal{}, ErrNoToken
	}
	if len(raw) > maxTokenBytes {
		return Principal{}, fmt.Errorf("%w: token longer than %d bytes", ErrInvalidToken, maxTokenBytes)
	}
	now := v.now()
	v.maybeRefreshInBackground(now)
	var sum [32]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(raw))
		if e, ok := v.cache.get(sum, now); ok {
			return e.principal, nil
		}
	}
	var claims keycloakClaims
	var keyErr error
	_, err := v.parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		// The claims are not verified yet, but a token that does not even claim our issuer cannot be ours: refuse
		// it before its key id can make us fetch keys (a master-realm token would otherwise trigger a refresh).
		if claims.Issuer != v.cfg.Issuer {
			return nil, errors.New("token of another issuer")
		}
		kid, _ := t.Header["kid"].(string)
		k, err := v.key(ctx, kid)
		if err != nil && !errors.Is(err, errUnknownKey) {
			keyErr = err
		}
		return k, err
	})
	if keyErr != nil {
		return Principal{}, keyErr
	}
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	// Keycloak marks access tokens "Bearer"; ID and refresh tokens are signed by the same key and must not pass.
	if claims.Type != "Bearer" {
		return Principal{}, fmt.Errorf("%w: token type %q is not an access token", ErrInvalidToken, claims.Type)
	}
	if claims.Tenant != "" && !ValidTenant(claims.Tenant) {
		return Principal{}, fmt.Errorf("%w: malformed tenant claim", ErrInvalidToken)
	}
	if v.cfg.Introspect {
		if err := v.checkActive(ctx, raw, claims.ExpiresAt.Time); err != nil {
			return Principal{}, err
		}
	}
	// Realm roles, plus the client roles of our own audience: roles that some unrelated client happens to define
	// under the same name must not open our API.
	roles := append([]string(nil), claims.RealmAccess.Roles...)
	if client, ok := claims.ResourceAccess[v.cfg.Audience]; ok {
		roles = append(roles, client.Roles...)
	}
	p := Principal{
		Subject:  claims.Subject,
		ClientID: claims.AuthorizedBy,
		Tenant:   claims.Tenant,
		Roles:    roles,
	}
	if v.cache != nil {
		v.cache.put(sum, cacheEntry{principal: p, until: claims.ExpiresAt.Time.Add(v.cfg.Leeway)}, now)
	}
	return p, nil
}

// KeyFetches counts how often the realm's keys were fetched (for benchmarks and tests of the steady state).
func (v *Verifier) KeyFetches() int64 { return v.keyFetches.Load() }

// Introspections counts calls to Keycloak's introspection endpoint.
func (v *Verifier) Introspections() int64 { return v.introspects.Load() }

var errUnknownKey = errors.New("unknown signing key")

func (v *Verifier) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	v.mu.RLock()
	k, ok := v.keys[kid]
	seen := v.lastRefresh
	v.mu.RUnlock()
	if ok {
		return k, nil
	}
	if err := v.refreshKeys(ctx, seen, false); err != nil {
		return nil, err
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownKey, kid)
}

// maybeRefreshInBackground fetches the keys again once they are older than KeyMaxAge, without holding up the
// request: a key that Keycloak no longer publishes stops being trusted within KeyMaxAge.
func (v *Verifier) maybeRefreshInBackground(now time.Time) {
	v.mu.RLock()
	stale := !v.lastRefresh.IsZero() && now.Sub(v.lastRefresh) > v.cfg.KeyMaxAge
	v.mu.RUnlock()
	if !stale || !v.bgRefresh.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer v.bgRefresh.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := v.refreshKeys(ctx, time.Time{}, true); err != nil {
			v.log.Warn("background refresh of realm keys failed", "error", err)
		}
	}()
}

// refreshKeys fetches the realm's keys for a request that found its key id missing from the key set loaded at
// seen. Fetches are spaced by at least KeyRefreshInterval, so a flood of tokens with made-up key ids costs one call
// to Keycloak per interval; a request arriving within the interval waits for the next allowed fetch rather than
// failing, so that the first tokens of a genuine rotation are never refused. Requests that queued while another
// fetch happened use its result.
func (v *Verifier) refreshKeys(ctx context.Context, seen time.Time, force bool) error {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	v.mu.RLock()
	last := v.lastRefresh
	v.mu.RUnlock()
	if !force {
		if last.After(seen) {
			return nil
		}
		if !last.IsZero() {
			if wait := last.Add(v.cfg.KeyRefreshInterval).Sub(v.now()); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return fmt.Errorf("%w: waiting to fetch the realm keys", ErrInvalidToken)
				case <-t.C:
				}
			}
		}
	}
	// Fetched directly rather than with gocloak's GetCerts, which caches the answer for ten minutes and would hide
	// a rotated key for that long.
	var certs gocloak.CertResponse
	resp, err := v.kc.GetRequest(ctx).SetResult(&certs).
		Get(v.cfg.KeycloakURL + "/realms/" + v.cfg.Realm + "/protocol/openid-connect/certs")
	v.keyFetches.Add(1)
	if err == nil && resp.IsError() {
		err = fmt.Errorf("status %s", resp.Status())
	}
	if err != nil {
		return fmt.Errorf("fetching realm keys: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	if certs.Keys != nil {
		for _, k := range *certs.Keys {
			if k.Kid == nil || k.Kty == nil || *k.Kty != "RSA" || k.N == nil || k.E == nil {
				continue
			}
			// Skip encryption keys (RSA-OAEP) and keys for other algorithms: only RS256 signing keys verify tokens.
			if (k.Use != nil && *k.Use != "sig") || (k.Alg != nil && *k.Alg != "RS256") {
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
	v.lastRefresh = v.now()
	v.mu.Unlock()
	// Tokens verified under the old key set might name a key that is gone now: verify them again.
	if v.cache != nil {
		v.cache.clear()
	}
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
	if len(nb) < 256 {
		return nil, errors.New("modulus shorter than 2048 bits")
	}
	exp := new(big.Int).SetBytes(eb)
	if !exp.IsInt64() || exp.Int64() < 3 || exp.Int64() > 1<<31-1 {
		return nil, errors.New("exponent out of range")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(exp.Int64())}, nil
}

// checkActive asks Keycloak once per token whether it is still active, and remembers the answer until it expires.
func (v *Verifier) checkActive(ctx context.Context, raw string, exp time.Time) error {
	sum := sha256.Sum256([]byte(raw))
	now := v.now()
	if e, ok := v.introspected.get(sum, now); ok {
		if !e.active {
			return fmt.Errorf("%w: token is not active", ErrInvalidToken)
		}
		return nil
	}
	v.introspects.Add(1)
	res, err := v.kc.RetrospectToken(ctx, raw, v.cfg.ClientID, v.cfg.ClientSecret, v.cfg.Realm)
	if err != nil {
		return fmt.Errorf("introspecting token: %w", err)
	}
	active := res.Active != nil && *res.Active
	v.introspected.put(sum, cacheEntry{active: active, until: exp}, now)
	if !active {
		return fmt.Errorf("%w: token is not active", ErrInvalidToken)
	}
	return nil
}

// tokenCache maps a token's hash to what we learnt about it, until the token expires. It is bounded: when full,
// expired entries are swept, and if none were expired an arbitrary half is dropped (Go's map order), which costs
// at most a second verification of those tokens.
type tokenCache struct {
	mu      sync.RWMutex
	max     int
	entries map[[32]byte]cacheEntry
}

type cacheEntry struct {
	principal Principal
	active    bool
	until     time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[32]byte]cacheEntry)}
}

func (c *tokenCache) get(key [32]byte, now time.Time) (cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return cacheEntry{}, false
	}
	return e, true
}

func (c *tokenCache) put(key [32]byte, e cacheEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, old := range c.entries {
			if !now.Before(old.until) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max/2 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

func (c *tokenCache) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// ConfigFrom is the verifier configuration of a service's Keycloak settings, the same for every service.
func ConfigFrom(k config.Keycloak) VerifierConfig {
	return VerifierConfig{
		KeycloakURL: k.URL, Realm: k.Realm, Issuer: k.Issuer, Audience: k.Audience,
		Introspect: k.IntrospectTokens, ClientID: k.ClientID, ClientSecret: k.ClientSecret.Reveal(),
	}
}
