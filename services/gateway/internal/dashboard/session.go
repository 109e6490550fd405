package dashboard

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/casekeeper/core/pkg/auth"
)

const (
	sessionCookie = "ck_dashboard"
	loginCookie   = "ck_dashboard_login"
	// loginTimeout bounds how long a user may sit on Keycloak's login page before the callback is refused.
	loginTimeout = 10 * time.Minute
	// maxSessionAge caps a session whatever Keycloak says (the realm's SSO maximum is 10 hours).
	maxSessionAge = 10 * time.Hour
	// refreshAhead renews the access token this long before it expires, so a call never leaves with a token that
	// expires on the way.
	refreshAhead = 30 * time.Second
)

// session is one signed-in browser. The tokens never leave the server: the browser holds only a random id.
type session struct {
	csrf      string
	principal auth.Principal
	// user is what the header shows (email, else username).
	user string

	// mu serialises token refreshes of one session (two tabs loading at once refresh once).
	mu             sync.Mutex
	accessToken    string
	refreshToken   string
	idToken        string
	accessExpires  time.Time
	refreshExpires time.Time
	created        time.Time

	flashMu sync.Mutex
	flash   *flash
}

// flash is a one-shot message shown by the next page the session loads (post/redirect/get).
type flash struct {
	Kind    string // "ok" or "error"
	Text    string
	Section string // where on the page it belongs: "", "test", "secret", "recover", "deliveries"
	Secrets []secretView
	Attempt *attemptView
}

func (s *session) setFlash(f *flash) {
	s.flashMu.Lock()
	s.flash = f
	s.flashMu.Unlock()
}

func (s *session) takeFlash() *flash {
	s.flashMu.Lock()
	defer s.flashMu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

// expired reports whether the session can no longer get a valid access token.
func (s *session) expired(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiredLocked(now)
}

func (s *session) expiredLocked(now time.Time) bool {
	if now.Sub(s.created) > maxSessionAge {
		return true
	}
	// Without a usable refresh token the session lasts as long as its access token.
	if s.refreshToken == "" || s.refreshExpires.IsZero() {
		return now.After(s.accessExpires)
	}
	return now.After(s.refreshExpires) && now.After(s.accessExpires)
}

func (s *session) setTokens(ts tokenSet, now time.Time) {
	s.accessToken = ts.AccessToken
	s.accessExpires = now.Add(time.Duration(ts.ExpiresIn) * time.Second)
	if ts.RefreshToken != "" {
		s.refreshToken = ts.RefreshToken
		// refresh_expires_in 0 means an offline token; treat it as lasting as long as the session may.
		if ts.RefreshExpiresIn > 0 {
			s.refreshExpires = now.Add(time.Duration(ts.RefreshExpiresIn) * time.Second)
		} else {
			s.refreshExpires = s.created.Add(maxSessionAge)
		}
	}
	if ts.IDToken != "" {
		s.idToken = ts.IDToken
	}
}

// sessionStore keeps sessions in memory, keyed by a hash of the cookie value. A gateway restart signs everybody
// out, and several gateway instances need sticky sessions: acceptable for an administration UI, and it keeps
// Keycloak tokens out of cookies and out of the database.
type sessionStore struct {
	mu   sync.Mutex
	byID map[[32]byte]*session
	max  int
	now  func() time.Time
}

func newSessionStore(max int, now func() time.Time) *sessionStore {
	return &sessionStore{byID: map[[32]byte]*session{}, max: max, now: now}
}

var errTooManySessions = errors.New("too many dashboard sessions")

// create stores s under a new random id and returns the id for the cookie.
func (st *sessionStore) create(s *session) (string, error) {
	id, err := randomToken(32)
	if err != nil {
		return "", err
	}
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.byID) >= st.max {
		for k, old := range st.byID {
			if old.expired(now) {
				delete(st.byID, k)
			}
		}
		if len(st.byID) >= st.max {
			return "", errTooManySessions
		}
	}
	st.byID[sha256.Sum256([]byte(id))] = s
	return id, nil
}

func (st *sessionStore) get(id string) (*session, bool) {
	if id == "" || len(id) > 64 {
		return nil, false
	}
	key := sha256.Sum256([]byte(id))
	st.mu.Lock()
	s, ok := st.byID[key]
	st.mu.Unlock()
	if !ok {
		return nil, false
	}
	if s.expired(st.now()) {
		st.delete(id)
		return nil, false
	}
	return s, true
}

func (st *sessionStore) delete(id string) {
	st.mu.Lock()
	delete(st.byID, sha256.Sum256([]byte(id)))
	st.mu.Unlock()
}

// sealer encrypts and authenticates the short-lived login cookie (state, nonce, PKCE verifier): the browser carries
// it to the callback but can neither read the verifier nor forge a state.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	if len(key) != 32 {
		return nil, errors.New("dashboard: CookieKey must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal binds the value to the cookie's name (additional data), so one sealed cookie cannot stand in for another.
func (s *sealer) seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name))), nil
}

func (s *sealer) open(name, sealed string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return errors.New("malformed sealed cookie")
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return errors.New("sealed cookie does not authenticate")
	}
	return json.Unmarshal(plain, v)
}

// cookie builds the dashboard's cookies alike: HttpOnly, SameSite=Lax (the callback is a top-level GET from
// Keycloak, which Lax still carries; cross-site POSTs do not), scoped to /dashboard/, Secure outside development.
func (h *Handler) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name: name, Value: value, Path: "/dashboard/", HttpOnly: true, Secure: h.opts.CookieSecure,
		SameSite: http.SameSiteLaxMode,
	}
	switch {
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	case maxAge < 0:
		c.MaxAge = -1
	}
	return c
}

func equalSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
