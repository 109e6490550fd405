package webhooksvc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// wantInvalid checks that err is InvalidArgument whose BadRequest details name field.
func wantInvalid(t testing.TB, name string, err error, field string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Errorf("%s: code %s (%v), want InvalidArgument naming %s", name, st.Code(), err, field)
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return
				}
			}
		}
	}
	t.Errorf("%s: %v does not name the field %s", name, err, field)
}

// Bad input to every RPC is refused with InvalidArgument naming the field.
func TestBadInputNamesTheField(t *testing.T) {
	e := newEnv(t)
	e.start()
	c, ctx := e.client, as("acme-admin")
	rc := newReceiver(t, nil)
	ep, _ := e.createEndpoint(rc.URL)
	id := ep.GetId()
	okEP := func(mod func(*casekeeperv1.Endpoint)) *casekeeperv1.Endpoint {
		p := &casekeeperv1.Endpoint{Url: "https://hooks.example.com/x"}
		mod(p)
		return p
	}
	create := func(mod func(*casekeeperv1.Endpoint)) error {
		_, err := c.CreateEndpoint(ctx, &casekeeperv1.CreateEndpointRequest{Endpoint: okEP(mod)})
		return err
	}
	cases := []struct {
		name  string
		err   error
		field string
	}{
		{"create without endpoint", func() error { _, err := c.CreateEndpoint(ctx, &casekeeperv1.CreateEndpointRequest{}); return err }(), "endpoint"},
		{"health of no endpoint id", func() error {
			_, err := c.GetEndpointHealth(ctx, &casekeeperv1.GetEndpointHealthRequest{Id: "not-an-id"})
			return err
		}(), "id"},
		{"create with id", create(func(p *casekeeperv1.Endpoint) { p.Id = id }), "endpoint.id"},
		{"no url", create(func(p *casekeeperv1.Endpoint) { p.Url = "" }), "endpoint.url"},
		{"relative url", create(func(p *casekeeperv1.Endpoint) { p.Url = "/hook" }), "endpoint.url"},
		{"plain http to a public host", create(func(p *casekeeperv1.Endpoint) { p.Url = "http://hooks.example.com/x" }), "endpoint.url"},
		{"credentials in url", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://u:p@hooks.example.com/" }), "endpoint.url"},
		{"private address", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://10.0.0.8/hook" }), "endpoint.url"},
		{"private address 192.168", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://192.168.1.20/hook" }), "endpoint.url"},
		{"cloud metadata", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://169.254.169.254/latest/meta-data" }), "endpoint.url"},
		{"ipv6 unique local", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://[fd00::1]/hook" }), "endpoint.url"},
		{"unknown event type", create(func(p *casekeeperv1.Endpoint) { p.EventTypes = []string{"case.exploded"} }), "endpoint.event_types"},
		{"unknown payload version", create(func(p *casekeeperv1.Endpoint) { p.PayloadVersion = "2019-01-01" }), "endpoint.payload_version"},
		{"update to an unknown payload version", func() error {
			_, err := c.UpdateEndpoint(ctx, &casekeeperv1.UpdateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{Id: id, PayloadVersion: "latest"},
				UpdateMask: fieldMask("payload_version")})
			return err
		}(), "endpoint.payload_version"},
		{"reserved header", create(func(p *casekeeperv1.Endpoint) { p.Headers = map[string]string{"webhook-id": "x"} }), "endpoint.headers"},
		{"header with newline", create(func(p *casekeeperv1.Endpoint) { p.Headers = map[string]string{"X-Key": "a\r\nb"} }), "endpoint.headers"},
		{"jq without program", create(func(p *casekeeperv1.Endpoint) { p.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ }), "endpoint.jq_transform"},
		{"program without jq", create(func(p *casekeeperv1.Endpoint) { p.JqTransform = "." }), "endpoint.jq_transform"},
		{"unknown format", create(func(p *casekeeperv1.Endpoint) { p.PayloadFormat = 42 }), "endpoint.payload_format"},
		{"negative rate", create(func(p *casekeeperv1.Endpoint) { p.RateLimitPerSecond = -1 }), "endpoint.rate_limit_per_second"},
		{"huge concurrency", create(func(p *casekeeperv1.Endpoint) { p.MaxConcurrency = 1000 }), "endpoint.max_concurrency"},
		{"long description", create(func(p *casekeeperv1.Endpoint) { p.Description = strings.Repeat("d", 1001) }), "endpoint.description"},
		{"NUL in description", create(func(p *casekeeperv1.Endpoint) { p.Description = "Acme\x00CRM" }), "endpoint.description"},
		{"ESC in description", create(func(p *casekeeperv1.Endpoint) { p.Description = "\x1b[2JAcme" }), "endpoint.description"},
		{"RLO in description", create(func(p *casekeeperv1.Endpoint) { p.Description = "Acme \u202eMRC" }), "endpoint.description"},
		{"ESC in a header value", create(func(p *casekeeperv1.Endpoint) { p.Headers = map[string]string{"X-Key": "a\x1bb"} }), "endpoint.headers"},
		{"RLO in a header value", create(func(p *casekeeperv1.Endpoint) { p.Headers = map[string]string{"X-Key": "\u202eab"} }), "endpoint.headers"},
		{"decimal IPv4 host", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://2852039166/" }), "endpoint.url"},
		{"hex IPv4 host", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://0xa9fea9fe/" }), "endpoint.url"},
		{"octal IPv4 host", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://0251.0376.0251.0376/" }), "endpoint.url"},
		{"short IPv4 host", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://127.1/" }), "endpoint.url"},
		{"trailing-dot IPv4 host", create(func(p *casekeeperv1.Endpoint) { p.Url = "https://169.254.169.254.:443/" }), "endpoint.url"},
		{"get without id", func() error { _, err := c.GetEndpoint(ctx, &casekeeperv1.GetEndpointRequest{}); return err }(), "id"},
		{"get with bad id", func() error { _, err := c.GetEndpoint(ctx, &casekeeperv1.GetEndpointRequest{Id: "x.>"}); return err }(), "id"},
		{"list with bad size", func() error {
			_, err := c.ListEndpoints(ctx, &casekeeperv1.ListEndpointsRequest{PageSize: -1})
			return err
		}(), "page_size"},
		{"list with bad token", func() error {
			_, err := c.ListEndpoints(ctx, &casekeeperv1.ListEndpointsRequest{PageToken: "zzz"})
			return err
		}(), "page_token"},
		{"update without endpoint", func() error { _, err := c.UpdateEndpoint(ctx, &casekeeperv1.UpdateEndpointRequest{}); return err }(), "endpoint"},
		{"update without id", func() error {
			_, err := c.UpdateEndpoint(ctx, &casekeeperv1.UpdateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{}})
			return err
		}(), "endpoint.id"},
		{"update unknown mask path", func() error {
			_, err := c.UpdateEndpoint(ctx, &casekeeperv1.UpdateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{Id: id},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"secrets"}}})
			return err
		}(), "update_mask"},
		{"update to private url", func() error {
			_, err := c.UpdateEndpoint(ctx, &casekeeperv1.UpdateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{Id: id, Url: "https://172.16.0.1/"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"url"}}})
			return err
		}(), "endpoint.url"},
		{"delete without id", func() error { _, err := c.DeleteEndpoint(ctx, &casekeeperv1.DeleteEndpointRequest{}); return err }(), "id"},
		{"reveal without id", func() error { _, err := c.RevealSecret(ctx, &casekeeperv1.RevealSecretRequest{}); return err }(), "id"},
		{"rotate without id", func() error { _, err := c.RotateSecret(ctx, &casekeeperv1.RotateSecretRequest{}); return err }(), "id"},
		{"test without id", func() error { _, err := c.SendTestEvent(ctx, &casekeeperv1.SendTestEventRequest{}); return err }(), "id"},
		{"preview without program", func() error {
			_, err := c.PreviewTransform(ctx, &casekeeperv1.PreviewTransformRequest{})
			return err
		}(), "jq_transform"},
		{"preview with bad program", func() error {
			_, err := c.PreviewTransform(ctx, &casekeeperv1.PreviewTransformRequest{JqTransform: "{"})
			return err
		}(), "jq_transform"},
		{"preview with a bidi control", func() error {
			_, err := c.PreviewTransform(ctx, &casekeeperv1.PreviewTransformRequest{JqTransform: ". # \u202e"})
			return err
		}(), "jq_transform"},
		{"list deliveries with ESC in event id", func() error {
			_, err := c.ListDeliveries(ctx, &casekeeperv1.ListDeliveriesRequest{EventId: "evt\x1b"})
			return err
		}(), "event_id"},
		{"list deliveries with bad endpoint", func() error {
			_, err := c.ListDeliveries(ctx, &casekeeperv1.ListDeliveriesRequest{EndpointId: "nope"})
			return err
		}(), "endpoint_id"},
		{"list deliveries with bad status", func() error {
			_, err := c.ListDeliveries(ctx, &casekeeperv1.ListDeliveriesRequest{Status: 99})
			return err
		}(), "status"},
		{"list deliveries with until before since", func() error {
			_, err := c.ListDeliveries(ctx, &casekeeperv1.ListDeliveriesRequest{Since: timestamppb.Now(),
				Until: timestamppb.New(time.Now().Add(-time.Hour))})
			return err
		}(), "until"},
		{"list deliveries with bad token", func() error {
			_, err := c.ListDeliveries(ctx, &casekeeperv1.ListDeliveriesRequest{PageToken: "!!"})
			return err
		}(), "page_token"},
		{"list deliveries with bad size", func() error {
			_, err := c.ListDeliveries(ctx, &casekeeperv1.ListDeliveriesRequest{PageSize: 100000})
			return err
		}(), "page_size"},
		{"get delivery without id", func() error { _, err := c.GetDelivery(ctx, &casekeeperv1.GetDeliveryRequest{}); return err }(), "id"},
		{"get delivery with bad id", func() error {
			_, err := c.GetDelivery(ctx, &casekeeperv1.GetDeliveryRequest{Id: "ep_x"})
			return err
		}(), "id"},
		{"resend without id", func() error { _, err := c.ResendDelivery(ctx, &casekeeperv1.ResendDeliveryRequest{}); return err }(), "id"},
		{"recover without endpoint", func() error {
			_, err := c.RecoverFailed(ctx, &casekeeperv1.RecoverFailedRequest{Since: timestamppb.Now()})
			return err
		}(), "endpoint_id"},
		{"recover without since", func() error {
			_, err := c.RecoverFailed(ctx, &casekeeperv1.RecoverFailedRequest{EndpointId: id})
			return err
		}(), "since"},
		{"recover from the future", func() error {
			_, err := c.RecoverFailed(ctx, &casekeeperv1.RecoverFailedRequest{EndpointId: id, Since: timestamppb.New(time.Now().Add(time.Hour))})
			return err
		}(), "since"},
	}
	for _, tc := range cases {
		wantInvalid(t, tc.name, tc.err, tc.field)
	}
}

// An invalid jq transform is refused when saved, with jq's error and its position.
func TestInvalidJQRefusedOnSave(t *testing.T) {
	e := newEnv(t)
	e.start()
	_, err := e.client.CreateEndpoint(as("acme-admin"), &casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{
		Url: "https://hooks.example.com/x", PayloadFormat: casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ,
		JqTransform: "{id: .data.id,\n status: .data.status | }"}})
	wantInvalid(t, "bad jq", err, "endpoint.jq_transform")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "line 2, column") {
		t.Errorf("message %q does not give the position", msg)
	}
	if _, err := e.client.CreateEndpoint(as("acme-admin"), &casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{
		Url: "https://hooks.example.com/x", PayloadFormat: casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ,
		JqTransform: "{id: .data.id}"}}); err != nil {
		t.Fatalf("valid program refused: %v", err)
	}
}

