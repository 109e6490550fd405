package dashboard

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/casekeeper/core/pkg/auth"
)

const (
	sessionCookie = "ck_dashboard"
	loginCookie   = "ck_dashboard_login"
	// loginTimeout bounds how long a user may sit on Keycloak's login page before the callback is refused.
	loginTimeout = 10 * time.Minute
	// MaxSessionAge caps a session whatever Keycloak says (the realm's SSO maximum is 10 hours). The session store
	// may forget a session after that long.
	MaxSessionAge = 10 * time.Hour
	// refreshAhead renews the access token this long before it expires, so a call never leaves with a token that
	// expires on the way.
	refreshAhead = 30 * time.Second
	// storeTimeout bounds one call to the session store.
	storeTimeout = 5 * time.Second
	// maxUpdateAttempts bounds the compare-and-set retries of one session update; more conflicts than that mean
	// many tabs writing at once, and the update gives up rather than spin.
	maxUpdateAttempts = 5
)

// SessionStore keeps the dashboard's sessions where every gateway replica sees them, so that a sign-in's callback
// and any later page may reach any replica, and a restart signs nobody out. Values are opaque (sealed by the
// dashboard: the store never sees a token); keys are hashes of the cookie. Update is a compare-and-set on the
// revision Get or a previous write returned: it fails with ErrSessionConflict when another request (on any
// replica) wrote the session in between. The store forgets a session after MaxSessionAge at the latest.
type SessionStore interface {
	Get(ctx context.Context, key string) (value []byte, revision uint64, err error)
	Create(ctx context.Context, key string, value []byte) (revision uint64, err error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Delete(ctx context.Context, key string) error
}

var (
	// ErrSessionNotFound is the store's answer for a key it does not hold (never created, deleted or expired).
	ErrSessionNotFound = errors.New("dashboard session not found")
	// ErrSessionConflict is the store's answer to an Update whose revision is no longer the latest, and to a Create
	// of a key that exists.
	ErrSessionConflict = errors.New("dashboard session changed concurrently")
)

// session is one signed-in browser, as one request loaded it. The tokens never leave the server: the browser holds
// only a random id, and the store holds the session sealed with the session key.
type session struct {
	csrf      string
	principal auth.Principal
	// user is what the header shows (email, else username).
	user string

	accessToken    string
	refreshToken   string
	idToken        string
	accessExpires  time.Time
	refreshExpires time.Time
	created        time.Time
	flash          *flash

	// key is the session's key in the store, rev the revision this copy was read at; sessions writes it back.
	key      string
	rev      uint64
	sessions *sessions
}

// flash is a one-shot message shown by the next page the session loads (post/redirect/get).
type flash struct {
	Kind    string // "ok" or "error"
	Text    string
	Section string // where on the page it belongs: "", "test", "secret", "recover", "deliveries"
	Secrets []secretView
	Attempt *attemptView
}

// setFlash stores f for the next page. A flash that cannot be stored is lost, not fatal: the change it reports
// happened, and the page the user lands on shows its result.
func (s *session) setFlash(f *flash) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.sessions.update(ctx, s, func(cur *session) bool { cur.flash = f; return true }); err != nil {
		s.sessions.logStoreError(ctx, "dashboard flash not stored", err)
	}
}

// takeFlash returns the flash waiting for this page and removes it from the session.
func (s *session) takeFlash() *flash {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	var taken *flash
	err := s.sessions.update(ctx, s, func(cur *session) bool {
		taken, cur.flash = cur.flash, nil
		return taken != nil
	})
	if err != nil {
		s.sessions.logStoreError(ctx, "dashboard flash not cleared", err)
		return nil
	}
	return taken
}

// expired reports whether the session can no longer get a valid access token.
func (s *session) expired(now time.Time) bool {
	if now.Sub(s.created) > MaxSessionAge {
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
			s.refreshExpires = s.created.Add(MaxSessionAge)
		}
	}
	if ts.IDToken != "" {
		s.idToken = ts.IDToken
	}
}

// sessionRecord is a session as it is sealed into the store.
type sessionRecord struct {
	CSRF           string         `json:"csrf"`
	Principal      auth.Principal `json:"principal"`
	User           string         `json:"user"`
	AccessToken    string         `json:"access_token"`
	RefreshToken   string         `json:"refresh_token,omitempty"`
	IDToken        string         `json:"id_token,omitempty"`
	AccessExpires  time.Time      `json:"access_expires"`
	RefreshExpires time.Time      `json:"refresh_expires"`
	Created        time.Time      `json:"created"`
	Flash          *flash         `json:"flash,omitempty"`
}

func recordOf(s *session) sessionRecord {
	return sessionRecord{CSRF: s.csrf, Principal: s.principal, User: s.user, AccessToken: s.accessToken,
		RefreshToken: s.refreshToken, IDToken: s.idToken, AccessExpires: s.accessExpires,
		RefreshExpires: s.refreshExpires, Created: s.created, Flash: s.flash}
}

