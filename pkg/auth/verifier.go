package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/tenant"
)

// VerifierConfig says which tokens to trust.
type VerifierConfig struct {
	KeycloakURL string
	Realm       string
	// Issuer defaults to KeycloakURL/realms/Realm. Set it when the services reach Keycloak under another address than
	// the one it puts in its tokens (a cluster-internal name, a proxy).
	Issuer   string
	Audience string
	// Introspect asks Keycloak whether a token is still active (revocation); needs ClientID and ClientSecret.
	// An answer is reused for at most IntrospectCache, so a revoked token stops being accepted within that bound;
	// each token costs one call per IntrospectCache, not one per request.
	Introspect bool
	// IntrospectCache bounds how long an introspection answer is reused (default 30s; never past the token's
	// expiry).
	IntrospectCache time.Duration
	ClientID        string
	ClientSecret    string
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

// introspectionCacheSize bounds the remembered introspection answers; each is a hash, a bool and a time.
const introspectionCacheSize = 100000

// Verifier checks Keycloak access tokens locally against the realm's signing keys, with go-oidc's remote key set:
// keys are fetched again when a token names an unknown key id (spaced by KeyRefreshInterval), so a key rotation
// needs no restart. In steady state a verification makes no call to Keycloak.
type Verifier struct {
	cfg   VerifierConfig
	log   *slog.Logger
	now   func() time.Time
	keys  *keySet
	oidc  *oidc.IDTokenVerifier
	intro *introspector

	// verified maps a token's hash to its principal until the token expires; introspected to Keycloak's answer.
	verified     *lru.Cache[[32]byte, cacheEntry]
	introspected *lru.Cache[[32]byte, cacheEntry]
	introspects  atomic.Int64
}

type cacheEntry struct {
	principal Principal
	active    bool
	until     time.Time
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
	if cfg.IntrospectCache <= 0 {
		cfg.IntrospectCache = 30 * time.Second
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	hc := keycloakHTTP(cfg.HTTPClient)
	realmURL := cfg.KeycloakURL + "/realms/" + cfg.Realm
	v := &Verifier{cfg: cfg, log: log, now: now}
	v.keys = newKeySet(realmURL+"/protocol/openid-connect/certs", hc, cfg.KeyRefreshInterval, now, log, v.purge)
	v.oidc = oidc.NewVerifier(cfg.Issuer, v.keys, &oidc.Config{
		ClientID: cfg.Audience,
		// RS256 only, Keycloak's default realm key: "none" and HMAC-confusion tokens (an HS256 token "signed" with
		// the public key) are refused before any key is looked at.
		SupportedSigningAlgs: []string{oidc.RS256},
		// Expiry is checked below with the configured leeway on exp, nbf and iat alike; go-oidc has none on exp and
		// five minutes on nbf.
		SkipExpiryCheck: true,
	})
	if cfg.Introspect {
		v.intro = newIntrospector(cfg.KeycloakURL, cfg.Realm, cfg.ClientID, cfg.ClientSecret, hc)
		v.introspected, _ = lru.New[[32]byte, cacheEntry](introspectionCacheSize)
	}
	if cfg.CacheSize > 0 {
		v.verified, _ = lru.New[[32]byte, cacheEntry](cfg.CacheSize)
	}
	return v, nil
}

// keycloakHTTP is the client for calls to Keycloak: the configured one, or one with a timeout, since Keycloak
// hanging must not hold requests forever and not every caller's context has a deadline.
func keycloakHTTP(hc *http.Client) *http.Client {
	if hc != nil {
		return hc
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// keycloakClaims are the parts of a Keycloak access token we read.
type keycloakClaims struct {
	Issuer         string                              `json:"iss"`
	Subject        string                              `json:"sub"`
	Expiry         *jsonTime                           `json:"exp"`
	NotBefore      *jsonTime                           `json:"nbf"`
	IssuedAt       *jsonTime                           `json:"iat"`
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
	var sum [32]byte
	if v.verified != nil {
		sum = sha256.Sum256([]byte(raw))
		if e, ok := v.verified.Get(sum); ok && now.Before(e.until) {
			// The signature and claims need no second look, but revocation does: the introspection answer has
			// its own, shorter bound.
			if v.intro != nil {
				if err := v.checkActive(ctx, raw, e.until); err != nil {
					return Principal{}, err
				}
			}
			return e.principal, nil
		}
	}
	if err := v.checkIssuerUnverified(raw); err != nil {
		return Principal{}, err
	}
	ctx, fetch := withFetchOutcome(ctx)
	tok, err := v.oidc.Verify(ctx, raw)
	if fetch.err != nil {
		return Principal{}, fmt.Errorf("fetching realm keys: %w", fetch.err)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	var claims keycloakClaims
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	if err := v.checkTimes(claims, now); err != nil {
		return Principal{}, err
	}
	// Keycloak marks access tokens "Bearer"; ID and refresh tokens are signed by the same key and must not pass.
	if claims.Type != "Bearer" {
		return Principal{}, fmt.Errorf("%w: token type %q is not an access token", ErrInvalidToken, claims.Type)
	}
	if claims.Tenant != "" && !tenant.Valid(claims.Tenant) {
		return Principal{}, fmt.Errorf("%w: malformed tenant claim", ErrInvalidToken)
	}
	v.keys.renewIfOlder(raw, v.cfg.KeyMaxAge)
	exp := claims.Expiry.time()
	if v.intro != nil {
		if err := v.checkActive(ctx, raw, exp); err != nil {
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
		Subject:   claims.Subject,
		ClientID:  claims.AuthorizedBy,
		Tenant:    claims.Tenant,
		Roles:     roles,
		ExpiresAt: exp.Add(v.cfg.Leeway),
	}
	if v.verified != nil {
		v.verified.Add(sum, cacheEntry{principal: p, until: exp.Add(v.cfg.Leeway)})
	}
	return p, nil
}

// checkIssuerUnverified refuses a token that does not even claim our issuer before its key id can make us fetch
// keys (a master-realm token would otherwise trigger a fetch). Nothing is trusted from this read: the issuer is
// checked again on the verified claims. It only decodes the payload: parsing the whole JWS here as well would
// cost a third of a verification.
func (v *Verifier) checkIssuerUnverified(raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%w: not a compact JWS", ErrInvalidToken)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("%w: payload: %v", ErrInvalidToken, err)
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	if c.Issuer != v.cfg.Issuer {
		return fmt.Errorf("%w: token of another issuer", ErrInvalidToken)
	}
	return nil
}

// checkTimes requires exp and refuses nbf or iat in the future, each with the configured leeway.
func (v *Verifier) checkTimes(c keycloakClaims, now time.Time) error {
	switch {
	case c.Expiry == nil:
		return fmt.Errorf("%w: token has no expiry", ErrInvalidToken)
	case !now.Before(c.Expiry.time().Add(v.cfg.Leeway)):
		return fmt.Errorf("%w: token expired", ErrInvalidToken)
	case c.NotBefore != nil && now.Add(v.cfg.Leeway).Before(c.NotBefore.time()):
		return fmt.Errorf("%w: token not valid yet", ErrInvalidToken)
	case c.IssuedAt != nil && now.Add(v.cfg.Leeway).Before(c.IssuedAt.time()):
		return fmt.Errorf("%w: token issued in the future", ErrInvalidToken)
	}
	return nil
}

// purge forgets every verified token, when a new key set arrives: tokens verified under the old set might name a
// key that is gone now, and must be verified again.
func (v *Verifier) purge() {
	if v.verified != nil {
		v.verified.Purge()
	}
}

// KeyFetches counts how often the realm's keys were fetched (for benchmarks and tests of the steady state).
func (v *Verifier) KeyFetches() int64 { return v.keys.fetches.Load() }

// Introspections counts calls to Keycloak's introspection endpoint.
func (v *Verifier) Introspections() int64 { return v.introspects.Load() }

// checkActive asks Keycloak whether the token is still active, and remembers the answer for IntrospectCache at
// most (never past exp): a token revoked in Keycloak is refused within that bound.
func (v *Verifier) checkActive(ctx context.Context, raw string, exp time.Time) error {
	sum := sha256.Sum256([]byte(raw))
	now := v.now()
	if e, ok := v.introspected.Get(sum); ok && now.Before(e.until) {
		if !e.active {
			return fmt.Errorf("%w: token is not active", ErrInvalidToken)
		}
		return nil
	}
	v.introspects.Add(1)
	active, err := v.intro.active(ctx, raw)
	if err != nil {
		return fmt.Errorf("introspecting token: %w", err)
	}
	until := now.Add(v.cfg.IntrospectCache)
	if exp.Before(until) {
		until = exp
	}
	v.introspected.Add(sum, cacheEntry{active: active, until: until})
	if !active {
		return fmt.Errorf("%w: token is not active", ErrInvalidToken)
	}
	return nil
}

// jsonTime is a NumericDate: seconds since the epoch, possibly with a fraction.
type jsonTime float64

func (t *jsonTime) time() time.Time {
	if t == nil {
		return time.Time{}
	}
	sec := float64(*t)
	return time.Unix(int64(sec), int64((sec-float64(int64(sec)))*1e9))
}

// ConfigFrom is the verifier configuration of a service's Keycloak settings, the same for every service.
func ConfigFrom(k config.Keycloak) VerifierConfig {
	return VerifierConfig{
		KeycloakURL: k.URL, Realm: k.Realm, Issuer: k.Issuer, Audience: k.Audience,
		Introspect: k.IntrospectTokens, IntrospectCache: k.IntrospectCache,
		ClientID: k.ClientID, ClientSecret: k.ClientSecret.Reveal(),
	}
}
