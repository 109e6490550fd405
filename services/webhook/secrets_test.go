package webhooksvc_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casekeeper/core/pkg/config"
	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/webhook/internal/app"
	"github.com/casekeeper/core/services/webhook/internal/keyring"
)

// testSecretsKey seals the test endpoints' secrets and header values (WEBHOOK_SECRETS_KEY).
const testSecretsKey config.Secret = "jqZaqvw+byH49FnYiT7volhd6gjk2OArtTPA1wTtzcM="

func testKeyring(t testing.TB) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Parse(testSecretsKey.Reveal(), "")
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// Custom header values are write-only: every response shows them masked, the receiver gets the real value, the
// mask sent back keeps it; signing secrets and header values are not in the database in plaintext.
func TestHeaderValuesWriteOnlyAndSealedAtRest(t *testing.T) {
	e := newEnv(t)
	e.start()
	rc := newReceiver(t, nil)
	ctx := as("acme-admin")
	const credential = "Bearer receiver-credential-4711"
	ep, secret := e.createEndpoint(rc.URL, func(p *casekeeperv1.Endpoint) {
		p.Headers = map[string]string{"Authorization": credential, "X-Env": "test"}
	})
	if v := ep.GetHeaders()["Authorization"]; v != app.HeaderValueMask {
		t.Errorf("CreateEndpoint returned the header value %q", v)
	}
	got, err := e.client.GetEndpoint(ctx, &casekeeperv1.GetEndpointRequest{Id: ep.GetId()})
	if err != nil || got.GetEndpoint().GetHeaders()["Authorization"] != app.HeaderValueMask || got.GetEndpoint().GetHeaders()["X-Env"] != app.HeaderValueMask {
		t.Fatalf("GetEndpoint headers %v, %v", got.GetEndpoint().GetHeaders(), err)
	}
	list, err := e.client.ListEndpoints(ctx, &casekeeperv1.ListEndpointsRequest{})
	if err != nil || len(list.GetEndpoints()) != 1 || list.GetEndpoints()[0].GetHeaders()["Authorization"] != app.HeaderValueMask {
		t.Fatalf("ListEndpoints %v, %v", list.GetEndpoints(), err)
	}

	// The raw document holds neither the credential nor the signing secret.
	var doc bson.M
	db := testinfra.ConnectMongo(t, e.mongoURI, e.db)
	if err := db.Collection("webhook_endpoints").FindOne(context.Background(), bson.D{{Key: "_id", Value: ep.GetId()}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	raw, _ := bson.MarshalExtJSON(doc, false, false)
	if strings.Contains(string(raw), "receiver-credential") || strings.Contains(string(raw), strings.TrimPrefix(secret, "whsec_")) {
		t.Fatalf("stored in plaintext: %s", raw)
	}

	sendTest := func() http.Header {
		t.Helper()
		n := len(rc.Requests())
		if _, err := e.client.SendTestEvent(ctx, &casekeeperv1.SendTestEventRequest{Id: ep.GetId()}); err != nil {
			t.Fatal(err)
		}
		testinfra.Eventually(t, 5*time.Second, "the test event", func() bool { return len(rc.Requests()) > n })
		return rc.Requests()[n].Header
	}
	if h := sendTest(); h.Get("Authorization") != credential {
		t.Fatalf("the receiver got Authorization %q", h.Get("Authorization"))
	}
	// What a client read, sent back with one value changed: the masked one keeps its value.
	headers := got.GetEndpoint().GetHeaders()
	headers["X-Env"] = "staging"
	if _, err := e.client.UpdateEndpoint(ctx, &casekeeperv1.UpdateEndpointRequest{
		Endpoint: &casekeeperv1.Endpoint{Id: ep.GetId(), Headers: headers}, UpdateMask: fieldMask("headers")}); err != nil {
		t.Fatal(err)
	}
	if h := sendTest(); h.Get("Authorization") != credential || h.Get("X-Env") != "staging" {
		t.Fatalf("after an update with the mask: Authorization %q, X-Env %q", h.Get("Authorization"), h.Get("X-Env"))
	}
	// The mask with nothing stored behind it is refused.
	_, err = e.client.CreateEndpoint(ctx, &casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{Url: rc.URL,
		Headers: map[string]string{"X-New": app.HeaderValueMask}}})
	wantInvalid(t, "create with the mask", err, "endpoint.headers")
	// The signing secret is still revealed on request: that is what RevealSecret is for.
	rev, err := e.client.RevealSecret(ctx, &casekeeperv1.RevealSecretRequest{Id: ep.GetId()})
	if err != nil || rev.GetSecrets()[0].GetSecret() != secret {
		t.Fatalf("RevealSecret %v, %v", rev, err)
	}
}