// Roles and tenants: a token without webhooks:manage is refused, no token is unauthenticated, and one tenant
// cannot see another's endpoints.
func TestAccessControl(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, nil)
	ep, _ := e.createEndpoint(rc.URL)
	_, err := e.client.ListEndpoints(as("acme-reader"), &casekeeperv1.ListEndpointsRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("cases:read only: %v, want PermissionDenied", err)
	}
	_, err = e.client.ListEndpoints(context.Background(), &casekeeperv1.ListEndpointsRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
	_, err = e.client.GetEndpoint(as("globex-admin"), &casekeeperv1.GetEndpointRequest{Id: ep.GetId()})
	if status.Code(err) != codes.NotFound {
		t.Errorf("other tenant: %v, want NotFound", err)
	}
	_, err = e.client.GetEndpointHealth(as("globex-admin"), &casekeeperv1.GetEndpointHealthRequest{Id: ep.GetId()})
	if status.Code(err) != codes.NotFound {
		t.Errorf("other tenant's endpoint health: %v, want NotFound", err)
	}
	health, err := e.client.GetEndpointHealth(as("acme-admin"), &casekeeperv1.GetEndpointHealthRequest{Id: ep.GetId()})
	if err != nil || len(health.GetHours()) != 24 || len(health.GetDays()) != 7 || health.GetHoursTotal().GetAttempts() != 0 {
		t.Errorf("a new endpoint's health: %v %v, want 24 hours and 7 days without attempts", health, err)
	}
	list, err := e.client.ListEndpoints(as("globex-admin"), &casekeeperv1.ListEndpointsRequest{})
	if err != nil || len(list.GetEndpoints()) != 0 {
		t.Errorf("other tenant lists %v %v", list, err)
	}
}

