package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/casekeeper/core/pkg/testinfra"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test-only clients, created in the shared Keycloak through its admin API when missing (idempotent):
//   - gateway-test-user: password grant for the realm's users (the realm's own browser client does not allow it),
//     with the casekeeper-api scope, so that its tokens carry the audience and the tenant.
//   - gateway-test-noaud: a service account without the casekeeper-api scope: real tokens of the right realm with
//     the wrong audience.
const (
	testUserClient  = "gateway-test-user"
	testUserSecret  = "gatewayTestUserSecret"
	testNoAudClient = "gateway-test-noaud"
	testNoAudSecret = "gatewayTestNoAudSecret"
)

var testClientsOnce sync.Once

func ensureTestClients(t testing.TB, kc string) {
	t.Helper()
	testClientsOnce.Do(func() {
		a := kcAdmin{t: t, kc: kc}
		a.ensureClient(map[string]any{"clientId": testUserClient, "secret": testUserSecret, "publicClient": false,
			"directAccessGrantsEnabled": true, "standardFlowEnabled": false, "serviceAccountsEnabled": false,
			"defaultClientScopes": []string{"basic", "roles", "profile", "casekeeper-api"}})
		a.ensureClient(map[string]any{"clientId": testNoAudClient, "secret": testNoAudSecret, "publicClient": false,
			"directAccessGrantsEnabled": false, "standardFlowEnabled": false, "serviceAccountsEnabled": true,
			"defaultClientScopes": []string{"basic", "roles", "profile"}})
	})
}

// kcAdmin calls Keycloak's admin REST API as the master realm's bootstrap admin (dev only).
type kcAdmin struct {
	t  testing.TB
	kc string
}

func (a kcAdmin) token() string {
	return testinfra.PasswordLogin(a.t, "master", "admin-cli", "", "admin", "admin").AccessToken
}

func (a kcAdmin) do(method, path string, body any, out any) int {
	a.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, a.kc+"/admin/realms/"+testinfra.Realm+path, rd)
	req.Header.Set("Authorization", "Bearer "+a.token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func (a kcAdmin) ensureClient(rep map[string]any) {
	var found []map[string]any
	a.do(http.MethodGet, "/clients?clientId="+url.QueryEscape(rep["clientId"].(string)), nil, &found)
	if len(found) > 0 {
		return
	}
	if code := a.do(http.MethodPost, "/clients", rep, nil); code != http.StatusCreated && code != http.StatusConflict {
		a.t.Fatalf("creating client %s: HTTP %d", rep["clientId"], code)
	}
}

// rotateKey adds an RS256 key provider with a priority above every other key, so Keycloak signs new tokens with
// it, and returns a function that demotes it again. The key is left published (not deleted) so that tokens it
// signed for other tests of the shared Keycloak stay valid; keys of earlier runs older than the longest token
// lifetime are deleted here.
func (a kcAdmin) rotateKey() (kid string, demote func()) {
	a.t.Helper()
	var realmRep struct {
		ID string `json:"id"`
	}
	a.do(http.MethodGet, "", nil, &realmRep)
	var comps []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	a.do(http.MethodGet, "/components?type=org.keycloak.keys.KeyProvider", nil, &comps)
	for _, c := range comps {
		if ts, ok := strings.CutPrefix(c.Name, "gateway-rotation-test-"); ok {
			if sec, err := strconv.ParseInt(ts, 10, 64); err == nil && time.Since(time.Unix(sec, 0)) > 15*time.Minute {
				a.do(http.MethodDelete, "/components/"+c.ID, nil, nil)
			}
		}
	}
	name := fmt.Sprintf("gateway-rotation-test-%d", time.Now().Unix())
	comp := map[string]any{"name": name, "providerId": "rsa-generated", "providerType": "org.keycloak.keys.KeyProvider",
		"parentId": realmRep.ID, "config": map[string][]string{
			"priority": {"1000000"}, "enabled": {"true"}, "active": {"true"}, "algorithm": {"RS256"}, "keySize": {"2048"}}}
	if code := a.do(http.MethodPost, "/components", comp, nil); code != http.StatusCreated {
		a.t.Fatalf("adding key provider: HTTP %d", code)
	}
	var keys struct {
		Keys []struct {
			Kid          string `json:"kid"`
			ProviderID   string `json:"providerId"`
			Algorithm    string `json:"algorithm"`
			ProviderPrio int64  `json:"providerPriority"`
		} `json:"keys"`
	}
	a.do(http.MethodGet, "/keys", nil, &keys)
	a.do(http.MethodGet, "/components?name="+name, nil, &comps)
	var compID string
	for _, c := range comps {
		if c.Name == name {
			compID = c.ID
		}
	}
	for _, k := range keys.Keys {
		if k.ProviderID == compID && k.Algorithm == "RS256" {
			kid = k.Kid
		}
	}
	if kid == "" || compID == "" {
		a.t.Fatalf("new key not found (component %q)", compID)
	}
	return kid, func() {
		comp["id"] = compID
		comp["config"].(map[string][]string)["priority"] = []string{"-1"}
		a.do(http.MethodPut, "/components/"+compID, comp, nil)
	}
}
