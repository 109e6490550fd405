package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// errKeysUnavailable is a failed fetch of the realm's keys: Keycloak unreachable or answering an error.
var errKeysUnavailable = errors.New("realm keys unavailable")

// keySet is go-oidc's remote key set of the realm, plus what that leaves to its user:
//   - fetches are spaced by an interval, so a flood of tokens with made-up key ids costs one call to Keycloak per
//     interval; a request arriving within the interval waits for the next allowed fetch rather than failing, so
//     the first tokens of a genuine rotation are never refused (go-oidc shares one fetch between concurrent
//     requests, but not between requests that follow each other);
//   - a failed fetch is told apart from a bad signature, so callers answer "unavailable", not "unauthenticated";
//   - the keys are fetched anew once older than a maximum age: go-oidc fetches only for a key id it has not seen,
//     so without this a key the realm no longer publishes would be trusted until a restart.
type keySet struct {
	url string
	// cfg carries the HTTP client to go-oidc, which takes it from a context.
	cfg      context.Context
	log      *slog.Logger
	now      func() time.Time
	onFetch  func()
	interval time.Duration

	remote   atomic.Pointer[oidc.RemoteKeySet]
	renewing atomic.Bool
	fetches  atomic.Int64
	// loaded is when the keys were last fetched, on the verifier's clock (UnixNano; 0 before the first fetch).
	loaded atomic.Int64

	// fetchMu serialises fetches; lastFetch is when the last one started, on the wall clock, since the spacing
	// protects Keycloak, not a token's validity.
	fetchMu   sync.Mutex
	lastFetch time.Time
}

func newKeySet(url string, hc *http.Client, interval time.Duration, now func() time.Time, log *slog.Logger, onFetch func()) *keySet {
	k := &keySet{url: url, log: log, now: now, onFetch: onFetch, interval: interval}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client := &http.Client{Transport: spacedTransport{k: k, next: next}, Timeout: hc.Timeout}
	k.cfg = oidc.ClientContext(context.Background(), client)
	k.remote.Store(oidc.NewRemoteKeySet(k.cfg, url))
	return k
}

// VerifySignature implements oidc.KeySet. go-oidc calls it only after it checked the token's algorithm.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.remote.Load().VerifySignature(ctx, jwt)
	if err != nil && (errors.Is(err, errKeysUnavailable) || ctx.Err() != nil) {
		if o, ok := ctx.Value(fetchOutcomeKey{}).(*fetchOutcome); ok {
			o.err = err
		}
	}
	return payload, err
}

// renewIfOlder fetches the keys again in the background once they are older than maxAge, without holding up the
// request. A new remote key set is empty and fills itself on its first verification, so the token just verified
// serves to make it fetch; its answer about that token does not matter, only that the fetch succeeded.
func (k *keySet) renewIfOlder(raw string, maxAge time.Duration) {
	loaded := k.loaded.Load()
	if loaded == 0 || k.now().Sub(time.Unix(0, loaded)) <= maxAge || !k.renewing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer k.renewing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		fresh := oidc.NewRemoteKeySet(k.cfg, k.url)
		if _, err := fresh.VerifySignature(ctx, raw); err != nil && (errors.Is(err, errKeysUnavailable) || ctx.Err() != nil) {
			k.log.Warn("background refresh of realm keys failed", "error", err)
			return
		}
		k.remote.Store(fresh)
		// Again after the swap: a verification under the old set may have cached a token since the fetch.
		k.onFetch()
		k.log.Info("realm signing keys renewed", "url", k.url)
	}()
}

// spacedTransport carries the key set's fetches: spaced, counted, and with Keycloak's error answers turned into
// errKeysUnavailable (go-oidc reports a bad status as text only).
type spacedTransport struct {
	k    *keySet
	next http.RoundTripper
}

func (t spacedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	k := t.k
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	if !k.lastFetch.IsZero() {
		if wait := time.Until(k.lastFetch.Add(k.interval)); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-req.Context().Done():
				timer.Stop()
				return nil, fmt.Errorf("%w: %w", errKeysUnavailable, req.Context().Err())
			case <-timer.C:
			}
		}
	}
	k.lastFetch = time.Now()
	k.fetches.Add(1)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errKeysUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: status %s", errKeysUnavailable, resp.Status)
	}
	k.loaded.Store(k.now().UnixNano())
	// Tokens verified under the old key set might name a key that is gone now: verify them again.
	k.onFetch()
	k.log.Info("realm signing keys fetched", "url", k.url)
	return resp, nil
}

// fetchOutcome carries a failed key fetch past go-oidc's verifier, which reports its key set's errors as text.
type fetchOutcome struct{ err error }

type fetchOutcomeKey struct{}

func withFetchOutcome(ctx context.Context) (context.Context, *fetchOutcome) {
	o := &fetchOutcome{}
	return context.WithValue(ctx, fetchOutcomeKey{}, o), o
}
