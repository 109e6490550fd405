package webhooksvc_test

import (
	"context"
	"testing"

	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// FuzzWebhookAPI: every method of the webhook service, as an administrator of tenant acme, with requests decoded
// from arbitrary bytes (testinfra.FuzzService).
func FuzzWebhookAPI(f *testing.F) {
	e := newEnv(f)
	e.start()
	testinfra.FuzzService(f, testinfra.Dial(f, e.svc.GRPCAddr()),
		casekeeperv1.File_casekeeper_v1_webhook_service_proto.Services().ByName("WebhookService"),
		func() context.Context { return as("acme-admin") },
		&casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{Url: "https://0xa9fea9fe/\x1b",
			Description: "seed \u202e", JqTransform: `def f: f; f`, PayloadFormat: casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ}})
}
