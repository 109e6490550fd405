// Package dashboard is the Case-keeper Dashboard served by the gateway under /dashboard/: sign-in through Keycloak
// (authorization code + PKCE), the tenant's Webhook Settings and a read-only view of its cases. Pages are rendered
// on the server with html/template and work without JavaScript; the few assets are embedded in the binary.
//
// The dashboard holds no data of its own. Every page calls the backing services with the signed-in user's access
// token, so the services — not the dashboard — decide what the user's tenant and roles allow; the dashboard only
// checks roles up front to show a clear message instead of an error.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/casekeeper/core/pkg/auth"
)

// Options configure the dashboard. KeycloakURL, ClientID, ClientSecret, PublicURL, Verifier, Webhooks and Cases
// are required.
type Options struct {
	// KeycloakURL is where the gateway reaches Keycloak (KEYCLOAK_URL); Realm defaults to casekeeper.
	KeycloakURL string
	Realm       string
	// Issuer is the realm's public URL (AUTH_ISSUER) when browsers reach Keycloak under another name than the
	// gateway does; empty means KeycloakURL/realms/Realm. Browsers are sent there to sign in and out.
	Issuer string
	// ClientID and ClientSecret are the confidential browser client (DASHBOARD_CLIENT_ID, DASHBOARD_CLIENT_SECRET).
	ClientID     string
	ClientSecret string
	// PublicURL is the gateway's URL as browsers see it (GATEWAY_PUBLIC_URL); the callback is PublicURL +
	// /dashboard/callback and form posts must come from its origin.
	PublicURL string
	// CookieSecure marks the cookies Secure (DASHBOARD_COOKIE_SECURE; true everywhere but plain-http development).
	CookieSecure bool
	// Key (32 bytes, GATEWAY_SESSION_KEY) seals the short-lived login cookie and the sessions in Sessions. Every
	// replica must have the same key: a sign-in may start on one and finish on another.
	Key []byte
	// Sessions is where the sessions live, shared by every replica (the gateway's NATS KV bucket).
	Sessions SessionStore
	// Verifier checks the access tokens Keycloak hands out (the gateway's verifier: audience casekeeper-api).
	Verifier auth.TokenVerifier
	// Webhooks is the webhook service; Cases reads cases; Events, when set, gives the case page its timeline.
	Webhooks Webhooks
	Cases    Cases
	Events   Events
	// Credentials manages the tenants' API credentials in Keycloak; nil: the page says it is not set up.
	Credentials Credentials
	// HTTPClient carries the calls to Keycloak's token endpoint (default: 10s timeout).
	HTTPClient *http.Client
	Log        *slog.Logger
	// Now replaces the clock (tests).
	Now func() time.Time
}

// Handler serves /dashboard/. Mount it on the gateway's mux with the pattern "/dashboard/".
type Handler struct {
	opts     Options
	mux      *http.ServeMux
	oidc     *oidcClient
	sessions *sessions
	sealer   *sealer
	pages    *pages
	origin   string
	log      *slog.Logger
	now      func() time.Time
}

