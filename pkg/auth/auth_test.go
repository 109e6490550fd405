package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// fakeRealm serves the two Keycloak endpoints the package calls — the realm's keys and the token endpoint — and
// counts the calls. The real Keycloak is exercised by the gateway's integration tests; these tests pin each rule
// with tokens we sign ourselves.
type fakeRealm struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	keys   map[string]*rsa.PrivateKey
	active bool
	// certsDown makes the keys endpoint answer 503, as Keycloak does while it starts.
	certsDown atomic.Bool

	certCalls, tokenCalls, introspectCalls atomic.Int64
	tokenLife                              int
}

func newFakeRealm(t *testing.T) *fakeRealm {
	f := &fakeRealm{t: t, keys: map[string]*rsa.PrivateKey{}, active: true, tokenLife: 300}
	f.addKey("k1")
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRealm) addKey(kid string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.keys[kid] = k
	f.mu.Unlock()
}

func (f *fakeRealm) issuer() string { return f.srv.URL + "/realms/r" }

func (f *fakeRealm) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/realms/r/protocol/openid-connect/certs":
		f.certCalls.Add(1)
		if f.certsDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		f.mu.Lock()
		var keys []map[string]string
		for kid, k := range f.keys {
			keys = append(keys, map[string]string{"kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig",
				"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
		}
		// An encryption key, as Keycloak publishes one: it must be ignored.
		keys = append(keys, map[string]string{"kid": "enc", "kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "n": "AQAB", "e": "AQAB"})
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	case "/realms/r/protocol/openid-connect/token":
		f.tokenCalls.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok" + time.Now().String(), "expires_in": f.tokenLife})
	case "/realms/r/protocol/openid-connect/token/introspect":
		f.introspectCalls.Add(1)
		f.mu.Lock()
		active := f.active
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"active": active})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeRealm) claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": f.issuer(), "aud": []string{"casekeeper-api", "account"}, "sub": "user-1", "azp": "acme-backend",
		"typ": "Bearer", "tenant": "acme", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"realm_access":    map[string]any{"roles": []string{"cases:read"}},
		"resource_access": map[string]any{"casekeeper-api": map[string]any{"roles": []string{"extra"}}, "other": map[string]any{"roles": []string{"cases:write"}}},
	}
}

