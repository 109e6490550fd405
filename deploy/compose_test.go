package deploy_test

import (
	"context"
	"encoding/base64"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

var (
	composeOnce    sync.Once
	composeProject *types.Project
	composeErr     error
)

// loadCompose loads docker-compose.yml as `docker compose` would: schema validation, interpolation, normalization
// and the consistency checks (dependencies, network_mode targets, volumes), with an empty environment so that no
// variable of the machine running the tests leaks in.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	composeOnce.Do(func() {
		root := repoRoot(t)
		opts, err := cli.NewProjectOptions(
			[]string{filepath.Join(root, "docker-compose.yml")},
			cli.WithWorkingDirectory(root),
			cli.WithEnv(nil),
			cli.WithConsistency(true),
			cli.WithResolvedPaths(true),
		)
		if err != nil {
			composeErr = err
			return
		}
		composeProject, composeErr = opts.LoadProject(context.Background())
	})
	if composeErr != nil {
		t.Fatalf("docker-compose.yml: %v", composeErr)
	}
	return composeProject
}

func env(svc types.ServiceConfig, name string) string {
	if v, ok := svc.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

var infraServices = []string{"mongodb", "nats", "keycloak"}

// TestComposeLoads: the file is valid for the Compose specification and holds the expected services.
func TestComposeLoads(t *testing.T) {
	p := loadCompose(t)
	if p.Name != "casekeeper" {
		t.Errorf("project name %q", p.Name)
	}
	want := []string{"case", "demo-receiver", "gateway", "keycloak", "mongodb", "nats", "webhook"}
	got := p.ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
}

// TestComposeHealthGatedStartup: the infrastructure has health checks; the services wait for all of it to be
// healthy; every service_healthy dependency targets a service that has a health check.
func TestComposeHealthGatedStartup(t *testing.T) {
	p := loadCompose(t)
	hasHealthcheck := func(name string) bool {
		s, ok := p.Services[name]
		if !ok || s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			return false
		}
		return s.HealthCheck.Test[0] != "NONE"
	}
	for _, name := range append(slices.Clone(infraServices), "demo-receiver") {
		if !hasHealthcheck(name) {
			t.Errorf("%s has no health check", name)
		}
	}
	for name, s := range p.Services {
		for dep, cond := range s.DependsOn {
			if cond.Condition == types.ServiceConditionHealthy && !hasHealthcheck(dep) {
				t.Errorf("%s waits for %s to be healthy, but %s has no health check", name, dep, dep)
			}
		}
	}
	for name := range appServices {
		s := p.Services[name]
		for _, infra := range infraServices {
			if c := s.DependsOn[infra].Condition; c != types.ServiceConditionHealthy {
				t.Errorf("%s depends on %s with condition %q, want service_healthy", name, infra, c)
			}
		}
	}
	for _, backend := range []string{"case", "webhook"} {
		if _, ok := p.Services["gateway"].DependsOn[backend]; !ok {
			t.Errorf("gateway does not depend on %s", backend)
		}
	}

	// The health checks do what they are for.
	test := func(name string) string { return strings.Join(p.Services[name].HealthCheck.Test, " ") }
	if h := test("mongodb"); !strings.Contains(h, "rs.initiate") || !strings.Contains(h, "isWritablePrimary") {
		t.Errorf("mongodb health check must initiate the replica set and wait for a primary: %s", h)
	}
	if h := test("nats"); !strings.Contains(h, ":8222/healthz") {
		t.Errorf("nats health check must use the monitoring port's /healthz: %s", h)
	}
	if h := test("keycloak"); !strings.Contains(h, "/9000") || !strings.Contains(h, "/health/ready") {
		t.Errorf("keycloak health check must ask the management port's /health/ready: %s", h)
	}
}