// New checks the options and builds the handler. It does not call Keycloak: the first sign-in does.
func New(o Options) (*Handler, error) {
	var missing []string
	for name, v := range map[string]string{"KeycloakURL": o.KeycloakURL, "ClientID": o.ClientID,
		"ClientSecret": o.ClientSecret, "PublicURL": o.PublicURL} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if o.Verifier == nil {
		missing = append(missing, "Verifier")
	}
	if o.Webhooks == nil {
		missing = append(missing, "Webhooks")
	}
	if o.Cases == nil {
		missing = append(missing, "Cases")
	}
	if o.Sessions == nil {
		missing = append(missing, "Sessions")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("dashboard: missing options %s", strings.Join(missing, ", "))
	}
	pub, err := url.Parse(strings.TrimRight(o.PublicURL, "/"))
	if err != nil || (pub.Scheme != "http" && pub.Scheme != "https") || pub.Host == "" || pub.Path != "" {
		return nil, fmt.Errorf("dashboard: PublicURL %q must be an http(s) origin such as https://casekeeper.example", o.PublicURL)
	}
	if o.Realm == "" {
		o.Realm = "casekeeper"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	back := strings.TrimRight(o.KeycloakURL, "/") + "/realms/" + o.Realm
	issuer := strings.TrimRight(o.Issuer, "/")
	if issuer == "" {
		issuer = back
	}
	login, err := newSealer(o.Key, "login cookie")
	if err != nil {
		return nil, err
	}
	stored, err := newSealer(o.Key, "session store")
	if err != nil {
		return nil, err
	}
	pg, err := loadPages()
	if err != nil {
		return nil, err
	}
	origin := pub.Scheme + "://" + pub.Host
	log := o.Log.With("component", "dashboard")
	h := &Handler{
		opts: o,
		oidc: newOIDCClient(issuer, back, o.ClientID, o.ClientSecret, origin, o.HTTPClient, o.Now),
		sessions: &sessions{store: o.Sessions, sealer: stored, now: o.Now, log: func(ctx context.Context, msg string, err error) {
			log.WarnContext(ctx, msg, "error", err)
		}},
		sealer: login,
		pages:  pg,
		origin: origin,
		log:    log,
		now:    o.Now,
	}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	m := http.NewServeMux()
	m.Handle("GET /dashboard/static/", staticHandler())
	m.HandleFunc("GET /dashboard/{$}", h.home)
	m.HandleFunc("GET /dashboard/login", h.login)
	m.HandleFunc("GET /dashboard/callback", h.callback)
	m.HandleFunc("GET /dashboard/signed-out", h.signedOut)
	m.Handle("POST /dashboard/logout", h.authed("", h.logout))

	m.Handle("GET /dashboard/webhooks", h.authed(auth.RoleWebhooksManage, h.listEndpoints))
	m.Handle("POST /dashboard/webhooks/notices", h.authed(auth.RoleWebhooksManage, h.saveNotices))
	m.Handle("GET /dashboard/webhooks/new", h.authed(auth.RoleWebhooksManage, h.newEndpoint))
	m.Handle("POST /dashboard/webhooks/new", h.authed(auth.RoleWebhooksManage, h.createEndpoint))
	m.Handle("GET /dashboard/webhooks/{id}", h.authed(auth.RoleWebhooksManage, h.showEndpoint))
	m.Handle("GET /dashboard/webhooks/{id}/edit", h.authed(auth.RoleWebhooksManage, h.editEndpoint))
	m.Handle("POST /dashboard/webhooks/{id}/edit", h.authed(auth.RoleWebhooksManage, h.updateEndpoint))
	m.Handle("POST /dashboard/webhooks/{id}/enable", h.authed(auth.RoleWebhooksManage, h.setEnabled(true)))
	m.Handle("POST /dashboard/webhooks/{id}/disable", h.authed(auth.RoleWebhooksManage, h.setEnabled(false)))
	m.Handle("POST /dashboard/webhooks/{id}/delete", h.authed(auth.RoleWebhooksManage, h.deleteEndpoint))
	m.Handle("POST /dashboard/webhooks/{id}/secret/reveal", h.authed(auth.RoleWebhooksManage, h.revealSecret))
	m.Handle("POST /dashboard/webhooks/{id}/secret/rotate", h.authed(auth.RoleWebhooksManage, h.rotateSecret))
	m.Handle("POST /dashboard/webhooks/{id}/test", h.authed(auth.RoleWebhooksManage, h.sendTest))
	m.Handle("POST /dashboard/webhooks/{id}/recover", h.authed(auth.RoleWebhooksManage, h.recoverFailed))
	m.Handle("GET /dashboard/webhooks/{id}/deliveries/{did}", h.authed(auth.RoleWebhooksManage, h.showDelivery))
	m.Handle("POST /dashboard/webhooks/{id}/deliveries/{did}/resend", h.authed(auth.RoleWebhooksManage, h.resendDelivery))

	// API credentials are the tenant admin's, like the webhook settings.
	m.Handle("GET /dashboard/credentials", h.authed(auth.RoleWebhooksManage, h.listCredentials))
	m.Handle("POST /dashboard/credentials", h.authed(auth.RoleWebhooksManage, h.createCredential))
	m.Handle("POST /dashboard/credentials/{id}/rotate", h.authed(auth.RoleWebhooksManage, h.rotateCredential))
	m.Handle("POST /dashboard/credentials/{id}/revoke", h.authed(auth.RoleWebhooksManage, h.revokeCredential))

	m.Handle("GET /dashboard/cases", h.authed(auth.RoleCasesRead, h.listCases))
	m.Handle("GET /dashboard/cases/{id}", h.authed(auth.RoleCasesRead, h.showCase))
	m.HandleFunc("/dashboard/", func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, nil, errorPage{Status: 404, Title: "Not found", Message: "There is no such page in the dashboard."})
	})
	h.mux = m
}