func (f *fakeRealm) sign(kid string, c jwt.MapClaims) string {
	f.mu.Lock()
	k := f.keys[kid]
	f.mu.Unlock()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fakeRealm) verifier(t *testing.T, mod func(*VerifierConfig)) *Verifier {
	cfg := VerifierConfig{KeycloakURL: f.srv.URL, Realm: "r", Audience: "casekeeper-api", Leeway: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	v, err := NewVerifier(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyAcceptsAccessTokenAndReadsIdentity(t *testing.T) {
	f := newFakeRealm(t)
	v := f.verifier(t, nil)
	p, err := v.Verify(context.Background(), f.sign("k1", f.claims()))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "user-1" || p.ClientID != "acme-backend" || p.Tenant != "acme" {
		t.Fatalf("principal = %+v", p)
	}
	// Realm roles and the audience client's roles count; another client's roles do not.
	if !p.Has("cases:read") || !p.Has("extra") || p.Has("cases:write") {
		t.Fatalf("roles = %v", p.Roles)
	}
}

func TestVerifyRejectsUntrustworthyTokens(t *testing.T) {
	f := newFakeRealm(t)
	// A bad signature under a known key id makes the key set fetch again (it cannot tell a forged signature from a
	// rotated key); a short interval keeps those waits short here.
	v := f.verifier(t, func(c *VerifierConfig) { c.KeyRefreshInterval = 50 * time.Millisecond })
	good := f.sign("k1", f.claims())
	with := func(k string, val any) string {
		c := f.claims()
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return f.sign("k1", c)
	}
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tamperedPayload := strings.Replace(string(payload), `"tenant":"acme"`, `"tenant":"globex"`, 1)
	if tamperedPayload == string(payload) {
		t.Fatal("tampering did not change the payload")
	}
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(tamperedPayload)) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + parts[1] + "."
	// HMAC confusion: an HS256 token keyed with the realm's public key, which anybody can download.
	f.mu.Lock()
	pubDER := f.keys["k1"].N.Bytes()
	f.mu.Unlock()
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, f.claims())
	hs.Header["kid"] = "k1"
	hsToken, _ := hs.SignedString(pubDER)
	unknownKid := func() string {
		f.addKey("rogue")
		s := f.sign("rogue", f.claims())
		f.mu.Lock()
		delete(f.keys, "rogue")
		f.mu.Unlock()
		return s
	}()

	cases := map[string]string{
		"expired":            with("exp", time.Now().Add(-time.Minute).Unix()),
		"no expiry":          with("exp", nil),
		"not yet valid":      with("nbf", time.Now().Add(time.Minute).Unix()),
		"issued in future":   with("iat", time.Now().Add(time.Minute).Unix()),
		"wrong issuer":       with("iss", "http://evil/realms/r"),
		"wrong audience":     with("aud", []string{"account"}),
		"no audience":        with("aud", nil),
		"id token":           with("typ", "ID"),
		"refresh token":      with("typ", "Refresh"),
		"no type":            with("typ", nil),
		"malformed tenant":   with("tenant", "acme.>"),
		"tampered":           tampered,
		"alg none":           none,
		"hmac with rsa key":  hsToken,
		"unknown key id":     unknownKid,
		"garbage":            "not-a-jwt",
		"oversized":          strings.Repeat("a", maxTokenBytes+1),
		"signature stripped": parts[0] + "." + parts[1] + ".",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tok)
			if err == nil {
				t.Fatal("accepted")
			}
			if status.Code(ToStatus(err)) != codes.Unauthenticated {
				t.Fatalf("error %v maps to %v, want Unauthenticated", err, status.Code(ToStatus(err)))
			}
		})
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("good token refused after the bad ones: %v", err)
	}
}

func TestExpiryFollowsTheClockEvenForCachedTokens(t *testing.T) {
	f := newFakeRealm(t)
	now := time.Now()
	clock := newTestClock(now)
	v := f.verifier(t, func(c *VerifierConfig) { c.Now = clock.Now })
	tok := f.sign("k1", f.claims())
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	later := now.Add(5*time.Minute + 2*time.Second)
	clock.Set(later)
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Fatal("cached token accepted after expiry")
	}
}

func TestKeyRotationIsPickedUpAndUnknownKidsAreRateLimited(t *testing.T) {
	f := newFakeRealm(t)
	v := f.verifier(t, func(c *VerifierConfig) { c.KeyRefreshInterval = time.Second })
	ctx := context.Background()
	if _, err := v.Verify(ctx, f.sign("k1", f.claims())); err != nil {
		t.Fatal(err)
	}
	// A flood of made-up key ids costs at most one fetch per interval: concurrent requests share one fetch.
	forged := make([]string, 50)
	for i := range forged {
		c := f.claims()
		c["jti"] = strconv.Itoa(i)
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = "made-up"
		f.mu.Lock()
		forged[i], _ = tok.SignedString(f.keys["k1"])
		f.mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, s := range forged {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(ctx, s); err == nil {
				t.Error("token with an unknown kid accepted")
			}
		}()
	}
	wg.Wait()
	if got := v.KeyFetches(); got > 2 {
		t.Fatalf("key fetches after a flood of unknown kids = %d, want ≤ 2", got)
	}
	// Rotation right after a fetch: the first token of the new key waits for the next allowed fetch and passes.
	f.addKey("k2")
	start := time.Now()
	if _, err := v.Verify(ctx, f.sign("k2", f.claims())); err != nil {
		t.Fatalf("token of the rotated key refused: %v", err)
	}
	// It waits for the rest of the interval (1 s here), never fails; the bound is loose for loaded machines.
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("first token of the new key waited %v", waited)
	}
	// Steady state: many verifications, no further calls to Keycloak.
	before := f.certCalls.Load()
	for i := range 100 {
		c := f.claims()
		c["jti"] = strconv.Itoa(i)
		if _, err := v.Verify(ctx, f.sign("k2", c)); err != nil {
			t.Fatal(err)
		}
	}
	if after := f.certCalls.Load(); after != before {
		t.Fatalf("steady state made %d calls to Keycloak", after-before)
	}
}