// Endpoint management round trip: update with a mask, list with pages, test event, delete.
func TestEndpointLifecycle(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, nil)
	ctx := as("acme-admin")
	var ids []string
	for range 3 {
		ep, _ := e.createEndpoint(rc.URL, func(p *casekeeperv1.Endpoint) { p.Description = "d" })
		ids = append(ids, ep.GetId())
	}
	up, err := e.client.UpdateEndpoint(ctx, &casekeeperv1.UpdateEndpointRequest{
		Endpoint:   &casekeeperv1.Endpoint{Id: ids[0], Description: "changed", Url: "ignored"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
	if err != nil || up.GetEndpoint().GetDescription() != "changed" || up.GetEndpoint().GetUrl() != rc.URL {
		t.Fatalf("update %v %v", up, err)
	}
	page1, err := e.client.ListEndpoints(ctx, &casekeeperv1.ListEndpointsRequest{PageSize: 2})
	if err != nil || len(page1.GetEndpoints()) != 2 || page1.GetNextPageToken() == "" {
		t.Fatalf("page 1 %v %v", page1, err)
	}
	page2, err := e.client.ListEndpoints(ctx, &casekeeperv1.ListEndpointsRequest{PageSize: 2, PageToken: page1.GetNextPageToken()})
	if err != nil || len(page2.GetEndpoints()) != 1 || page2.GetNextPageToken() != "" {
		t.Fatalf("page 2 %v %v", page2, err)
	}
	test, err := e.client.SendTestEvent(ctx, &casekeeperv1.SendTestEventRequest{Id: ids[1]})
	if err != nil || test.GetAttempt().GetStatusCode() != 200 {
		t.Fatalf("test event %v %v", test, err)
	}
	if got := rc.Requests(); len(got) != 1 || !strings.Contains(string(got[0].Body), `"type":"webhook.test"`) {
		t.Fatalf("test event body %v", got)
	}
	if _, err := e.client.DeleteEndpoint(ctx, &casekeeperv1.DeleteEndpointRequest{Id: ids[2]}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetEndpoint(ctx, &casekeeperv1.GetEndpointRequest{Id: ids[2]}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleted endpoint: %v", err)
	}
	pv, err := e.client.PreviewTransform(ctx, &casekeeperv1.PreviewTransformRequest{JqTransform: "{ref: .data.external_ref}"})
	if err != nil || pv.GetOutput() != `{"ref":"test-ref"}` {
		t.Fatalf("preview %v %v", pv, err)
	}
}
