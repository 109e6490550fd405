package natsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// NoticesStream carries the operational notices to send (webhooks.notice.<tenant>), a work queue that one durable
// consumer shared by every instance drains.
const NoticesStream = "WEBHOOK_NOTICES"

// NoticesStreamConfig is the stream; a notice raised twice (the same id) is stored once.
func NoticesStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        NoticesStream,
		Description: "Operational notices (endpoint disabled, failing, recovered) to send to each tenant's notice URL.",
		Subjects:    []string{"webhooks.notice.>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  time.Hour,
	}
}

type noticeWire struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Tenant      string    `json:"tenant"`
	EndpointID  string    `json:"endpoint_id"`
	EndpointURL string    `json:"endpoint_url"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}

// Notices publishes notices to send.
type Notices struct{ js jetstream.JetStream }

// NewNotices publishes on js.
func NewNotices(js jetstream.JetStream) *Notices { return &Notices{js: js} }

// Publish queues the notice; it is on record once this returns.
func (n *Notices) Publish(ctx context.Context, op delivery.Operation) error {
	body, err := json.Marshal(noticeWire{ID: op.ID, Kind: op.Kind, Tenant: op.Tenant, EndpointID: op.EndpointID,
		EndpointURL: op.EndpointURL, Reason: op.Reason, At: op.At})
	if err != nil {
		return err
	}
	m := nats.NewMsg("webhooks.notice." + op.Tenant)
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, op.ID)
	if _, err := n.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("queueing notice %s: %w", op.ID, err)
	}
	return nil
}

// ParseNotice reads a queued notice.
func ParseNotice(data []byte) (delivery.Operation, error) {
	var w noticeWire
	if err := json.Unmarshal(data, &w); err != nil || w.ID == "" || w.Tenant == "" || w.Kind == "" {
		return delivery.Operation{}, ErrBadMessage
	}
	return delivery.Operation{ID: w.ID, Kind: w.Kind, Tenant: w.Tenant, EndpointID: w.EndpointID, EndpointURL: w.EndpointURL,
		Reason: w.Reason, At: w.At}, nil
}

// FailureRunsBucket holds one key per endpoint with the state of its attempts: "failing <since>" from the first
// failed attempt after a success, "ok <at>" from the first success after that. It makes endpoint.failing and
// endpoint.recovered one notice each, whichever replicas see the failures and the success: each change is a
// compare-and-set on the key's revision, which exactly one replica wins. An attempt that began before the last
// change is no news (it was in flight when the state changed) and changes nothing.
const FailureRunsBucket = "WEBHOOK_FAILURE_RUNS"

const (
	stateFailing = "failing "
	stateOK      = "ok "
)

// FailureRuns is the bucket, with every instance's view of it kept current by a watch, so that the hot path asks
// its memory whether an endpoint is failing, never the server.
type FailureRuns struct {
	kv jetstream.KeyValue
	mu sync.RWMutex
	// failing is the watch's view: the endpoints whose state is failing.
	failing map[string]bool
}

// OpenFailureRuns declares the bucket.
func OpenFailureRuns(ctx context.Context, js jetstream.JetStream, replicas int) (*FailureRuns, error) {
	kv, err := natsbus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      FailureRunsBucket,
		Description: "Webhook endpoints' attempt state (failing since, ok since): one failing and one recovered notice per run.",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	return &FailureRuns{kv: kv, failing: map[string]bool{}}, nil
}

// Run keeps the view current until ctx ends, watching again after a lost watch.
func (f *FailureRuns) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		w, err := f.kv.WatchAll(ctx)
		if err != nil {
			lifecycle.Sleep(ctx, time.Second)
			continue
		}
		fresh, initial := map[string]bool{}, true
		for e := range w.Updates() {
			if e == nil { // the initial values are all in: swap them in whole
				f.mu.Lock()
				f.failing, initial = fresh, false
				f.mu.Unlock()
				continue
			}
			f.mu.Lock()
			target := f.failing
			if initial {
				target = fresh
			}
			if e.Operation() == jetstream.KeyValuePut && strings.HasPrefix(string(e.Value()), stateFailing) {
				target[e.Key()] = true
			} else {
				delete(target, e.Key())
			}
			f.mu.Unlock()
		}
		_ = w.Stop()
	}
	return nil
}

// Failing reports whether the endpoint is in a failure run, as far as this instance has heard.
func (f *FailureRuns) Failing(endpointID string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.failing[endpointID]
}

// Begin records a failed attempt that began at; true for the one call, on any replica, that started the run.
func (f *FailureRuns) Begin(ctx context.Context, endpointID string, at time.Time) (bool, error) {
	return f.change(ctx, endpointID, stateFailing, at)
}

// End records a succeeded attempt that began at; true for the one call that ended the run.
func (f *FailureRuns) End(ctx context.Context, endpointID string, at time.Time) (bool, error) {
	return f.change(ctx, endpointID, stateOK, at)
}

// change moves the endpoint to state as of at, unless it is in it already or changed after at.
func (f *FailureRuns) change(ctx context.Context, endpointID, state string, at time.Time) (bool, error) {
	value := []byte(state + at.UTC().Format(time.RFC3339Nano))
	e, err := f.kv.Get(ctx, endpointID)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		if state == stateOK {
			return false, nil // never failed: nothing to end
		}
		_, err = f.kv.Create(ctx, endpointID, value)
	case err != nil:
		return false, fmt.Errorf("reading the attempt state of %s: %w", endpointID, err)
	default:
		cur := string(e.Value())
		since, _ := time.Parse(time.RFC3339Nano, cur[strings.IndexByte(cur, ' ')+1:])
		if strings.HasPrefix(cur, state) || at.Before(since) {
			return false, nil
		}
		_, err = f.kv.Update(ctx, endpointID, value, e.Revision())
	}
	if err == nil {
		return true, nil
	}
	if lostRace(err) {
		return false, nil // another replica changed it first
	}
	return false, fmt.Errorf("changing the attempt state of %s: %w", endpointID, err)
}