func TestUnreachableKeycloakIsUnavailableNotUnauthenticated(t *testing.T) {
	f := newFakeRealm(t)
	tok := f.sign("k1", f.claims())
	f.srv.Close()
	v := f.verifier(t, nil)
	_, err := v.Verify(context.Background(), tok)
	if status.Code(ToStatus(err)) != codes.Unavailable {
		t.Fatalf("err = %v → %v, want Unavailable", err, status.Code(ToStatus(err)))
	}
}

func TestKeycloakAnsweringErrorsIsUnavailable(t *testing.T) {
	f := newFakeRealm(t)
	f.certsDown.Store(true)
	v := f.verifier(t, nil)
	_, err := v.Verify(context.Background(), f.sign("k1", f.claims()))
	if status.Code(ToStatus(err)) != codes.Unavailable {
		t.Fatalf("err = %v → %v, want Unavailable", err, status.Code(ToStatus(err)))
	}
	f.certsDown.Store(false)
	// A request right behind the failed fetch may still share its answer; the next fetch succeeds.
	tok := f.sign("k1", f.claims())
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Verify(context.Background(), tok)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("once Keycloak answers again: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWithdrawnKeyStopsBeingTrustedAfterKeyMaxAge(t *testing.T) {
	f := newFakeRealm(t)
	now := time.Now()
	clock := newTestClock(now)
	v := f.verifier(t, func(c *VerifierConfig) {
		c.Now = clock.Now
		c.KeyMaxAge, c.KeyRefreshInterval = time.Minute, 10*time.Millisecond
	})
	ctx := context.Background()
	signed := func(kid string, n int) string {
		c := f.claims()
		c["jti"] = kid + strconv.Itoa(n)
		return f.sign(kid, c)
	}
	if _, err := v.Verify(ctx, signed("k1", 0)); err != nil {
		t.Fatal(err)
	}
	// The realm rotates: k2 signs from now on and k1 is withdrawn.
	f.addKey("k2")
	old := make([]string, 200)
	for i := range old {
		old[i] = signed("k1", i+1)
	}
	f.mu.Lock()
	delete(f.keys, "k1")
	f.mu.Unlock()
	// Nothing tells the verifier that k1 is gone until its keys are KeyMaxAge old.
	if _, err := v.Verify(ctx, old[0]); err != nil {
		t.Fatalf("k1 refused before its keys aged: %v", err)
	}
	later := now.Add(2 * time.Minute)
	clock.Set(later)
	deadline := time.Now().Add(5 * time.Second)
	for i := 1; ; i++ {
		if i == len(old) || time.Now().After(deadline) {
			t.Fatal("a withdrawn key is still trusted after KeyMaxAge")
		}
		if _, err := v.Verify(ctx, old[i]); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := v.Verify(ctx, signed("k2", 1)); err != nil {
		t.Fatalf("token of the current key refused: %v", err)
	}
}

func TestIntrospectionOncePerToken(t *testing.T) {
	f := newFakeRealm(t)
	v := f.verifier(t, func(c *VerifierConfig) {
		c.Introspect, c.ClientID, c.ClientSecret, c.CacheSize = true, "gw", "s", -1
	})
	tok := f.sign("k1", f.claims())
	for range 3 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.introspectCalls.Load(); n != 1 {
		t.Fatalf("introspection calls = %d, want 1", n)
	}
	f.mu.Lock()
	f.active = false
	f.mu.Unlock()
	c := f.claims()
	c["jti"] = "revoked"
	if _, err := v.Verify(context.Background(), f.sign("k1", c)); status.Code(ToStatus(err)) != codes.Unauthenticated {
		t.Fatalf("revoked token: %v", err)
	}
}

func TestAuthenticateDelegation(t *testing.T) {
	f := newFakeRealm(t)
	v := f.verifier(t, nil)
	gw := f.claims()
	gw["azp"], gw["sub"] = "casekeeper-gateway", "sa-gateway"
	delete(gw, "tenant")
	gw["realm_access"] = map[string]any{"roles": []string{RoleDelegate}}
	gwTok := f.sign("k1", gw)
	policy := Policy{Roles: map[string]string{"/m": RoleCasesRead}}
	call := func(pairs ...string) (Principal, error) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(pairs...))
		ctx, err := Authenticate(ctx, v, policy, "/m")
		if err != nil {
			return Principal{}, err
		}
		p, _ := FromContext(ctx)
		return p, nil
	}
	p, err := call("authorization", "Bearer "+gwTok, mdSubject, "u1", mdClient, "acme-backend", mdTenant, "acme", mdRoles, "cases:read")
	if err != nil || p.Tenant != "acme" || p.Via != "casekeeper-gateway" || p.Subject != "u1" {
		t.Fatalf("delegated call: %+v %v", p, err)
	}
	// Two tenants: something appended instead of replacing.
	if _, err := call("authorization", "Bearer "+gwTok, mdSubject, "u1", mdTenant, "globex", mdTenant, "acme", mdRoles, "cases:read"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("duplicate tenant: %v", err)
	}
	// Delegation does not chain.
	if _, err := call("authorization", "Bearer "+gwTok, mdSubject, "u1", mdTenant, "acme", mdRoles, "cases:read "+RoleDelegate); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("chained delegation: %v", err)
	}
	// A tenant's own token cannot assert somebody else.
	acme := f.sign("k1", f.claims())
	p, err = call("authorization", "Bearer "+acme, mdSubject, "x", mdTenant, "globex", mdRoles, "cases:read")
	if err != nil || p.Tenant != "acme" || p.Via != "" {
		t.Fatalf("non-delegate assertion: %+v %v", p, err)
	}
	// Two authorization values are refused.
	if _, err := call("authorization", "Bearer "+acme, "authorization", "Bearer "+gwTok); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("two tokens: %v", err)
	}
	// The gateway's own token lacks cases:read.
	if _, err := call("authorization", "Bearer "+gwTok); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("no role: %v", err)
	}
	// Unknown methods are closed; Admit sees the principal and can refuse.
	if _, err := Authenticate(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+acme)), v, policy, "/other"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("unknown method: %v", err)
	}
	policy.Admit = func(_ context.Context, _ string, p Principal) error {
		if p.ClientID == "acme-backend" {
			return status.Error(codes.ResourceExhausted, "slow down")
		}
		return nil
	}
	if _, err := call("authorization", "Bearer "+acme); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("admit: %v", err)
	}
}

