package natsqueue

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureConsumer creates or updates the durable consumer of one endpoint. MaxAckPending is the endpoint's
// concurrency, across every instance of the service.
func (q *Queue) EnsureConsumer(ctx context.Context, tenant, endpointID string, concurrency int, ackWait time.Duration) (jetstream.Consumer, error) {
	return q.js.CreateOrUpdateConsumer(ctx, Stream, jetstream.ConsumerConfig{
		Durable:       ConsumerName(endpointID),
		Description:   "Deliveries to webhook endpoint " + endpointID,
		FilterSubject: DeliverSubject(tenant, endpointID),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: concurrency,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
}
