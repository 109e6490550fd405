package projector

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/feed"
)

type storeFunc func(context.Context, feed.Entry) error

func (f storeFunc) Append(ctx context.Context, e feed.Entry) error { return f(ctx, e) }

func TestHandlerKinds(t *testing.T) {
	var stored []feed.Entry
	h := Handler{Store: storeFunc(func(_ context.Context, e feed.Entry) error { stored = append(stored, e); return nil })}
	good, _ := proto.Marshal(&casekeeperv1.CaseEvent{Id: "e1", Tenant: "acme", CaseId: "c1", Type: "case.created"})
	if tenant, err := h.Handle(context.Background(), good, 42); err != nil || tenant != "acme" || stored[0].Seq != 42 {
		t.Fatalf("good event: %q %v %v", tenant, err, stored)
	}
	bad, _ := proto.Marshal(&casekeeperv1.CaseEvent{Id: "e2", Tenant: "acme.>", CaseId: "c1"})
	for name, data := range map[string][]byte{"undecodable": []byte{0xff, 0xff}, "bad tenant": bad} {
		if _, err := h.Handle(context.Background(), data, 43); !errors.Is(err, errPoison) {
			t.Errorf("%s: %v, want poison", name, err)
		}
	}
	h.Store = storeFunc(func(context.Context, feed.Entry) error { return errors.New("db down") })
	if _, err := h.Handle(context.Background(), good, 44); err == nil || errors.Is(err, errPoison) {
		t.Fatalf("store failure must be retried, got %v", err)
	}
	if c := ConsumerConfig("gw"); c.MaxAckPending != 1 || c.MaxDeliver != -1 {
		t.Fatalf("consumer config %+v", c)
	}
}
