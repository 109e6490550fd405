package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/auth"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// These tests cover the sign-in protocol and the form rules with a stand-in for Keycloak's token endpoint, where
// the browser tests cannot look: the PKCE verifier sent matches the challenge, a wrong state is refused, the
// cookies' attributes, the refresh before expiry, the logout URL. tests/dashboard_test.go runs the real thing end to
// end.

type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, raw string) (auth.Principal, error) {
	switch raw {
	case "access-1", "access-2":
		return auth.Principal{Subject: "u1", Tenant: "acme", Roles: []string{auth.RoleWebhooksManage, auth.RoleCasesRead}}, nil
	case "access-notenant":
		return auth.Principal{Subject: "u2", Roles: []string{auth.RoleWebhooksManage}}, nil
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

// fakeKeycloak is the realm's token endpoint, which checks the client's credentials and the PKCE verifier, and its
// keys endpoint, whose key signs the ID tokens.
type fakeKeycloak struct {
	t         *testing.T
	srv       *httptest.Server
	key       *rsa.PrivateKey
	mu        sync.Mutex
	challenge string
	nonce     string
	grants    []string
	access    string
	// forgeIDToken makes the ID token's signature that of another key.
	forgeIDToken bool
}

func newFakeKeycloak(t *testing.T) *fakeKeycloak {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKeycloak{t: t, key: key, access: "access-1"}
	k.srv = httptest.NewServer(http.HandlerFunc(k.serve))
	t.Cleanup(k.srv.Close)
	return k
}

func (k *fakeKeycloak) forgeIDTokens() {
	k.mu.Lock()
	k.forgeIDToken = true
	k.mu.Unlock()
}

func (k *fakeKeycloak) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/realms/casekeeper/protocol/openid-connect/certs" {
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
		return
	}
	k.token(w, r)
}

// idToken signs claims as the realm does (k.mu held).
func (k *fakeKeycloak) idToken(claims []byte) string {
	key := k.key
	if k.forgeIDToken {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			k.t.Fatal(err)
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		k.t.Fatal(err)
	}
	jws, err := signer.Sign(claims)
	if err != nil {
		k.t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		k.t.Fatal(err)
	}
	return s
}

func (k *fakeKeycloak) expect(challenge, nonce string) {
	k.mu.Lock()
	k.challenge, k.nonce = challenge, nonce
	k.mu.Unlock()
}

func (k *fakeKeycloak) setAccess(token string) {
	k.mu.Lock()
	k.access = token
	k.mu.Unlock()
}

func (k *fakeKeycloak) grantsSoFar() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.grants...)
}

func (k *fakeKeycloak) issuer() string { return k.srv.URL + "/realms/casekeeper" }

