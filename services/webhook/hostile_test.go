package webhooksvc_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	webhooksvc "github.com/casekeeper/core/services/webhook"
	"github.com/casekeeper/core/services/webhook/internal/mongostore"
)

// Programs that cannot finish on the sample event within the limits of a transform are refused when saved,
// naming the field; the preview runs them in the same workers and reports the limit.
func TestTransformThatCannotFinishIsRefused(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, nil)
	ctx := as("acme-admin")
	ep, _ := e.createEndpoint(rc.URL)
	for _, prog := range []string{`def f: f; f`, `"x" * 400000000`, `[range(0;1e8)]`, `[limit(1e9; repeat(.))] | length`} {
		jq := func(p *casekeeperv1.Endpoint) {
			p.PayloadFormat, p.JqTransform = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ, prog
		}
		start := time.Now()
		_, err := e.client.CreateEndpoint(ctx, &casekeeperv1.CreateEndpointRequest{Endpoint: func() *casekeeperv1.Endpoint {
			p := &casekeeperv1.Endpoint{Url: rc.URL}
			jq(p)
			return p
		}()})
		wantInvalid(t, "create with "+prog, err, "endpoint.jq_transform")
		if err != nil && !strings.Contains(err.Error(), "limits of a transform") {
			t.Errorf("create with %s: %v does not say which limit", prog, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("create with %s took %s", prog, took)
		}
		_, err = e.client.UpdateEndpoint(ctx, &casekeeperv1.UpdateEndpointRequest{
			Endpoint:   &casekeeperv1.Endpoint{Id: ep.GetId(), PayloadFormat: casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ, JqTransform: prog + " # " + strconv.Itoa(1)},
			UpdateMask: fieldMask("payload_format", "jq_transform")})
		wantInvalid(t, "update with "+prog, err, "endpoint.jq_transform")
		_, err = e.client.PreviewTransform(ctx, &casekeeperv1.PreviewTransformRequest{JqTransform: prog})
		wantInvalid(t, "preview of "+prog, err, "jq_transform")
	}
	// A program that only fails on the sample's data is a program: it is accepted.
	_, err := e.client.CreateEndpoint(ctx, &casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{Url: rc.URL,
		PayloadFormat: casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ, JqTransform: `.data.documents[0].kind | ascii_downcase`}})
	if err != nil {
		t.Fatalf("a program that errors on the sample: %v", err)
	}
}

// A program that passes the sample but explodes on real events costs its own endpoint its deliveries (failed
// attempts, dead letters, one operational notice) and nothing else: the service's memory stays where it was and
// another tenant's deliveries arrive.
func TestHostileTransformCostsOnlyItsEndpoint(t *testing.T) {
	e := newEnv(t)
	// A short quarantine, so that the attempts that wait it out still run out within the test.
	e.start(func(c *webhooksvc.Config) { c.JQQuarantine = time.Second })
	hostile, other := newReceiver(t, nil), newReceiver(t, nil)
	bomb := `if .type == "case.created" then "x" * 400000000 else {id: .data.id} end`
	ep, _ := e.createEndpoint(hostile.URL, func(p *casekeeperv1.Endpoint) {
		p.PayloadFormat, p.JqTransform, p.MaxConcurrency = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ, bomb, 8
	})
	if _, err := e.client.CreateEndpoint(as("globex-admin"), &casekeeperv1.CreateEndpointRequest{
		Endpoint: &casekeeperv1.Endpoint{Url: other.URL, PayloadFormat: casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ,
			JqTransform: `{id: .data.id, type}`}}); err != nil {
		t.Fatal(err)
	}
	before := testinfra.PeakRSS(t)
	e.publish("acme", 20)
	e.publish("globex", 20)
	testinfra.Eventually(t, 20*time.Second, "every event at the other tenant's receiver", func() bool { return len(other.Requests()) == 20 })
	testinfra.Eventually(t, 60*time.Second, "the hostile endpoint's deliveries dead-lettered", func() bool {
		return len(e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD)) == 20
	})
	paused, err := e.js.Consumer(context.Background(), "WEBHOOK_DELIVERIES", "ep_"+ep.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if info, err := paused.Info(context.Background()); err != nil || info.Config.PauseUntil == nil {
		t.Errorf("the hostile endpoint's consumer was never paused for its program's quarantine: %+v %v", info, err)
	}
	if n := len(hostile.Requests()); n != 0 {
		t.Errorf("the hostile endpoint received %d requests", n)
	}
	// A fixed program ends the pause at once.
	if _, err := e.js.PauseConsumer(context.Background(), "WEBHOOK_DELIVERIES", "ep_"+ep.GetId(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.UpdateEndpoint(as("acme-admin"), &casekeeperv1.UpdateEndpointRequest{
		Endpoint: &casekeeperv1.Endpoint{Id: ep.GetId(), JqTransform: `{id: .data.id}`}, UpdateMask: fieldMask("jq_transform")}); err != nil {
		t.Fatal(err)
	}
	if info, err := paused.Info(context.Background()); err != nil || info.Paused {
		t.Errorf("the consumer is still paused after the program was fixed: %v", err)
	}
	e.publish("acme", 1)
	testinfra.Eventually(t, 10*time.Second, "the fixed endpoint delivered", func() bool { return len(hostile.Requests()) == 1 })
	dead := e.deliveries(t, ep.GetId(), casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD)
	if msg := dead[0].GetLastError(); !strings.Contains(msg, "limits of a transform") {
		t.Errorf("last error %q does not name the limit", msg)
	}
	if grew := testinfra.PeakRSS(t) - before; grew > 128<<20 {
		t.Errorf("the service's peak RSS grew by %d MiB", grew>>20)
	}
	ops, err := mongostore.New(testinfra.ConnectMongo(t, e.mongoURI, e.db), testKeyring(t)).Operations(context.Background(), "acme")
	if err != nil || len(ops) == 0 || ops[0].Kind != "endpoint.transform_limited" || ops[0].EndpointID != ep.GetId() {
		t.Fatalf("operational events %v %v, want an endpoint.transform_limited notice", ops, err)
	}
	t.Logf("%d notices for %d dead deliveries; the first: %s", len(ops), len(dead), ops[0].Reason)
}
