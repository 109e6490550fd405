package testinfra

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Balancer stands in for the ingress in front of several gateway processes: it forwards every request to the
// replica the test chose with Via, adding X-Forwarded-For as ingress-nginx does.
type Balancer struct {
	*httptest.Server
	target  atomic.Int32
	targets []string // host:port of each replica's HTTP listener
	served  []atomic.Int64
}

// NewBalancer serves until t finishes; Route sets its replicas.
func NewBalancer(t testing.TB) *Balancer {
	b := &Balancer{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(b.target.Load())
		b.served[i].Add(1)
		u, _ := url.Parse("http://" + b.targets[i])
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
	}))
	t.Cleanup(b.Close)
	return b
}

// Route sets the replicas' HTTP addresses (host:port), before the first request.
func (b *Balancer) Route(addrs ...string) {
	b.targets = addrs
	b.served = make([]atomic.Int64, len(addrs))
}

// Via sends the following requests to replica i and returns the balancer's URL.
func (b *Balancer) Via(i int) string {
	b.target.Store(int32(i))
	return b.URL
}

// Served is how many requests replica i got.
func (b *Balancer) Served(i int) int64 { return b.served[i].Load() }

// Browser is a cookie jar that follows no redirect by itself, so the test decides where each hop goes.
type Browser struct {
	t testing.TB
	c *http.Client
}

// NewBrowser returns an empty browser.
func NewBrowser(t testing.TB) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Do sends req and returns the response with its body read.
func (b *Browser) Do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// Get fetches u.
func (b *Browser) Get(u string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.Do(req)
}

var loginFormAction = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// SignIn signs a realm user into the dashboard as a person would, through the real Keycloak login form: the login
// starts on the gateway behind start and the callback is sent to the gateway behind callback (both the
// dashboard's public URL, pointed at a replica). It returns once the dashboard has redirected to next.
func (b *Browser) SignIn(start, callback func() string, keycloakURL, user, password, next string) {
	b.t.Helper()
	base := start()
	resp, _ := b.Get(base + "/dashboard/login?next=" + url.QueryEscape(next))
	authURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(authURL, keycloakURL+"/realms/"+Realm+"/protocol/openid-connect/auth") {
		b.t.Fatalf("dashboard login: %d to %q", resp.StatusCode, authURL)
	}
	resp, page := b.Get(authURL)
	m := loginFormAction.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		b.t.Fatalf("Keycloak login page: %d\n%s", resp.StatusCode, page)
	}
	req, _ := http.NewRequest(http.MethodPost, html.UnescapeString(m[1]),
		strings.NewReader(url.Values{"username": {user}, "password": {password}, "credentialId": {""}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, page = b.Do(req)
	back := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(back, base+"/dashboard/callback?") {
		b.t.Fatalf("Keycloak after the password: %d to %q\n%s", resp.StatusCode, back, page)
	}
	resp, page = b.Get(callback() + strings.TrimPrefix(back, base))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != next {
		b.t.Fatalf("dashboard callback: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
}