// ServeHTTP adds the security headers every dashboard response carries, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Scripts and styles only from the embedded assets; forms may post to us and, through the logout redirect, to
	// Keycloak (Chrome applies form-action to the redirect of a form post too).
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self' "+originOf(h.oidc.browserBase)+"; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// The callback URL holds the authorization code: never send it to another site in a Referer. (Not
	// "no-referrer": with it, browsers send "Origin: null" on our own form posts, which the CSRF check refuses.)
	hd.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/dashboard/static/") {
		hd.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r)
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// request is what a page handler gets: the session and a context that carries the user's token to the backends.
type request struct {
	*http.Request
	sess *session
	id   string
	ctx  context.Context
}

type pageFunc func(http.ResponseWriter, *request)

// authed loads the session (signing in when there is none), renews the access token when it is about to expire,
// checks CSRF on every POST and the role the page needs.
func (h *Handler) authed(role string, next pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var id string
		if c, err := r.Cookie(sessionCookie); err == nil {
			id = c.Value
		}
		sess, ok, err := h.sessions.get(r.Context(), id)
		if err != nil {
			h.sessionStoreDown(w, r, err)
			return
		}
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/dashboard/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			// A form posted after the session ended: nothing is done, and the user is told why.
			h.renderError(w, r, nil, errorPage{Status: 401, Title: "Your session has ended", Message: "Nothing was changed. Sign in again and repeat the last step."})
			return
		}
		if r.Method == http.MethodPost {
			if err := h.checkPost(r, sess); err != nil {
				h.log.WarnContext(r.Context(), "dashboard form refused", "reason", err.Error(), "path", r.URL.Path)
				h.renderError(w, r, sess, errorPage{Status: 403, Title: "This form could not be verified",
					Message: "Nothing was changed. The form was not sent by this dashboard page, or it is too old. Reload the page and try again."})
				return
			}
		}
		token, err := h.accessToken(r.Context(), sess)
		if err != nil {
			if errors.Is(err, errSessionStore) {
				h.sessionStoreDown(w, r, err)
				return
			}
			h.sessions.delete(r.Context(), id)
			h.clearCookie(w, sessionCookie)
			if errors.Is(err, errTokenRefused) || errors.Is(err, auth.ErrInvalidToken) {
				if r.Method == http.MethodGet {
					http.Redirect(w, r, "/dashboard/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				h.renderError(w, r, nil, errorPage{Status: 401, Title: "Your session has ended", Message: "Nothing was changed. Sign in again and repeat the last step."})
				return
			}
			h.log.ErrorContext(r.Context(), "dashboard token refresh failed", "error", err)
			h.renderError(w, r, nil, errorPage{Status: 503, Title: "Sign-in service unavailable", Message: "Keycloak did not answer. Try again in a moment."})
			return
		}
		if role != "" && !sess.principal.Has(role) {
			h.renderForbidden(w, r, sess, role)
			return
		}
		ctx, cancel := context.WithTimeout(asUser(r.Context(), token), 15*time.Second)
		defer cancel()
		next(w, &request{Request: r, sess: sess, id: id, ctx: ctx})
	})
}

