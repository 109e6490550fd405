package natsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// FailureRunsBucket holds one key per endpoint whose attempts have been failing since a success: the shared
// state that makes "endpoint.failing" and "endpoint.recovered" one notice each, whichever replicas see the
// failures and the success. Beginning a run is a create of the key, ending it a delete at the revision read:
// exactly one replica wins each.
const FailureRunsBucket = "WEBHOOK_FAILURE_RUNS"

// FailureRuns is the bucket, with every instance's view of it kept current by a watch, so that the hot path asks
// its memory whether an endpoint is failing, never the server.
type FailureRuns struct {
	kv jetstream.KeyValue
	mu sync.RWMutex
	// failing is the watch's view: endpoint id → revision of its run's key.
	failing map[string]uint64
	synced  chan struct{}
}

// OpenFailureRuns declares the bucket.
func OpenFailureRuns(ctx context.Context, js jetstream.JetStream, replicas int) (*FailureRuns, error) {
	kv, err := natsbus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      FailureRunsBucket,
		Description: "Webhook endpoints failing since a success, by id: one failing and one recovered notice per run.",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	return &FailureRuns{kv: kv, failing: map[string]uint64{}, synced: make(chan struct{})}, nil
}

// Run keeps the view current until ctx ends, watching again after a lost watch.
func (f *FailureRuns) Run(ctx context.Context) error {
	once := sync.Once{}
	for ctx.Err() == nil {
		w, err := f.kv.WatchAll(ctx)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		fresh := map[string]uint64{}
		initial := true
		for e := range w.Updates() {
			if e == nil { // the initial values are all in: swap them in whole
				f.mu.Lock()
				f.failing, initial = fresh, false
				f.mu.Unlock()
				once.Do(func() { close(f.synced) })
				continue
			}
			f.mu.Lock()
			target := f.failing
			if initial {
				target = fresh
			}
			if e.Operation() == jetstream.KeyValuePut {
				target[e.Key()] = e.Revision()
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
	_, ok := f.failing[endpointID]
	return ok
}

// Begin starts the endpoint's failure run; true for the one call, on any replica, that started it.
func (f *FailureRuns) Begin(ctx context.Context, endpointID string, since time.Time) (bool, error) {
	_, err := f.kv.Create(ctx, endpointID, []byte(since.UTC().Format(time.RFC3339Nano)))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, fmt.Errorf("beginning the failure run of %s: %w", endpointID, err)
}

// End ends the endpoint's failure run; true for the one call that ended it.
func (f *FailureRuns) End(ctx context.Context, endpointID string) (bool, error) {
	e, err := f.kv.Get(ctx, endpointID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the failure run of %s: %w", endpointID, err)
	}
	err = f.kv.Delete(ctx, endpointID, jetstream.LastRevision(e.Revision()))
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
		return false, nil // another replica ended it (and maybe another run began)
	}
	return false, fmt.Errorf("ending the failure run of %s: %w", endpointID, err)
}
