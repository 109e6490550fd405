package dashboard

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// alternating serves each request with the next handler in turn, as a load balancer in front of replicas would.
type alternating struct {
	n        atomic.Int64
	handlers []http.Handler
}

func (a *alternating) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.handlers[int(a.n.Add(1)-1)%len(a.handlers)].ServeHTTP(w, r)
}

// replicaFixture is newFixture with a second handler built from the same options (same key, same store) behind
// the same address, requests alternating between the two.
func replicaFixture(t *testing.T, key2 []byte) (*fixture, *alternating) {
	t.Helper()
	f := newFixture(t, false)
	o := f.h.opts
	o.Key = key2
	h2, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	lb := &alternating{handlers: []http.Handler{f.h, h2}}
	f.srv.Config.Handler = lb
	return f, lb
}

func TestSignInAndPagesAlternateBetweenReplicas(t *testing.T) {
	f, lb := replicaFixture(t, testKey)
	f.signIn(t) // login on the first, callback on the second
	if n := lb.n.Load(); n != 2 {
		t.Fatalf("%d requests for the sign-in, want 2 (login, callback)", n)
	}
	for i := range 4 {
		if resp := f.get(t, "/dashboard/webhooks"); resp.StatusCode != http.StatusOK {
			t.Fatalf("page %d (replica %d): %d", i, i%2, resp.StatusCode)
		}
	}
	// A flash set by a post on one replica shows on the next page, served by the other, and only there.
	token := csrfFrom(t, body(t, f.get(t, "/dashboard/webhooks")))
	resp, err := f.client.PostForm(f.srv.URL+"/dashboard/logout", url.Values{csrfField: {token}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	// Signed out on one replica is signed out on both.
	for i := range 2 {
		if r := f.get(t, "/dashboard/webhooks"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/dashboard/login") {
			t.Fatalf("after logout, request %d: %d", i, r.StatusCode)
		}
	}
}

func TestFlashCrossesReplicasOnce(t *testing.T) {
	f, _ := replicaFixture(t, testKey)
	f.signIn(t)
	sess := onlySession(t, f)
	sess.setFlash(&flash{Kind: "ok", Text: "stored on one replica"})
	seen := 0
	for range 2 {
		if strings.Contains(body(t, f.get(t, "/dashboard/webhooks")), "stored on one replica") {
			seen++
		}
	}
	if seen != 1 {
		t.Fatalf("the flash showed on %d pages, want exactly 1", seen)
	}
}

func TestRefreshOnTwoReplicasKeepsOneSession(t *testing.T) {
	f, _ := replicaFixture(t, testKey)
	f.signIn(t)
	f.clock.add(290 * time.Second)
	// Two copies of the session, as two requests on two replicas would load them; both refresh.
	a, b := onlySession(t, f), onlySession(t, f)
	ta, err := f.h.accessToken(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := f.h.accessToken(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if ta != "access-2" || tb != "access-2" {
		t.Fatalf("tokens %q and %q, want the renewed one", ta, tb)
	}
	if resp := f.get(t, "/dashboard/webhooks"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the concurrent refresh: %d", resp.StatusCode)
	}
}

func TestSessionSealedWithAnotherKeyIsNoSession(t *testing.T) {
	f, _ := replicaFixture(t, bytes.Repeat([]byte{8}, 32))
	// The login cookie sealed by the first replica does not open on the second, which has another key: the
	// deployment mistake GATEWAY_SESSION_KEY exists to prevent, refused rather than half working.
	resp := f.get(t, "/dashboard/login")
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	f.kc.expect(authURL.Query().Get("code_challenge"), authURL.Query().Get("nonce"))
	cb := f.get(t, "/dashboard/callback?"+url.Values{"code": {"code-1"}, "state": {authURL.Query().Get("state")}}.Encode())
	if cb.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback on a replica with another key: %d", cb.StatusCode)
	}
}

// onlySession loads the fixture's one stored session.
func onlySession(t *testing.T, f *fixture) *session {
	t.Helper()
	st := f.h.opts.Sessions.(*memStore)
	st.mu.Lock()
	var keys []string
	for k := range st.vals {
		keys = append(keys, k)
	}
	st.mu.Unlock()
	if len(keys) != 1 {
		t.Fatalf("%d sessions stored, want 1", len(keys))
	}
	s, err := f.h.sessions.load(t.Context(), keys[0])
	if err != nil {
		t.Fatal(err)
	}
	return s
}