// errSessionStore marks a failure of the session store, as opposed to one of Keycloak or of the token.
var errSessionStore = errors.New("session store")

// sessionStoreDown answers a request whose session could not be read or written: the session may well be fine,
// so the cookie stays and the user is asked to retry.
func (h *Handler) sessionStoreDown(w http.ResponseWriter, r *http.Request, err error) {
	h.log.ErrorContext(r.Context(), "dashboard session store failed", "error", err)
	h.renderError(w, r, nil, errorPage{Status: 503, Title: "Dashboard unavailable", Message: "Your session could not be loaded. Nothing was changed. Try again in a moment."})
}

// accessToken returns a token valid for the next refreshAhead, renewing it with the refresh token when needed. Two
// requests of one session (two tabs, possibly on two replicas) may both refresh: the renewed tokens are written
// with a compare-and-set, the first write wins and the other request uses its own fresh token for this call.
func (h *Handler) accessToken(ctx context.Context, s *session) (string, error) {
	now := h.now()
	if now.Add(refreshAhead).Before(s.accessExpires) {
		return s.accessToken, nil
	}
	if s.refreshToken == "" {
		return "", errTokenRefused
	}
	ts, err := h.oidc.refresh(ctx, s.refreshToken)
	if err != nil {
		return "", err
	}
	p, err := h.opts.Verifier.Verify(ctx, ts.AccessToken)
	if err != nil {
		return "", err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	err = h.sessions.update(sctx, s, func(cur *session) bool {
		if now.Add(refreshAhead).Before(cur.accessExpires) {
			return false // renewed meanwhile by another request
		}
		cur.principal = p
		cur.setTokens(ts, now)
		return true
	})
	if err != nil {
		return "", fmt.Errorf("%w: %w", errSessionStore, err)
	}
	return s.accessToken, nil
}

func (h *Handler) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, h.cookie(name, "", -1))
}

// home sends the user to the part of the dashboard their roles open.
func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	target := "/dashboard/login?next=" + url.QueryEscape("/dashboard/")
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s, ok, _ := h.sessions.get(r.Context(), c.Value); ok {
			target = "/dashboard/webhooks"
			if !s.principal.Has(auth.RoleWebhooksManage) {
				target = "/dashboard/cases"
			}
		}
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// login starts a sign-in: a fresh state, nonce and PKCE verifier go into the sealed login cookie, the browser to
// Keycloak.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	lr, err := newLoginRequest(safeNext(r.URL.Query().Get("next")), h.now())
	if err != nil {
		h.renderError(w, r, nil, errorPage{Status: 500, Title: "Something went wrong", Message: "Sign-in could not start. Try again."})
		return
	}
	sealed, err := h.sealer.seal(loginCookie, lr)
	if err != nil {
		h.renderError(w, r, nil, errorPage{Status: 500, Title: "Something went wrong", Message: "Sign-in could not start. Try again."})
		return
	}
	http.SetCookie(w, h.cookie(loginCookie, sealed, loginTimeout))
	http.Redirect(w, r, h.oidc.authURL(lr), http.StatusSeeOther)
}

// safeNext keeps the post-login redirect inside the dashboard: an open redirect on a sign-in page is a phishing
// tool.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/dashboard/") || strings.HasPrefix(next, "/dashboard/login") ||
		strings.HasPrefix(next, "/dashboard/callback") || strings.ContainsAny(next, "\\\r\n") {
		return "/dashboard/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return "/dashboard/"
	}
	return next
}

var signInAgain = errorPage{Status: 400, Title: "Sign-in did not complete",
	Message: "The sign-in took too long or was started in another tab. Sign in again."}