func TestDelegateReplacesIdentityMetadata(t *testing.T) {
	f := newFakeRealm(t)
	creds := NewClientCredentials(f.srv.URL, "r", "gw", "s")
	// What grpc-gateway would forward from Grpc-Metadata-* headers of a hostile HTTP caller.
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"authorization", "Bearer caller", mdTenant, "globex", mdSubject, "someone", "x-request-id", "r1")
	ctx = WithPrincipal(ctx, Principal{Subject: "u1", ClientID: "acme-backend", Tenant: "acme", Roles: []string{"cases:read"}})
	ctx, err := delegate(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	if got := md.Get(mdTenant); len(got) != 1 || got[0] != "acme" {
		t.Fatalf("tenant metadata = %v", got)
	}
	if got := md.Get("authorization"); len(got) != 1 || !strings.HasPrefix(got[0], "Bearer tok") {
		t.Fatalf("authorization = %v", got)
	}
	if got := md.Get("x-request-id"); len(got) != 1 {
		t.Fatalf("unrelated metadata lost: %v", md)
	}
	// Without a principal no identity is asserted at all, not even a forwarded one.
	ctx, _ = delegate(metadata.AppendToOutgoingContext(context.Background(), mdTenant, "globex"), creds)
	md, _ = metadata.FromOutgoingContext(ctx)
	if len(md.Get(mdTenant)) != 0 {
		t.Fatalf("forwarded tenant kept: %v", md)
	}
}

