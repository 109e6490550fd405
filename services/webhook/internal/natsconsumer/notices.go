package natsconsumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
)

// NoticeConsumer is the durable consumer of WEBHOOK_NOTICES shared by every instance.
const NoticeConsumer = "notice-sender"

// noticeRetries are the waits before each new try of a notice the notice URL did not take: about a day in all,
// then it is dropped (it stays listed).
var noticeRetries = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 8 * time.Hour}

// Notices sends queued operational notices, one at a time per instance: they are rare.
type Notices struct {
	JS     jetstream.JetStream
	Sender interface {
		Send(ctx context.Context, op delivery.Operation) error
	}
	Log *slog.Logger
	// Retries replaces noticeRetries (tests).
	Retries []time.Duration
}

// Run consumes until ctx ends.
func (n *Notices) Run(ctx context.Context) error {
	retries := n.Retries
	if retries == nil {
		retries = noticeRetries
	}
	for ctx.Err() == nil {
		cons, err := n.JS.CreateOrUpdateConsumer(ctx, natsqueue.NoticesStream, jetstream.ConsumerConfig{
			Durable:     NoticeConsumer,
			Description: "Sends operational notices to each tenant's notice URL.",
			AckPolicy:   jetstream.AckExplicitPolicy,
			AckWait:     time.Minute,
			MaxDeliver:  len(retries) + 1,
		})
		if err == nil {
			var cc jetstream.ConsumeContext
			cc, err = cons.Consume(func(m jetstream.Msg) { n.handle(ctx, m, retries) })
			if err == nil {
				<-ctx.Done()
				cc.Drain()
				<-cc.Closed()
				return nil
			}
		}
		n.Log.Warn("the notice consumer could not start; declaring it again", "error", err)
		lifecycle.Sleep(ctx, time.Second)
	}
	return nil
}

func (n *Notices) handle(ctx context.Context, m jetstream.Msg, retries []time.Duration) {
	op, err := natsqueue.ParseNotice(m.Data())
	if err != nil {
		n.Log.Error("undecodable notice terminated", "subject", m.Subject())
		_ = m.Term()
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 45*time.Second)
	err = n.Sender.Send(sctx, op)
	cancel()
	if err == nil {
		_ = m.Ack()
		return
	}
	md, merr := m.Metadata()
	if merr != nil || int(md.NumDelivered) > len(retries) {
		n.Log.Warn("operational notice dropped after its last try", "notice", op.ID, "tenant", op.Tenant, "error", err)
		_ = m.Term()
		return
	}
	n.Log.Info("operational notice not sent; trying again", "notice", op.ID, "tenant", op.Tenant, "error", err,
		"in", retries[md.NumDelivered-1].String())
	_ = m.NakWithDelay(retries[md.NumDelivered-1])
}