// TestComposeInfrastructure: MongoDB 7 as a replica set, NATS 2.12+ with JetStream on a volume, Keycloak 26.5.6 in
// dev mode importing the realm file with health enabled and a fixed hostname.
func TestComposeInfrastructure(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	for name, s := range p.Services {
		if s.Build == nil {
			if err := checkImagePinned(s.Image); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %d on %q: bind published ports to 127.0.0.1", name, port.Target, port.HostIP)
			}
		}
	}

	mongo := p.Services["mongodb"]
	if !strings.HasPrefix(mongo.Image, "mongo:7.") {
		t.Errorf("mongodb image %q, want MongoDB 7", mongo.Image)
	}
	if !slices.Contains(mongo.Command, "--replSet") {
		t.Errorf("mongodb command %v has no --replSet", mongo.Command)
	}
	if !mountsVolume(mongo, "/data/db") {
		t.Error("mongodb data is not on a volume")
	}

	nats := p.Services["nats"]
	if !strings.HasPrefix(nats.Image, "nats:2.") || !versionAtLeast(strings.TrimPrefix(nats.Image, "nats:"), 2, 12) {
		t.Errorf("nats image %q, want NATS 2.12 or later", nats.Image)
	}
	if !slices.Contains(nats.Command, "--jetstream") && !slices.Contains(nats.Command, "-js") {
		t.Errorf("nats command %v does not enable JetStream", nats.Command)
	}
	if i := slices.Index(nats.Command, "--store_dir"); i < 0 || i+1 >= len(nats.Command) || !mountsVolume(nats, nats.Command[i+1]) {
		t.Errorf("nats command %v: the JetStream store_dir must be on a volume", nats.Command)
	}

	kc := p.Services["keycloak"]
	if kc.Image != "quay.io/keycloak/keycloak:26.5.6" {
		t.Errorf("keycloak image %q", kc.Image)
	}
	if !slices.Equal(kc.Command, types.ShellCommand{"start-dev", "--import-realm"}) {
		t.Errorf("keycloak command %v, want start-dev --import-realm", kc.Command)
	}
	if env(kc, "KC_HEALTH_ENABLED") != "true" {
		t.Error("keycloak: KC_HEALTH_ENABLED must be true")
	}
	if env(kc, "KC_HOSTNAME") != "http://localhost:8180" || env(kc, "KC_HOSTNAME_BACKCHANNEL_DYNAMIC") != "true" {
		t.Error("keycloak: KC_HOSTNAME=http://localhost:8180 and KC_HOSTNAME_BACKCHANNEL_DYNAMIC=true keep one issuer")
	}
	realm := filepath.Join(root, "deploy", "keycloak", "casekeeper-realm.json")
	if !slices.ContainsFunc(kc.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Source == realm && strings.HasPrefix(v.Target, "/opt/keycloak/data/import/")
	}) {
		t.Errorf("keycloak does not mount %s into /opt/keycloak/data/import/", realm)
	}
	if !slices.ContainsFunc(kc.Ports, func(p types.ServicePortConfig) bool { return p.Published == "8180" && p.Target == 8080 }) {
		t.Error("keycloak must be published on localhost:8180 (its KC_HOSTNAME)")
	}
}

func mountsVolume(s types.ServiceConfig, target string) bool {
	return slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == target
	})
}

// versionAtLeast compares the leading major.minor of a tag such as "2.15.2-alpine".
func versionAtLeast(tag string, major, minor int) bool {
	parts := strings.SplitN(strings.SplitN(tag, "-", 2)[0], ".", 3)
	if len(parts) < 2 {
		return false
	}
	var ma, mi int
	for _, c := range parts[0] {
		ma = ma*10 + int(c-'0')
	}
	for _, c := range parts[1] {
		mi = mi*10 + int(c-'0')
	}
	return ma > major || ma == major && mi >= minor
}

