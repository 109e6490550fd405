package natsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/natsbus"
)

// LanesBucket holds, for each endpoint that delivers per case (ordering PER_CASE) and each case with deliveries
// open to it, the case's lane: its open deliveries in the order they were queued, which is the order of the CASES
// stream and so of the case's versions. Only the first may be sent; it leaves the lane when it succeeds or goes
// dead, and the next one goes. The lane is the replicas' shared state: every change is a compare-and-set on the
// key's revision, so that two replicas never both see themselves first.
const LanesBucket = "WEBHOOK_CASE_LANES"

// LaneEntry is one open delivery in a lane.
type LaneEntry struct {
	DeliveryID string `json:"d"`
	// EventSeq is the event's position on CASES (0 for a delivery queued with its event only).
	EventSeq uint64 `json:"s"`
	// Attempt is the attempt the entry waits for: 1 for a new delivery, the next one for a resend. A delivery
	// whose record shows that attempt made and the delivery closed has left the lane, whoever takes it out.
	Attempt int `json:"a"`
	// EventID and Resend make the job that wakes the entry when its turn comes (Queue.Wake).
	EventID string `json:"e,omitempty"`
	Resend  bool   `json:"r,omitempty"`
}

// CaseLanes is the bucket.
type CaseLanes struct{ kv jetstream.KeyValue }

// OpenCaseLanes declares the bucket. A lane outlives none of its deliveries: its key expires with the longest a
// job can wait on WEBHOOK_DELIVERIES.
func OpenCaseLanes(ctx context.Context, js jetstream.JetStream, replicas int) (*CaseLanes, error) {
	kv, err := natsbus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      LanesBucket,
		Description: "Open deliveries per (ordered endpoint, case), in version order: only the first is sent.",
		History:     1,
		TTL:         MaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	return &CaseLanes{kv: kv}, nil
}

// LaneKey is the key of a case's lane to an endpoint.
func LaneKey(endpointID, caseID string) string { return endpointID + "." + caseID }

// Lane reads a lane, first entry first; an empty lane has none.
func (l *CaseLanes) Lane(ctx context.Context, key string) ([]LaneEntry, error) {
	entries, _, err := l.read(ctx, key)
	return entries, err
}

func (l *CaseLanes) read(ctx context.Context, key string) ([]LaneEntry, uint64, error) {
	e, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading lane %s: %w", key, err)
	}
	var entries []LaneEntry
	if len(e.Value()) > 0 {
		if err := json.Unmarshal(e.Value(), &entries); err != nil {
			return nil, 0, fmt.Errorf("lane %s: %w", key, err)
		}
	}
	return entries, e.Revision(), nil
}

// Append puts deliveries at the end of the lane; those already in it stay where they are (a fan-out batch that
// comes back after a crash appends nothing twice).
func (l *CaseLanes) Append(ctx context.Context, key string, add ...LaneEntry) error {
	return l.change(ctx, key, func(entries []LaneEntry) []LaneEntry {
		for _, a := range add {
			if !slices.ContainsFunc(entries, func(e LaneEntry) bool { return e.DeliveryID == a.DeliveryID }) {
				entries = append(entries, a)
			}
		}
		return entries
	})
}

// Remove takes a delivery out of the lane (it succeeded or went dead) and returns what remains: the first of it may
// go now.
func (l *CaseLanes) Remove(ctx context.Context, key, deliveryID string) ([]LaneEntry, error) {
	var rest []LaneEntry
	err := l.change(ctx, key, func(entries []LaneEntry) []LaneEntry {
		rest = slices.DeleteFunc(entries, func(e LaneEntry) bool { return e.DeliveryID == deliveryID })
		return rest
	})
	return rest, err
}

// change applies f to the lane by compare-and-set, again after losing a race; an emptied lane is deleted.
func (l *CaseLanes) change(ctx context.Context, key string, f func([]LaneEntry) []LaneEntry) error {
	for range 32 {
		entries, rev, err := l.read(ctx, key)
		if err != nil {
			return err
		}
		next := f(slices.Clone(entries))
		if slices.Equal(next, entries) {
			return nil
		}
		switch {
		case len(next) == 0:
			err = l.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		case rev == 0:
			var body []byte
			body, _ = json.Marshal(next)
			_, err = l.kv.Create(ctx, key, body)
		default:
			var body []byte
			body, _ = json.Marshal(next)
			_, err = l.kv.Update(ctx, key, body, rev)
		}
		if err == nil {
			return nil
		}
		if !lostRace(err) {
			return fmt.Errorf("changing lane %s: %w", key, err)
		}
	}
	return fmt.Errorf("changing lane %s: too many concurrent changes", key)
}

// lostRace is a compare-and-set that another writer won.
func lostRace(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}