func TestClientCredentialsRenewInBackground(t *testing.T) {
	f := newFakeRealm(t)
	f.tokenLife = 40
	creds := NewClientCredentials(f.srv.URL, "r", "gw", "s")
	now := time.Now()
	clock := newTestClock(now)
	creds.now = clock.Now
	ctx := context.Background()
	first, err := creds.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if tok, _ := creds.Token(ctx); tok != first {
			t.Fatal("token changed before renewal time")
		}
	}
	if creds.Logins() != 1 {
		t.Fatalf("logins = %d, want 1", creds.Logins())
	}
	// Past 3/4 of its life: the current token is still handed out while a new one is fetched.
	later := now.Add(31 * time.Second)
	clock.Set(later)
	if tok, _ := creds.Token(ctx); tok != first {
		t.Fatal("caller waited for the renewal")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok, err := creds.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tok != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("token not renewed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := creds.Logins(); n != 2 {
		t.Fatalf("logins = %d, want 2 (one renewal, however many callers)", n)
	}
	// Past expiry with Keycloak gone: an error, not the expired token.
	f.srv.Close()
	expired := later.Add(time.Hour)
	clock.Set(expired)
	if _, err := creds.Token(ctx); err == nil {
		t.Fatal("expired token handed out")
	}
}

// slowTokenEndpoint is a token endpoint whose answers after the first wait until release is closed.
type slowTokenEndpoint struct {
	srv     *httptest.Server
	calls   atomic.Int64
	entered chan struct{} // one value per request that reached the endpoint
	release chan struct{}
}

func newSlowTokenEndpoint(t *testing.T, life int) *slowTokenEndpoint {
	e := &slowTokenEndpoint{entered: make(chan struct{}, 100), release: make(chan struct{})}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := e.calls.Add(1)
		e.entered <- struct{}{}
		if n > 1 {
			select {
			case <-e.release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok%d", n), "expires_in": life})
	}))
	t.Cleanup(e.srv.Close)
	t.Cleanup(e.releaseOnce)
	return e
}

func (e *slowTokenEndpoint) releaseOnce() {
	select {
	case <-e.release:
	default:
		close(e.release)
	}
}

func (e *slowTokenEndpoint) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-e.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no request reached the token endpoint")
	}
}

func TestClientCredentialsRenewalDoesNotBlockValidToken(t *testing.T) {
	e := newSlowTokenEndpoint(t, 40)
	creds := NewClientCredentials(e.srv.URL, "r", "gw", "s")
	now := time.Now()
	clock := newTestClock(now)
	creds.now = clock.Now
	ctx := context.Background()
	first, err := creds.Token(ctx)
	if err != nil || first != "tok1" {
		t.Fatalf("first token %q: %v", first, err)
	}
	e.waitEntered(t)

	// Past 3/4 of its life: the renewal starts and hangs at Keycloak.
	later := now.Add(31 * time.Second)
	clock.Set(later)
	if tok, err := creds.Token(ctx); err != nil || tok != first {
		t.Fatalf("token during renewal %q: %v", tok, err)
	}
	e.waitEntered(t)

	// While it hangs, many callers get the still-valid token at once.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			start := time.Now()
			tok, err := creds.Token(ctx)
			switch {
			case err != nil:
				errs <- err
			case tok != first:
				errs <- fmt.Errorf("token %q, want %q", tok, first)
			case time.Since(start) > 500*time.Millisecond:
				errs <- fmt.Errorf("caller waited %v for the renewal", time.Since(start))
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("callers with a valid token blocked behind the renewal")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.calls.Load(); n != 2 {
		t.Fatalf("token endpoint calls = %d, want 2 (one renewal in flight, however many callers)", n)
	}

	// The renewal completes and its token is swapped in.
	e.releaseOnce()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok, err := creds.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tok == "tok2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("token not renewed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := e.calls.Load(); n != 2 {
		t.Fatalf("token endpoint calls = %d, want 2", n)
	}
}

func TestClientCredentialsWaitersShareOneLogin(t *testing.T) {
	e := newSlowTokenEndpoint(t, 40)
	creds := NewClientCredentials(e.srv.URL, "r", "gw", "s")
	now := time.Now()
	clock := newTestClock(now)
	creds.now = clock.Now
	if _, err := creds.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.waitEntered(t)

	// Expired: callers must wait, but for one shared login; a caller whose context ends stops waiting.
	expired := now.Add(time.Hour)
	clock.Set(expired)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := creds.Token(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting caller with an ended context: %v", err)
	}
	e.waitEntered(t)
	var wg sync.WaitGroup
	toks := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			tok, err := creds.Token(context.Background())
			if err != nil {
				t.Error(err)
			}
			toks <- tok
		})
	}
	time.Sleep(100 * time.Millisecond)
	e.releaseOnce()
	wg.Wait()
	close(toks)
	for tok := range toks {
		if tok != "tok2" {
			t.Fatalf("token %q, want tok2", tok)
		}
	}
	if n := e.calls.Load(); n != 2 {
		t.Fatalf("token endpoint calls = %d, want 2", n)
	}
}