// TestComposeServices: each service is built by the one Dockerfile with SERVICE=<its name>, listens on 0.0.0.0, and reaches the
// infrastructure and its peers by their compose names; the gateway's backends are the case and webhook services'
// gRPC addresses; the issuer they expect is the one Keycloak's fixed hostname gives.
func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	for name := range appServices {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		if s.Build == nil {
			t.Errorf("%s is not built", name)
		} else {
			if s.Build.Context != root || filepath.ToSlash(s.Build.Dockerfile) != "Dockerfile" {
				t.Errorf("%s builds %s in %s, want the Dockerfile of the repository root", name, s.Build.Dockerfile, s.Build.Context)
			}
			if arg := s.Build.Args["SERVICE"]; arg == nil || *arg != name {
				t.Errorf("%s is not built with the build argument SERVICE=%s", name, name)
			}
		}
		for k, v := range s.Environment {
			if v != nil && strings.HasSuffix(k, "_ADDR") && !strings.HasSuffix(k, "_SERVICE_ADDR") && !strings.HasPrefix(*v, "0.0.0.0:") {
				t.Errorf("%s %s=%s: must bind 0.0.0.0 in a container", name, k, *v)
			}
		}
		want := map[string]string{
			"NATS_URL":               "nats://nats:4222",
			"KEYCLOAK_URL":           "http://keycloak:8080",
			"KEYCLOAK_REALM":         "casekeeper",
			"AUTH_AUDIENCE":          "casekeeper-api",
			"AUTH_ISSUER":            env(p.Services["keycloak"], "KC_HOSTNAME") + "/realms/casekeeper",
			"EVENTS_STREAM_REPLICAS": "1",
			"GATEWAY_PUBLIC_URL":     "http://localhost:8080",
		}
		for k, v := range want {
			if got := env(s, k); got != v {
				t.Errorf("%s %s=%q, want %q", name, k, got, v)
			}
		}
		u, err := url.Parse(env(s, "MONGODB_URI"))
		if err != nil || u.Host != "mongodb:27017" || u.Query().Get("replicaSet") != "rs0" {
			t.Errorf("%s MONGODB_URI=%q: want the mongodb service with replicaSet=rs0", name, env(s, "MONGODB_URI"))
		}
		if env(s, "KEYCLOAK_CLIENT_ID") == "" || env(s, "KEYCLOAK_CLIENT_SECRET") == "" {
			t.Errorf("%s has no Keycloak client credentials", name)
		}
	}
	gw := p.Services["gateway"]
	for key, backend := range map[string]string{"CASE_SERVICE_ADDR": "case", "WEBHOOK_SERVICE_ADDR": "webhook"} {
		listen := env(p.Services[backend], strings.ToUpper(backend)+"_GRPC_ADDR")
		_, port, _ := strings.Cut(listen, ":")
		if want := backend + ":" + port; env(gw, key) != want {
			t.Errorf("gateway %s=%q, want %q (the %s service listens on %s)", key, env(gw, key), want, backend, listen)
		}
	}
	if env(gw, "DASHBOARD_COOKIE_SECURE") != "false" {
		t.Error("gateway over plain HTTP on localhost needs DASHBOARD_COOKIE_SECURE=false")
	}
	if key, err := base64.StdEncoding.DecodeString(env(gw, "GATEWAY_SESSION_KEY")); err != nil || len(key) != 32 {
		t.Error("gateway needs GATEWAY_SESSION_KEY, the base64 of 32 bytes, for the dashboard")
	}

	// The demo receiver shares the webhook container's network, so deliveries to it are loopback.
	rcv := p.Services["demo-receiver"]
	if rcv.NetworkMode != "service:webhook" {
		t.Errorf("demo-receiver network_mode %q, want service:webhook", rcv.NetworkMode)
	}
	if env(p.Services["webhook"], "WEBHOOK_ALLOW_LOOPBACK_HTTP") != "true" {
		t.Error("webhook: WEBHOOK_ALLOW_LOOPBACK_HTTP must be true for the demo receiver")
	}
	if rcv.Build == nil || rcv.Build.Context != filepath.Join(root, "examples", "demo-receiver") {
		t.Errorf("demo-receiver must be built from examples/demo-receiver")
	}
}
