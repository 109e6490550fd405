package webhooksvc_test

import (
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/proto/webhookbody"
)

// TestEndpointsArePinnedToTheirPayloadVersion: a new endpoint gets the current version, keeps it through an
// update of every field that does not name one, and each request says which version its body has.
func TestEndpointsArePinnedToTheirPayloadVersion(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, nil)
	ep, _ := e.createEndpoint(rc.URL)
	if ep.GetPayloadVersion() != webhookbody.CurrentVersion {
		t.Fatalf("a new endpoint's payload version %q, want %q", ep.GetPayloadVersion(), webhookbody.CurrentVersion)
	}
	// An update of every field, as a client that knows nothing of versions sends it, keeps the pinned version.
	upd, err := e.client.UpdateEndpoint(as("acme-admin"), &casekeeperv1.UpdateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{
		Id: ep.GetId(), Url: rc.URL, Description: "renamed"}})
	if err != nil || upd.GetEndpoint().GetPayloadVersion() != webhookbody.CurrentVersion || upd.GetEndpoint().GetDescription() != "renamed" {
		t.Fatalf("update without a version: %v %v", upd.GetEndpoint(), err)
	}
	e.publish("acme", 1)
	testinfra.Eventually(t, 10*time.Second, "the delivery", func() bool { return len(rc.Requests()) == 1 })
	if got := rc.Requests()[0].Header.Get(webhookbody.HeaderVersion); got != webhookbody.CurrentVersion {
		t.Fatalf("%s: %q, want %q", webhookbody.HeaderVersion, got, webhookbody.CurrentVersion)
	}
}
