// Package notify wakes the readers of a tenant's feed — long-polls and watch streams — when the projector has
// written an event for that tenant. Readers never learn *what* changed from it, only that they should look again,
// so a lost or duplicated notification costs at most a delay or one extra indexed lookup, never an event.
package notify

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/tenant"
)

// Hub hands out, per tenant, a channel that is closed at the next notification. Readers take the channel *before*
// they query the store, so a write landing between the query and the wait still wakes them.
type Hub struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{chans: map[string]chan struct{}{}} }

// Changed returns a channel closed at the tenant's next notification.
func (h *Hub) Changed(tenant string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.chans[tenant]
	if !ok {
		ch = make(chan struct{})
		h.chans[tenant] = ch
	}
	return ch
}

// Notify wakes every reader of the tenant. The channel is dropped, not replaced, so tenants nobody waits for take
// no memory.
func (h *Hub) Notify(tenant string) {
	h.mu.Lock()
	ch, ok := h.chans[tenant]
	delete(h.chans, tenant)
	h.mu.Unlock()
	if ok {
		close(ch)
	}
}

// SubjectPrefix is the core NATS subject family on which projectors announce writes: feed.<tenant>, body = the
// feed position written. Every gateway instance listens, so a write projected by one instance wakes the readers of
// all of them.
const SubjectPrefix = "feed."

// Publish announces that the tenant's feed reached seq. Core NATS, fire and forget: a lost message only delays
// readers until their periodic re-check.
func Publish(nc *nats.Conn, tenant string, seq int64) error {
	return nc.Publish(SubjectPrefix+tenant, strconv.AppendInt(nil, seq, 10))
}

// Listener is the worker that feeds the announcements of all instances into the hub.
func Listener(nc *nats.Conn, hub *Hub, log *slog.Logger) lifecycle.Worker {
	return lifecycle.Worker{Name: "feed-notifications", Run: func(ctx context.Context) error {
		sub, err := nc.Subscribe(SubjectPrefix+"*", func(m *nats.Msg) {
			id := strings.TrimPrefix(m.Subject, SubjectPrefix)
			if tenant.Valid(id) {
				hub.Notify(id)
			}
		})
		if err != nil {
			return err
		}
		<-ctx.Done()
		if err := sub.Unsubscribe(); err != nil {
			log.Debug("unsubscribe from feed notifications", "error", err)
		}
		return nil
	}}
}
