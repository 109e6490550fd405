package dashboard

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// deliveryLog is a webhook service with one endpoint and a page of deliveries, counting the calls per delivery.
type deliveryLog struct {
	*fakeWebhooks
	lists, gets atomic.Int64
}

func (d *deliveryLog) GetEndpoint(context.Context, *casekeeperv1.GetEndpointRequest, ...grpc.CallOption) (*casekeeperv1.GetEndpointResponse, error) {
	return &casekeeperv1.GetEndpointResponse{Endpoint: &casekeeperv1.Endpoint{Id: "ep_a", Url: "https://acme.example/hook",
		CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now()}}, nil
}

func (d *deliveryLog) ListDeliveries(context.Context, *casekeeperv1.ListDeliveriesRequest, ...grpc.CallOption) (*casekeeperv1.ListDeliveriesResponse, error) {
	d.lists.Add(1)
	resp := &casekeeperv1.ListDeliveriesResponse{}
	for i, excerpt := range []string{"accepted-one", "accepted-two", "accepted-three"} {
		resp.Deliveries = append(resp.Deliveries, &casekeeperv1.Delivery{Id: "msg_" + strings.Repeat("a", i+1), EndpointId: "ep_a",
			Status: casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, AttemptCount: 1, LastStatusCode: 200,
			CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now(),
			LastAttempt: &casekeeperv1.Attempt{Number: 1, At: timestamppb.Now(), StatusCode: 200,
				Latency: durationpb.New(time.Duration(i+1) * 7 * time.Millisecond), ResponseExcerpt: excerpt}})
	}
	return resp, nil
}

func (d *deliveryLog) GetEndpointHealth(context.Context, *casekeeperv1.GetEndpointHealthRequest, ...grpc.CallOption) (*casekeeperv1.GetEndpointHealthResponse, error) {
	return &casekeeperv1.GetEndpointHealthResponse{}, nil
}

func (d *deliveryLog) GetDelivery(context.Context, *casekeeperv1.GetDeliveryRequest, ...grpc.CallOption) (*casekeeperv1.GetDeliveryResponse, error) {
	d.gets.Add(1)
	return &casekeeperv1.GetDeliveryResponse{}, nil
}

func TestEndpointPageShowsLastAttemptsFromOneListCall(t *testing.T) {
	f := newFixture(t, false)
	log := &deliveryLog{fakeWebhooks: f.webhooks}
	f.h.opts.Webhooks = log
	f.signIn(t)
	resp := f.get(t, "/dashboard/webhooks/ep_a")
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("endpoint page: %d", resp.StatusCode)
	}
	for _, want := range []string{"accepted-one", "accepted-two", "accepted-three"} {
		if !strings.Contains(page, want) {
			t.Errorf("the delivery log lacks the response excerpt %q", want)
		}
	}
	if l, g := log.lists.Load(), log.gets.Load(); l != 1 || g != 0 {
		t.Fatalf("the page made %d list and %d get calls, want 1 and 0", l, g)
	}
}