// callback finishes a sign-in: it checks the state against the login cookie, exchanges the code with the PKCE
// verifier, verifies the tokens and starts a session under a new id (never one the browser brought along).
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := r.Cookie(loginCookie)
	h.clearCookie(w, loginCookie)
	if e := q.Get("error"); e != "" {
		h.log.WarnContext(r.Context(), "keycloak refused the sign-in", "error", e)
		h.renderError(w, r, nil, errorPage{Status: 400, Title: "Sign-in did not complete", Message: "Keycloak refused the sign-in (" + e + "). Sign in again."})
		return
	}
	var lr loginRequest
	if err != nil || h.sealer.open(loginCookie, c.Value, &lr) != nil || !equalSecret(q.Get("state"), lr.State) ||
		h.now().After(lr.Expires) || q.Get("code") == "" {
		h.renderError(w, r, nil, signInAgain)
		return
	}
	ts, err := h.oidc.exchangeCode(r.Context(), q.Get("code"), lr.Verifier)
	if err != nil {
		if errors.Is(err, errTokenRefused) {
			h.renderError(w, r, nil, signInAgain)
			return
		}
		h.log.ErrorContext(r.Context(), "dashboard code exchange failed", "error", err)
		h.renderError(w, r, nil, errorPage{Status: 503, Title: "Sign-in service unavailable", Message: "Keycloak did not answer. Try again in a moment."})
		return
	}
	now := h.now()
	claims, err := h.oidc.checkIDToken(r.Context(), ts.IDToken, lr.Nonce)
	if err != nil {
		h.log.WarnContext(r.Context(), "dashboard id token refused", "error", err)
		h.renderError(w, r, nil, signInAgain)
		return
	}
	p, err := h.opts.Verifier.Verify(r.Context(), ts.AccessToken)
	if err != nil {
		h.log.ErrorContext(r.Context(), "dashboard access token refused", "error", err)
		h.renderError(w, r, nil, errorPage{Status: 500, Title: "Sign-in did not complete", Message: "Keycloak issued a token this gateway does not accept. Tell your Case-keeper operator."})
		return
	}
	if p.Tenant == "" {
		h.renderError(w, r, nil, errorPage{Status: 403, Title: "No organisation", Message: "Your account is not linked to an organisation (tenant) in Case-keeper. Ask your Case-keeper administrator."})
		return
	}
	user := claims.Email
	if user == "" {
		user = claims.Username
	}
	csrf, err := randomToken(32)
	if err != nil {
		h.renderError(w, r, nil, errorPage{Status: 500, Title: "Something went wrong", Message: "Sign-in could not complete. Try again."})
		return
	}
	// A session this browser still had is ended: one browser, one session.
	if old, err := r.Cookie(sessionCookie); err == nil {
		h.sessions.delete(r.Context(), old.Value)
	}
	s := &session{csrf: csrf, principal: p, user: user, created: now}
	s.setTokens(ts, now)
	id, err := h.sessions.create(r.Context(), s)
	if err != nil {
		h.log.ErrorContext(r.Context(), "dashboard session not created", "error", err)
		h.renderError(w, r, nil, errorPage{Status: 503, Title: "Sign-in did not complete", Message: "Your session could not be stored. Sign in again in a moment."})
		return
	}
	h.log.InfoContext(r.Context(), "dashboard sign-in", "tenant", p.Tenant, "subject", p.Subject)
	http.SetCookie(w, h.cookie(sessionCookie, id, 0))
	http.Redirect(w, r, lr.Next, http.StatusSeeOther)
}

// logout ends the session here and sends the browser to Keycloak to end the single sign-on session too.
func (h *Handler) logout(w http.ResponseWriter, r *request) {
	idToken := r.sess.idToken
	h.sessions.delete(r.Context(), r.id)
	h.clearCookie(w, sessionCookie)
	http.Redirect(w, r.Request, h.oidc.logoutURL(idToken), http.StatusSeeOther)
}

func (h *Handler) signedOut(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, nil, http.StatusOK, "signed_out", "Signed out", nil)
}
