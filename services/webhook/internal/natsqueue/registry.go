package natsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RegistryBucket is the KV bucket that orders endpoint changes for every instance. Its entries are markers, not
// the endpoints (those stay in the database with their encrypted secrets): the key "rev" is written after every
// change of any endpoint, so its revision is the newest change any instance has made; an instance that reads the
// database after it saw that revision knows every endpoint that existed when it looked (see docs/design.md,
// "Routing across replicas"). "created.<endpoint>" is written once when an endpoint is created, for the server's
// time of it, and removed with the endpoint.
const RegistryBucket = "WEBHOOK_ENDPOINT_CHANGES"

const revKey = "rev"

// removedTTL is how long the purge marker of a deleted endpoint's "created." key stays: nothing reads it (the
// instances learn of changes from "rev"), so it only needs to outlive a watcher's catching up, and without a TTL
// every endpoint ever deleted would leave one in the bucket for good.
const removedTTL = 24 * time.Hour

// RegistryConfig is the bucket: one entry per key, since only the last revision is ever read. It holds "rev" and
// one key per endpoint; LimitMarkerTTL lets the purge markers of deleted endpoints expire (removedTTL).
func RegistryConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         RegistryBucket,
		Description:    "Endpoint-change markers: the revision every webhook instance compares its routing table against.",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       max(replicas, 1),
		LimitMarkerTTL: removedTTL,
	}
}

// Registry is the NATS side of the routing table: it stamps changes and tells the newest revision. It reads from
// the bucket's stream leader, never with a direct get: on a replicated bucket a direct get may be answered by a
// follower that has not yet stored the newest change, and an old revision here is exactly the miss this prevents.
type Registry struct {
	nc *nats.Conn
	kv jetstream.KeyValue
}

// NewRegistry uses the declared bucket.
func NewRegistry(nc *nats.Conn, kv jetstream.KeyValue) *Registry {
	return &Registry{nc: nc, kv: kv}
}

// Created records a new endpoint and returns the NATS server's time of the record: the moment from which case
// events (stamped by the same servers) are routed to it. One clock for both sides, instead of the case service's
// and the webhook service's.
func (r *Registry) Created(ctx context.Context, endpointID string) (time.Time, error) {
	rev, err := r.kv.Create(ctx, "created."+endpointID, nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("recording the endpoint in the registry: %w", err)
	}
	msg, err := r.get(ctx, map[string]any{"seq": rev})
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the registry's record of the endpoint: %w", err)
	}
	return msg.Time, nil
}

// Removed forgets a deleted endpoint's creation stamp.
func (r *Registry) Removed(ctx context.Context, endpointID string) error {
	if err := r.kv.Purge(ctx, "created."+endpointID, jetstream.PurgeTTL(removedTTL)); err != nil {
		return fmt.Errorf("removing the endpoint from the registry: %w", err)
	}
	return nil
}

// Changed records that one of the tenant's endpoints changed. Call it after the change is stored: an instance that
// sees the revision and then reads the database sees the change.
func (r *Registry) Changed(ctx context.Context, tenant, endpointID string) error {
	if _, err := r.kv.Put(ctx, revKey, []byte(tenant+"/"+endpointID)); err != nil {
		return fmt.Errorf("recording the endpoint change in the registry: %w", err)
	}
	return nil
}

// Latest returns the revision of the newest change (0 when there was none): one read of one subject's last
// message, whatever the number of endpoints.
func (r *Registry) Latest(ctx context.Context) (uint64, error) {
	msg, err := r.get(ctx, map[string]any{"last_by_subj": "$KV." + RegistryBucket + "." + revKey})
	if errors.Is(err, errNoMessage) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the endpoint registry's revision: %w", err)
	}
	return msg.Seq, nil
}

var errNoMessage = errors.New("no message")

type storedMsg struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
}

// get is the JetStream API's message get, which the stream leader answers.
func (r *Registry) get(ctx context.Context, req map[string]any) (storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return storedMsg{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	reply, err := r.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+RegistryBucket, body)
	if err != nil {
		return storedMsg{}, err
	}
	var resp struct {
		Message *storedMsg `json:"message"`
		Error   *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return storedMsg{}, fmt.Errorf("decoding the message get reply: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return storedMsg{}, errNoMessage
	case resp.Error != nil:
		return storedMsg{}, fmt.Errorf("message get: %s", resp.Error.Description)
	case resp.Message == nil:
		return storedMsg{}, errors.New("message get: empty reply")
	}
	return *resp.Message, nil
}