func (r sessionRecord) session() *session {
	return &session{csrf: r.CSRF, principal: r.Principal, user: r.User, accessToken: r.AccessToken,
		refreshToken: r.RefreshToken, idToken: r.IDToken, accessExpires: r.AccessExpires,
		refreshExpires: r.RefreshExpires, created: r.Created, flash: r.Flash}
}

// sessions seals sessions into the store and opens them again. The store's key is a hash of the cookie value, so
// whoever reads the store learns no cookie; the value is sealed with the key's name as additional data, so a
// record copied under another key does not open.
type sessions struct {
	store  SessionStore
	sealer *sealer
	now    func() time.Time
	log    func(ctx context.Context, msg string, err error)
}

func (st *sessions) logStoreError(ctx context.Context, msg string, err error) {
	if st.log != nil {
		st.log(ctx, msg, err)
	}
}

// storeKey is the store's key for a cookie value: hex, which every store (NATS KV included) accepts.
func storeKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func (st *sessions) seal(s *session) ([]byte, error) {
	v, err := st.sealer.seal("session:"+s.key, recordOf(s))
	return []byte(v), err
}

// create stores s under a new random id and returns the id for the cookie.
func (st *sessions) create(ctx context.Context, s *session) (string, error) {
	id, err := randomToken(32)
	if err != nil {
		return "", err
	}
	s.key, s.sessions = storeKey(id), st
	v, err := st.seal(s)
	if err != nil {
		return "", err
	}
	if s.rev, err = st.store.Create(ctx, s.key, v); err != nil {
		return "", fmt.Errorf("storing the session: %w", err)
	}
	return id, nil
}

// get loads the session of a cookie value. A session that does not open (another key, tampered) or has expired
// is no session: the browser is sent to sign in. An error is the store's failure to answer.
func (st *sessions) get(ctx context.Context, id string) (*session, bool, error) {
	if id == "" || len(id) > 64 {
		return nil, false, nil
	}
	s, err := st.load(ctx, storeKey(id))
	if errors.Is(err, ErrSessionNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if s.expired(st.now()) {
		st.delete(ctx, id)
		return nil, false, nil
	}
	return s, true, nil
}

func (st *sessions) load(ctx context.Context, key string) (*session, error) {
	v, rev, err := st.store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	var rec sessionRecord
	if err := st.sealer.open("session:"+key, string(v), &rec); err != nil {
		// Sealed with another key (GATEWAY_SESSION_KEY changed) or damaged: as good as absent.
		return nil, ErrSessionNotFound
	}
	s := rec.session()
	s.key, s.rev, s.sessions = key, rev, st
	return s, nil
}

// update applies change to the latest stored copy of s and writes it back with a compare-and-set, retrying on a
// concurrent write (another tab, another replica). change returns false when there is nothing to write. On
// success s is that latest copy.
func (st *sessions) update(ctx context.Context, s *session, change func(*session) bool) error {
	cur := *s
	for range maxUpdateAttempts {
		if !change(&cur) {
			*s = cur
			return nil
		}
		v, err := st.seal(&cur)
		if err != nil {
			return err
		}
		rev, err := st.store.Update(ctx, cur.key, v, cur.rev)
		if err == nil {
			cur.rev = rev
			*s = cur
			return nil
		}
		if !errors.Is(err, ErrSessionConflict) {
			return err
		}
		latest, err := st.load(ctx, cur.key)
		if err != nil {
			return err
		}
		cur = *latest
	}
	return fmt.Errorf("%w: %d attempts", ErrSessionConflict, maxUpdateAttempts)
}

func (st *sessions) delete(ctx context.Context, id string) {
	if id == "" || len(id) > 64 {
		return
	}
	if err := st.store.Delete(ctx, storeKey(id)); err != nil && !errors.Is(err, ErrSessionNotFound) {
		st.logStoreError(ctx, "dashboard session not deleted", err)
	}
}

// sealer encrypts and authenticates what the dashboard hands to others to keep: the short-lived login cookie
// (state, nonce, PKCE verifier), which the browser carries to the callback but can neither read nor forge, and the
// sessions in the store. Its key comes from configuration and is the same on every replica, so a login started on
// one replica finishes on any other.
type sealer struct{ aead cipher.AEAD }

// newSealer derives its AES-256-GCM key from key and purpose, so that one configured key serves several uses that
// can never open each other's values.
func newSealer(key []byte, purpose string) (*sealer, error) {
	if len(key) != 32 {
		return nil, errors.New("dashboard: the session key must be 32 bytes")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("casekeeper dashboard " + purpose))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal binds the value to its name (additional data), so one sealed value cannot stand in for another.
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
		return errors.New("malformed sealed value")
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return errors.New("sealed value does not authenticate")
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
