package natsqueue

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

// Waiting returns up to limit deliveries of the endpoint still waiting for their first attempt, in the order they
// will be made: the first attempts on its subject of the queue, which hold the event. Until its first attempt is on
// record a delivery is in no database (the fan-out writes none), so this is how the delivery log shows it at once.
// It costs one read by subject per message looked at, at most 2 × limit + 1 (resends wait on the same subject and
// are skipped), whatever the queue holds.
func (q *Queue) Waiting(ctx context.Context, tenant, endpointID string, limit int) ([]delivery.Delivery, error) {
	s, err := q.js.Stream(ctx, Stream)
	if err != nil {
		return nil, fmt.Errorf("reading the delivery queue: %w", err)
	}
	subject := DeliverSubject(tenant, endpointID)
	var out []delivery.Delivery
	for seq, reads := uint64(1), 0; len(out) < limit && reads <= 2*limit; reads++ {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the delivery queue: %w", err)
		}
		seq = m.Sequence + 1
		j, err := parseJob(m.Header, m.Data)
		if err != nil || j.Attempt != 1 || j.Resend || j.Tenant != tenant || len(j.Event) == 0 {
			continue // a resend or a later attempt: the delivery is on record already
		}
		ev, err := events.Decode(j.Event)
		if err != nil {
			continue
		}
		out = append(out, delivery.Delivery{ID: j.DeliveryID, Tenant: tenant, EndpointID: endpointID,
			EventID: ev.GetId(), EventSeq: j.EventSeq, EventType: ev.GetType(), CaseID: ev.GetCaseId(),
			CaseVersion: ev.GetCaseVersion(), Status: delivery.StatusPending, CreatedAt: m.Time, UpdatedAt: m.Time,
			NextAttemptAt: m.Time})
	}
	return out, nil
}