// A stream ends when its token would no longer be accepted: the principal carries that moment, cached or not,
// and a delegated identity keeps the expiry of the token that carried it.
func TestPrincipalCarriesTheTokenExpiry(t *testing.T) {
	f := newFakeRealm(t)
	v := f.verifier(t, nil)
	c := f.claims()
	exp := time.Unix(c["exp"].(int64), 0)
	tok := f.sign("k1", c)
	for range 2 { // verified, then from the cache
		p, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if want := exp.Add(time.Second); !p.ExpiresAt.Equal(want) {
			t.Fatalf("ExpiresAt = %v, want exp plus leeway %v", p.ExpiresAt, want)
		}
	}
	gw := f.claims()
	gw["azp"], gw["sub"] = "casekeeper-gateway", "sa-gateway"
	gw["realm_access"] = map[string]any{"roles": []string{RoleDelegate}}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+f.sign("k1", gw),
		mdSubject, "u1", mdTenant, "acme", mdRoles, "cases:read"))
	ctx, err := Authenticate(ctx, v, Policy{Roles: map[string]string{"/m": RoleCasesRead}}, "/m")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := FromContext(ctx); p.ExpiresAt.IsZero() || p.Via != "casekeeper-gateway" {
		t.Fatalf("delegated principal: %+v", p)
	}
}

// TestIntrospectionAnswerBoundedInTime: a token revoked after it was introspected active is refused once
// IntrospectCache has passed, although it has not expired and its principal is still in the verified cache.
func TestIntrospectionAnswerBoundedInTime(t *testing.T) {
	f := newFakeRealm(t)
	now := time.Now()
	clock := newTestClock(now)
	v := f.verifier(t, func(c *VerifierConfig) {
		c.Introspect, c.ClientID, c.ClientSecret = true, "gw", "s"
		c.IntrospectCache = 10 * time.Second
		c.Now = clock.Now
	})
	tok := f.sign("k1", f.claims())
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.active = false // revoked in Keycloak
	f.mu.Unlock()
	soon := now.Add(5 * time.Second)
	clock.Set(soon)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within the cache bound: %v", err)
	}
	if n := f.introspectCalls.Load(); n != 1 {
		t.Fatalf("introspection calls within the bound = %d, want 1", n)
	}
	later := now.Add(11 * time.Second)
	clock.Set(later)
	if _, err := v.Verify(context.Background(), tok); status.Code(ToStatus(err)) != codes.Unauthenticated {
		t.Fatalf("revoked token after the cache bound: %v", err)
	}
	if n := f.introspectCalls.Load(); n != 2 {
		t.Fatalf("introspection calls = %d, want 2", n)
	}
}

// testClock is a clock a test moves by hand; safe for the goroutines that read it.
type testClock struct{ at atomic.Pointer[time.Time] }

func newTestClock(at time.Time) *testClock {
	c := &testClock{}
	c.Set(at)
	return c
}

func (c *testClock) Now() time.Time   { return *c.at.Load() }
func (c *testClock) Set(at time.Time) { c.at.Store(&at) }