func (k *fakeKeycloak) token(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/realms/casekeeper/protocol/openid-connect/token" {
		http.NotFound(w, r)
		return
	}
	// As Keycloak does: without it x/oauth2 would read the answer as a form.
	w.Header().Set("Content-Type", "application/json")
	id, secret, ok := r.BasicAuth()
	if !ok || id != "casekeeper-dashboard" || secret != "s3cret" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"unauthorized_client"}`)
		return
	}
	_ = r.ParseForm()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.grants = append(k.grants, r.PostForm.Get("grant_type"))
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if r.PostForm.Get("code") != "code-1" || base64.RawURLEncoding.EncodeToString(sum[:]) != k.challenge {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
	case "refresh_token":
		if r.PostForm.Get("refresh_token") != "refresh-1" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		k.access = "access-2"
	}
	claims, _ := json.Marshal(map[string]any{"iss": k.issuer(), "aud": "casekeeper-dashboard", "exp": time.Now().Add(5 * time.Minute).Unix(),
		"nonce": k.nonce, "sub": "u1", "email": "admin@acme.test"})
	idToken := k.idToken(claims)
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": k.access, "id_token": idToken, "refresh_token": "refresh-1",
		"expires_in": 300, "refresh_expires_in": 1800})
}

// fakeWebhooks records the authorization the dashboard forwards.
type fakeWebhooks struct {
	Webhooks
	mu    sync.Mutex
	auths []string
	err   error
}

func (f *fakeWebhooks) ListEndpoints(ctx context.Context, _ *casekeeperv1.ListEndpointsRequest, _ ...grpc.CallOption) (*casekeeperv1.ListEndpointsResponse, error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	f.mu.Lock()
	f.auths = append(f.auths, strings.Join(md.Get("authorization"), ","))
	f.mu.Unlock()
	return &casekeeperv1.ListEndpointsResponse{}, nil
}

func (f *fakeWebhooks) GetNoticeSettings(context.Context, *casekeeperv1.GetNoticeSettingsRequest, ...grpc.CallOption) (*casekeeperv1.GetNoticeSettingsResponse, error) {
	return &casekeeperv1.GetNoticeSettingsResponse{Settings: &casekeeperv1.NoticeSettings{}}, nil
}

func (f *fakeWebhooks) ListNotices(context.Context, *casekeeperv1.ListNoticesRequest, ...grpc.CallOption) (*casekeeperv1.ListNoticesResponse, error) {
	return &casekeeperv1.ListNoticesResponse{}, nil
}

func (f *fakeWebhooks) CreateEndpoint(context.Context, *casekeeperv1.CreateEndpointRequest, ...grpc.CallOption) (*casekeeperv1.CreateEndpointResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nil, f.err
}

func (f *fakeWebhooks) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeWebhooks) authorizations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auths...)
}

type fakeCases struct{ Cases }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	kc       *fakeKeycloak
	h        *Handler
	srv      *httptest.Server
	client   *http.Client
	webhooks *fakeWebhooks
	clock    *clock
}

func newFixture(t *testing.T, secure bool) *fixture {
	t.Helper()
	kc := newFakeKeycloak(t)
	f := &fixture{kc: kc, webhooks: &fakeWebhooks{}, clock: &clock{now: time.Now()}}
	f.srv = httptest.NewUnstartedServer(nil)
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	h, err := New(Options{KeycloakURL: kc.srv.URL, ClientID: "casekeeper-dashboard", ClientSecret: "s3cret",
		PublicURL: f.srv.URL, CookieSecure: secure, Verifier: fakeVerifier{}, Webhooks: f.webhooks, Cases: fakeCases{},
		Key: testKey, Sessions: newMemStore(), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	f.srv.Config.Handler = h
	jar, _ := cookiejar.New(nil)
	f.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

func (f *fixture) get(t *testing.T, path string) *http.Response {
	t.Helper()
	resp, err := f.client.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// signIn runs the sign-in the way a browser would and returns the authorization URL it was sent to.
func (f *fixture) signIn(t *testing.T) *url.URL {
	t.Helper()
	resp := f.get(t, "/dashboard/login?next=/dashboard/webhooks")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	q := authURL.Query()
	f.kc.expect(q.Get("code_challenge"), q.Get("nonce"))
	cb := f.get(t, "/dashboard/callback?"+url.Values{"code": {"code-1"}, "state": {q.Get("state")}}.Encode())
	if cb.StatusCode != http.StatusSeeOther || cb.Header.Get("Location") != "/dashboard/webhooks" {
		t.Fatalf("callback: %d to %q: %s", cb.StatusCode, cb.Header.Get("Location"), body(t, cb))
	}
	return authURL
}

func TestSignInWithPKCE(t *testing.T) {
	f := newFixture(t, true)
	authURL := f.signIn(t)
	q := authURL.Query()
	if authURL.Path != "/realms/casekeeper/protocol/openid-connect/auth" || q.Get("code_challenge_method") != "S256" ||
		q.Get("client_id") != "casekeeper-dashboard" || q.Get("redirect_uri") != f.srv.URL+"/dashboard/callback" ||
		q.Get("scope") != "openid" || len(q.Get("state")) < 32 || len(q.Get("nonce")) < 32 {
		t.Fatalf("authorization request %s", authURL)
	}
	resp := f.get(t, "/dashboard/webhooks")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhooks after sign-in: %d", resp.StatusCode)
	}
	if got := f.webhooks.authorizations(); len(got) != 1 || got[0] != "Bearer access-1" {
		t.Fatalf("the webhook service got authorization %q, want the user's own token", got)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, secure := range []bool{true, false} {
		f := newFixture(t, secure)
		resp := f.get(t, "/dashboard/login")
		authURL, _ := url.Parse(resp.Header.Get("Location"))
		f.kc.expect(authURL.Query().Get("code_challenge"), authURL.Query().Get("nonce"))
		cb := f.get(t, "/dashboard/callback?"+url.Values{"code": {"code-1"}, "state": {authURL.Query().Get("state")}}.Encode())
		var found bool
		for _, c := range cb.Cookies() {
			if c.Name != sessionCookie {
				continue
			}
			found = true
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != secure || c.Path != "/dashboard/" {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, Secure=%v, Path=/dashboard/", c, secure)
			}
		}
		if !found {
			t.Fatalf("no session cookie after the callback (status %d)", cb.StatusCode)
		}
	}
}

func TestCallbackRefusesWrongStateAndReplayedLogin(t *testing.T) {
	f := newFixture(t, false)
	resp := f.get(t, "/dashboard/login")
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	f.kc.expect(authURL.Query().Get("code_challenge"), authURL.Query().Get("nonce"))
	cb := f.get(t, "/dashboard/callback?code=code-1&state=forged")
	if cb.StatusCode != http.StatusBadRequest || !strings.Contains(body(t, cb), "Sign in again") {
		t.Fatalf("forged state: %d", cb.StatusCode)
	}
	// The login cookie is spent by the first callback: the right state afterwards is refused too.
	cb = f.get(t, "/dashboard/callback?"+url.Values{"code": {"code-1"}, "state": {authURL.Query().Get("state")}}.Encode())
	if cb.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback after the login cookie was spent: %d", cb.StatusCode)
	}
	if len(f.kc.grantsSoFar()) != 0 {
		t.Fatalf("the token endpoint was called for a refused callback: %v", f.kc.grantsSoFar())
	}
}

func TestCallbackRefusesWrongNonce(t *testing.T) {
	f := newFixture(t, false)
	resp := f.get(t, "/dashboard/login")
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	f.kc.expect(authURL.Query().Get("code_challenge"), "another-login")
	cb := f.get(t, "/dashboard/callback?"+url.Values{"code": {"code-1"}, "state": {authURL.Query().Get("state")}}.Encode())
	if cb.StatusCode != http.StatusBadRequest {
		t.Fatalf("ID token of another login: %d", cb.StatusCode)
	}
}

func TestCallbackRefusesIDTokenNotSignedByTheRealm(t *testing.T) {
	f := newFixture(t, false)
	f.kc.forgeIDTokens()
	resp := f.get(t, "/dashboard/login")
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	f.kc.expect(authURL.Query().Get("code_challenge"), authURL.Query().Get("nonce"))
	cb := f.get(t, "/dashboard/callback?"+url.Values{"code": {"code-1"}, "state": {authURL.Query().Get("state")}}.Encode())
	if cb.StatusCode != http.StatusBadRequest {
		t.Fatalf("ID token signed by another key: %d", cb.StatusCode)
	}
}

func TestAccessTokenRefreshedBeforeExpiry(t *testing.T) {
	f := newFixture(t, false)
	f.signIn(t)
	f.clock.add(290 * time.Second) // within refreshAhead of the 300s lifetime
	if resp := f.get(t, "/dashboard/webhooks"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after refresh: %d", resp.StatusCode)
	}
	if got := f.webhooks.authorizations(); len(got) != 1 || got[0] != "Bearer access-2" {
		t.Fatalf("authorization after refresh %q, want the renewed token", got)
	}
	if g := f.kc.grantsSoFar(); len(g) != 2 || g[1] != "refresh_token" {
		t.Fatalf("grants %v, want authorization_code then refresh_token", g)
	}
}

func TestLogoutEndsKeycloakSession(t *testing.T) {
	f := newFixture(t, false)
	f.signIn(t)
	page := body(t, f.get(t, "/dashboard/webhooks"))
	token := csrfFrom(t, page)
	resp, err := f.client.PostForm(f.srv.URL+"/dashboard/logout", url.Values{csrfField: {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if resp.StatusCode != http.StatusSeeOther || loc.Path != "/realms/casekeeper/protocol/openid-connect/logout" ||
		q.Get("id_token_hint") == "" || q.Get("post_logout_redirect_uri") != f.srv.URL+"/dashboard/signed-out" {
		t.Fatalf("logout: %d to %s", resp.StatusCode, loc)
	}
	if r := f.get(t, "/dashboard/webhooks"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/dashboard/login") {
		t.Fatalf("after logout the session still works: %d", r.StatusCode)
	}
}

func TestUserWithoutTenantIsTold(t *testing.T) {
	f := newFixture(t, false)
	f.kc.setAccess("access-notenant")
	resp := f.get(t, "/dashboard/login")
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	f.kc.expect(authURL.Query().Get("code_challenge"), authURL.Query().Get("nonce"))
	cb := f.get(t, "/dashboard/callback?"+url.Values{"code": {"code-1"}, "state": {authURL.Query().Get("state")}}.Encode())
	if b := body(t, cb); cb.StatusCode != http.StatusForbidden || !strings.Contains(b, "not linked to an organisation") {
		t.Fatalf("no tenant: %d %s", cb.StatusCode, b)
	}
}

func csrfFrom(t *testing.T, page string) string {
	t.Helper()
	const marker = `name="csrf_token" value="`
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatal("no CSRF field on the page")
	}
	rest := page[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestFormPostsNeedTokenAndOrigin(t *testing.T) {
	f := newFixture(t, false)
	f.signIn(t)
	token := csrfFrom(t, body(t, f.get(t, "/dashboard/webhooks/new")))
	f.webhooks.fail(status.Error(codes.Unavailable, "down")) // any call that gets through shows as 503, not 403
	cases := []struct {
		name   string
		form   url.Values
		header map[string]string
		want   int
	}{
		{"no token", url.Values{"url": {"https://x.example"}}, nil, http.StatusForbidden},
		{"wrong token", url.Values{"url": {"https://x.example"}, csrfField: {token + "x"}}, nil, http.StatusForbidden},
		{"cross-site", url.Values{csrfField: {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign origin", url.Values{csrfField: {token}}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"null origin", url.Values{csrfField: {token}}, map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"same origin with token", url.Values{"url": {"https://x.example"}, csrfField: {token}},
			map[string]string{"Origin": f.srv.URL, "Sec-Fetch-Site": "same-origin"}, http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/dashboard/webhooks/new", strings.NewReader(c.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
}

func TestValidationErrorsGoNextToTheirFields(t *testing.T) {
	f := newFixture(t, false)
	f.signIn(t)
	token := csrfFrom(t, body(t, f.get(t, "/dashboard/webhooks/new")))
	st, _ := status.New(codes.InvalidArgument, "invalid").WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "endpoint.url", Description: "must use https"},
		{Field: "endpoint.secret_color", Description: "something the form does not show"},
	}})
	f.webhooks.fail(st.Err())
	resp, err := f.client.PostForm(f.srv.URL+"/dashboard/webhooks/new", url.Values{csrfField: {token}, "url": {"ftp://x.example"},
		"headers": {"X-Ok: 1\nno colon here"}})
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The form's own check stops the post before the service is called.
	if !strings.Contains(page, `id="headers-error">line 2: write one header per line`) {
		t.Fatalf("header line error not next to the field:\n%s", page)
	}
	resp, err = f.client.PostForm(f.srv.URL+"/dashboard/webhooks/new", url.Values{csrfField: {token}, "url": {"ftp://x.example"}})
	if err != nil {
		t.Fatal(err)
	}
	page = body(t, resp)
	for _, want := range []string{`id="url-error">must use https`, `aria-invalid="true"`, `value="ftp://x.example"`,
		`id="form-error">something the form does not show`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/dashboard/cases?status=draft": "/dashboard/cases?status=draft",
		"https://evil.example/":         "/dashboard/",
		"//evil.example/dashboard/":     "/dashboard/",
		"/dashboard/\\evil":             "/dashboard/",
		"/dashboard/callback?code=x":    "/dashboard/",
		"":                              "/dashboard/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSealedCookie(t *testing.T) {
	s, err := newSealer(testKey, "login cookie")
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.seal(loginCookie, loginRequest{State: "st"})
	if err != nil {
		t.Fatal(err)
	}
	var lr loginRequest
	if err := s.open(loginCookie, v, &lr); err != nil || lr.State != "st" {
		t.Fatalf("round trip: %v %+v", err, lr)
	}
	if err := s.open(sessionCookie, v, &lr); err == nil {
		t.Error("a sealed value opened under another cookie's name")
	}
	b := []byte(v)
	b[len(b)/2] ^= 1
	if err := s.open(loginCookie, string(b), &lr); err == nil {
		t.Error("a tampered cookie opened")
	}
}

func TestFieldErrors(t *testing.T) {
	if _, ok := fieldErrors(errors.New("plain"), "endpoint."); ok {
		t.Error("a non-status error mapped to fields")
	}
	if _, ok := fieldErrors(status.Error(codes.NotFound, "x"), "endpoint."); ok {
		t.Error("NotFound mapped to fields")
	}
	fe, ok := fieldErrors(status.Error(codes.InvalidArgument, "bad"), "endpoint.")
	if !ok || fe[""] != "bad" {
		t.Errorf("InvalidArgument without details: %v", fe)
	}
}
