package deploy_test

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// realmClient is the part of a Keycloak client representation these tests read.
type realmClient struct {
	ClientID               string   `json:"clientId"`
	Secret                 string   `json:"secret"`
	Enabled                *bool    `json:"enabled"`
	PublicClient           bool     `json:"publicClient"`
	ServiceAccountsEnabled bool     `json:"serviceAccountsEnabled"`
	StandardFlowEnabled    *bool    `json:"standardFlowEnabled"`
	RedirectURIs           []string `json:"redirectUris"`
	DefaultClientScopes    []string `json:"defaultClientScopes"`
}

type realm struct {
	Realm   string        `json:"realm"`
	Enabled bool          `json:"enabled"`
	Clients []realmClient `json:"clients"`
}

func loadRealm(t *testing.T) (realm, map[string]realmClient) {
	t.Helper()
	var r realm
	path := filepath.Join(repoRoot(t), "deploy", "keycloak", "casekeeper-realm.json")
	if err := json.Unmarshal(readFile(t, path), &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	clients := map[string]realmClient{}
	for _, c := range r.Clients {
		clients[c.ClientID] = c
	}
	return r, clients
}

// clientUse is one place that configures a Keycloak client: its id, and the secret when the place holds one.
type clientUse struct {
	where, clientID, secret string
	browser                 bool // the dashboard's authorization-code client rather than a service account
	publicURL               string
}

// clientUses collects the Keycloak clients configured in docker-compose.yml and in the Kubernetes overlays (with
// the dev overlay's generated secrets).
func clientUses(t *testing.T) []clientUse {
	t.Helper()
	var uses []clientUse
	p := loadCompose(t)
	for name := range appServices {
		s := p.Services[name]
		uses = append(uses, clientUse{where: "compose " + name, clientID: env(s, "KEYCLOAK_CLIENT_ID"), secret: env(s, "KEYCLOAK_CLIENT_SECRET")})
	}
	gw := p.Services["gateway"]
	uses = append(uses, clientUse{where: "compose gateway (dashboard)", clientID: env(gw, "DASHBOARD_CLIENT_ID"),
		secret: env(gw, "DASHBOARD_CLIENT_SECRET"), browser: true, publicURL: env(gw, "GATEWAY_PUBLIC_URL")})
	uses = append(uses, clientUse{where: "compose gateway (API credentials)", clientID: env(gw, "GATEWAY_CREDENTIALS_CLIENT_ID"),
		secret: env(gw, "GATEWAY_CREDENTIALS_CLIENT_SECRET")})

	for _, dir := range overlays {
		objs := kustomizeBuild(t, dir)
		env := filepath.Base(dir)
		secrets := map[string]map[string]string{}
		for _, s := range typed[*corev1.Secret](objs) {
			data := map[string]string{}
			for k, v := range s.StringData {
				data[k] = v
			}
			for k, v := range s.Data {
				data[k] = string(v)
			}
			secrets[s.Name] = data
		}
		common := configMap(t, objs, "casekeeper-config")
		for name, svc := range appServices {
			cfg := configMap(t, objs, svc.clientIDConfig)
			sec := secrets[name+"-secrets"] // only the dev overlay generates them
			uses = append(uses, clientUse{where: env + " " + name, clientID: cfg["KEYCLOAK_CLIENT_ID"], secret: sec["KEYCLOAK_CLIENT_SECRET"]})
		}
		gwCfg := configMap(t, objs, "gateway-config")
		uses = append(uses, clientUse{where: env + " gateway (dashboard)", clientID: gwCfg["DASHBOARD_CLIENT_ID"],
			secret: secrets["gateway-secrets"]["DASHBOARD_CLIENT_SECRET"], browser: true, publicURL: common["GATEWAY_PUBLIC_URL"]})
		uses = append(uses, clientUse{where: env + " gateway (API credentials)", clientID: gwCfg["GATEWAY_CREDENTIALS_CLIENT_ID"],
			secret: secrets["gateway-secrets"]["GATEWAY_CREDENTIALS_CLIENT_SECRET"]})
	}
	return uses
}

// TestRealmHasConfiguredClients: the realm file parses, is the realm the services are configured with, and holds
// every client that compose and Kubernetes configure (KEYCLOAK_CLIENT_ID, DASHBOARD_CLIENT_ID): service accounts for
// the services, a confidential authorization-code client for the dashboard; where a secret is configured (compose,
// the dev overlay) it is the realm's, so the stacks work out of the box.
func TestRealmHasConfiguredClients(t *testing.T) {
	r, clients := loadRealm(t)
	if r.Realm != "casekeeper" || !r.Enabled {
		t.Errorf("realm %q (enabled %v), want the enabled realm casekeeper", r.Realm, r.Enabled)
	}
	for _, dir := range overlays {
		if got := configMap(t, kustomizeBuild(t, dir), "casekeeper-config")["KEYCLOAK_REALM"]; got != r.Realm {
			t.Errorf("%s: KEYCLOAK_REALM %q, realm file %q", dir, got, r.Realm)
		}
	}
	uses := clientUses(t)
	if len(uses) == 0 {
		t.Fatal("no client configured anywhere")
	}
	for _, u := range uses {
		if u.clientID == "" {
			t.Errorf("%s: no client id configured", u.where)
			continue
		}
		c, ok := clients[u.clientID]
		if !ok {
			t.Errorf("%s: client %q is not in the realm", u.where, u.clientID)
			continue
		}
		if c.Enabled != nil && !*c.Enabled {
			t.Errorf("%s: client %q is disabled", u.where, u.clientID)
		}
		if c.PublicClient {
			t.Errorf("%s: client %q must be confidential", u.where, u.clientID)
		}
		if u.secret != "" && u.secret != c.Secret {
			t.Errorf("%s: the configured secret of %q is not the realm's", u.where, u.clientID)
		}
		if u.browser {
			if c.StandardFlowEnabled == nil || !*c.StandardFlowEnabled {
				t.Errorf("%s: client %q needs the standard (authorization code) flow", u.where, u.clientID)
			}
			// The prod hosts are placeholders whose redirect URIs are set after install (docs/operations.md).
			if !strings.Contains(u.where, "prod") && !redirectAllowed(c.RedirectURIs, u.publicURL+"/dashboard/callback") {
				t.Errorf("%s: the realm does not allow the redirect %s/dashboard/callback (allowed: %v)", u.where, u.publicURL, c.RedirectURIs)
			}
		} else if !c.ServiceAccountsEnabled {
			t.Errorf("%s: client %q needs a service account", u.where, u.clientID)
		}
	}
}

// redirectAllowed follows Keycloak's matching: exact, a trailing "*" wildcard, and for loopback hosts any port
// (RFC 8252 native-app redirects).
func redirectAllowed(allowed []string, redirect string) bool {
	target, err := url.Parse(redirect)
	if err != nil {
		return false
	}
	loopback := slices.Contains([]string{"localhost", "127.0.0.1", "[::1]", "::1"}, target.Hostname())
	for _, a := range allowed {
		if a == redirect {
			return true
		}
		if prefix, ok := strings.CutSuffix(a, "*"); ok && strings.HasPrefix(redirect, prefix) {
			return true
		}
		if u, err := url.Parse(a); err == nil && loopback && u.Scheme == target.Scheme &&
			u.Hostname() == target.Hostname() && u.Path == target.Path {
			return true
		}
	}
	return false
}

// TestRealmGivesServicesTheAudience: tokens of the services' own clients carry the casekeeper-api audience (the
// client scope of that name), since they call each other's APIs.
func TestRealmGivesServicesTheAudience(t *testing.T) {
	_, clients := loadRealm(t)
	p := loadCompose(t)
	for name := range appServices {
		id := env(p.Services[name], "KEYCLOAK_CLIENT_ID")
		c, ok := clients[id]
		if !ok {
			continue // reported by TestRealmHasConfiguredClients
		}
		if !slices.Contains(c.DefaultClientScopes, "casekeeper-api") {
			t.Errorf("client %s: default client scopes %v lack casekeeper-api", id, c.DefaultClientScopes)
		}
	}
}

// TestRealmLimitsTheCredentialsAccount: the service account with which the gateway manages tenants' API credentials
// holds realm-management's manage-clients and nothing else (no realm role, no user or realm management), in the
// realm the dev stacks import and in the one Kubernetes imports.
func TestRealmLimitsTheCredentialsAccount(t *testing.T) {
	for _, path := range []string{filepath.Join("deploy", "keycloak", "casekeeper-realm.json"),
		filepath.Join("deploy", "k8s", "base", "keycloak", "casekeeper-realm.json")} {
		var r struct {
			Users []struct {
				Username               string              `json:"username"`
				ServiceAccountClientID string              `json:"serviceAccountClientId"`
				RealmRoles             []string            `json:"realmRoles"`
				ClientRoles            map[string][]string `json:"clientRoles"`
			} `json:"users"`
		}
		if err := json.Unmarshal(readFile(t, filepath.Join(repoRoot(t), path)), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		found := false
		for _, u := range r.Users {
			if u.ServiceAccountClientID != "casekeeper-credentials" {
				continue
			}
			found = true
			if len(u.RealmRoles) != 0 || len(u.ClientRoles) != 1 || !slices.Equal(u.ClientRoles["realm-management"], []string{"manage-clients"}) {
				t.Errorf("%s: %s holds realm roles %v and client roles %v, want realm-management manage-clients only",
					path, u.Username, u.RealmRoles, u.ClientRoles)
			}
		}
		if !found {
			t.Errorf("%s: no service account for casekeeper-credentials", path)
		}
	}
}
