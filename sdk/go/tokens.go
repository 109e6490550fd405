package casekeeper

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// tokens caches one access token and replaces it refreshBefore ahead of its expiry, or at once after the server
// refused it (a stream that ended because its token expired reconnects with a new one). Concurrent callers share a
// fetch.
type tokens struct {
	fetch         func(context.Context) (*oauth2.Token, error)
	static        *oauth2.Token
	refreshBefore time.Duration
	now           func() time.Time

	mu  sync.Mutex
	cur *oauth2.Token
}

func (t *tokens) get(ctx context.Context) (*oauth2.Token, error) {
	if t.static != nil {
		return t.static, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil && (t.cur.Expiry.IsZero() || t.now().Add(t.refreshBefore).Before(t.cur.Expiry)) {
		return t.cur, nil
	}
	tok, err := t.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("casekeeper: getting an access token: %w", err)
	}
	t.cur = tok
	return tok, nil
}

// refused drops tok if it is still the cached one, so that the next get fetches a new token. It reports whether a
// new token can be had at all (false for a token given with WithToken).
func (t *tokens) refused(tok *oauth2.Token) bool {
	if t.static != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == tok {
		t.cur = nil
	}
	return true
}
