package deploy_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nats-io/nats-server/v2/server"
)

const namespace = "casekeeper"

var overlays = []string{"deploy/k8s/overlays/dev", "deploy/k8s/overlays/prod"}

// The Case-keeper services: their ops port serves /healthz and /readyz (the gateway serves them on its HTTP port).
var appServices = map[string]struct {
	opsPort, grpcPort int32
	clientIDConfig    string
}{
	"case":    {8091, 9091, "case-config"},
	"webhook": {8092, 9092, "webhook-config"},
	"gateway": {8080, 9090, "gateway-config"},
}

// Workloads allowed a writable root filesystem, with the reason (also written next to the setting).
var writableRootFS = map[string]string{
	"Deployment/keycloak": "Keycloak re-augments into /opt/keycloak/lib at startup unless run from an optimized image",
}

// TestOverlaysBuild builds the base and each overlay with kustomize (the library `kubectl apply -k` uses, with its
// default load restrictions) and decodes the output strictly.
func TestOverlaysBuild(t *testing.T) {
	for _, dir := range append([]string{"deploy/k8s/base"}, overlays...) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			if len(objs) == 0 {
				t.Fatal("empty output")
			}
			seen := map[string]bool{}
			for _, o := range objs {
				key := o.Kind + "/" + o.Name
				if seen[key] {
					t.Errorf("%s appears twice", key)
				}
				seen[key] = true
				if o.Kind != "Namespace" && o.Namespace != namespace {
					t.Errorf("%s is in namespace %q, want %q", o, o.Namespace, namespace)
				}
			}
		})
	}
}

// TestOverlayWorkloadsHardened: every container of every workload runs as non-root, without privilege escalation
// or capabilities, under RuntimeDefault seccomp, on a read-only root filesystem (documented exceptions aside), with
// CPU and memory requests and a memory limit, from an image pinned by tag; pods get no service-account token.
func TestOverlayWorkloadsHardened(t *testing.T) {
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ws := workloads(kustomizeBuild(t, dir))
			if len(ws) == 0 {
				t.Fatal("no workloads")
			}
			for _, w := range ws {
				checkPodHardened(t, w)
			}
		})
	}
}

func checkPodHardened(t *testing.T, w workload) {
	t.Helper()
	id := w.Kind + "/" + w.Name
	spec := w.Spec
	if v, ok := ptrValue(spec.AutomountServiceAccountToken); !ok || v {
		t.Errorf("%s: automountServiceAccountToken must be false", id)
	}
	podSC := spec.SecurityContext
	if podSC == nil {
		podSC = &corev1.PodSecurityContext{}
	}
	all := slices.Concat(spec.InitContainers, spec.Containers)
	if len(all) == 0 {
		t.Errorf("%s: no containers", id)
	}
	for _, c := range all {
		cid := id + " container " + c.Name
		if err := checkImagePinned(c.Image); err != nil {
			t.Errorf("%s: %v", cid, err)
		}
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", cid)
			continue
		}
		nonRoot, _ := ptrValue(sc.RunAsNonRoot)
		if sc.RunAsNonRoot == nil {
			nonRoot, _ = ptrValue(podSC.RunAsNonRoot)
		}
		if !nonRoot {
			t.Errorf("%s: runAsNonRoot is not true", cid)
		}
		if uid, ok := ptrValue(sc.RunAsUser); ok && uid == 0 {
			t.Errorf("%s: runs as UID 0", cid)
		}
		if uid, ok := ptrValue(podSC.RunAsUser); ok && uid == 0 && sc.RunAsUser == nil {
			t.Errorf("%s: pod runs as UID 0", cid)
		}
		if v, ok := ptrValue(sc.AllowPrivilegeEscalation); !ok || v {
			t.Errorf("%s: allowPrivilegeEscalation must be false", cid)
		}
		if v, ok := ptrValue(sc.Privileged); ok && v {
			t.Errorf("%s: privileged", cid)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", cid)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = podSC.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile must be RuntimeDefault", cid)
		}
		if ro, _ := ptrValue(sc.ReadOnlyRootFilesystem); !ro {
			if _, allowed := writableRootFS[w.Kind+"/"+w.Name]; !allowed {
				t.Errorf("%s: readOnlyRootFilesystem must be true", cid)
			}
		}
		req, lim := c.Resources.Requests, c.Resources.Limits
		if req.Cpu().IsZero() || req.Memory().IsZero() {
			t.Errorf("%s: needs CPU and memory requests", cid)
		}
		if lim.Memory().IsZero() {
			t.Errorf("%s: needs a memory limit", cid)
		} else if lim.Memory().Cmp(*req.Memory()) < 0 {
			t.Errorf("%s: memory limit below its request", cid)
		}
	}
}

var digestRE = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// checkImagePinned accepts name:tag (not "latest") or name@sha256:digest.
func checkImagePinned(image string) error {
	if digestRE.MatchString(image) {
		return nil
	}
	last := image[strings.LastIndexByte(image, '/')+1:]
	_, tag, ok := strings.Cut(last, ":")
	if !ok || tag == "" {
		return fmt.Errorf("image %q has no tag", image)
	}
	if tag == "latest" {
		return fmt.Errorf("image %q uses the floating tag latest", image)
	}
	return nil
}

// TestOverlayProbes: every long-running container has startup, liveness and readiness probes; the Case-keeper
// services are probed over HTTP on /healthz (startup, liveness) and /readyz (readiness) on their ops ports, and NATS
// as the official chart does.
func TestOverlayProbes(t *testing.T) {
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			for _, w := range workloads(objs) {
				if w.Kind != "Deployment" && w.Kind != "StatefulSet" {
					continue
				}
				for _, c := range w.Spec.Containers {
					if c.StartupProbe == nil || c.LivenessProbe == nil || c.ReadinessProbe == nil {
						t.Errorf("%s/%s container %s: needs startup, liveness and readiness probes", w.Kind, w.Name, c.Name)
					}
				}
			}
			for name, svc := range appServices {
				d, ok := find[*appsv1.Deployment](objs, name)
				if !ok {
					t.Errorf("no Deployment %s", name)
					continue
				}
				c := d.Spec.Template.Spec.Containers[0]
				checkHTTPProbe(t, name+" startup", c, c.StartupProbe, "/healthz", svc.opsPort)
				checkHTTPProbe(t, name+" liveness", c, c.LivenessProbe, "/healthz", svc.opsPort)
				checkHTTPProbe(t, name+" readiness", c, c.ReadinessProbe, "/readyz", svc.opsPort)
			}
			nats, ok := find[*appsv1.StatefulSet](objs, "nats")
			if !ok {
				t.Fatal("no StatefulSet nats")
			}
			c := nats.Spec.Template.Spec.Containers[0]
			checkHTTPProbe(t, "nats startup", c, c.StartupProbe, "/healthz", 8222)
			checkHTTPProbe(t, "nats readiness", c, c.ReadinessProbe, "/healthz?js-server-only=true", 8222)
			checkHTTPProbe(t, "nats liveness", c, c.LivenessProbe, "/healthz?js-enabled-only=true", 8222)
		})
	}
}

func checkHTTPProbe(t *testing.T, what string, c corev1.Container, p *corev1.Probe, path string, port int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: want an HTTP GET probe", what)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: path %q, want %q", what, p.HTTPGet.Path, path)
	}
	if got, err := containerPort(c, p.HTTPGet.Port); err != nil || got != port {
		t.Errorf("%s: port %v resolves to %d (%v), want %d", what, p.HTTPGet.Port.String(), got, err, port)
	}
}

func containerPort(c corev1.Container, port intstr.IntOrString) (int32, error) {
	if port.Type == intstr.Int {
		return port.IntVal, nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, port.StrVal)
}

// TestOverlayAvailability: every Case-keeper service and both stateful sets have a PodDisruptionBudget; the gateway
// and the webhook service have an autoscaling/v2 HPA, and their Deployments leave `replicas` to it.
func TestOverlayAvailability(t *testing.T) {
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			pdbs := typed[*policyv1.PodDisruptionBudget](objs)
			for _, w := range workloads(objs) {
				if w.Kind != "Deployment" && w.Kind != "StatefulSet" || w.Name == "keycloak" {
					continue // a single Keycloak (Recreate) cannot keep a disruption budget
				}
				covered := false
				for _, pdb := range pdbs {
					sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
					if err != nil {
						t.Fatalf("PDB %s: %v", pdb.Name, err)
					}
					if sel.Matches(labels.Set(w.Labels)) {
						covered = true
						if pdb.Spec.MaxUnavailable == nil {
							t.Errorf("PDB %s: use maxUnavailable, so that one-replica setups can still be drained", pdb.Name)
						}
					}
				}
				if !covered {
					t.Errorf("%s/%s has no PodDisruptionBudget", w.Kind, w.Name)
				}
			}
			hpas := typed[*autoscalingv2.HorizontalPodAutoscaler](objs)
			for _, name := range []string{"gateway", "webhook"} {
				var hpa *autoscalingv2.HorizontalPodAutoscaler
				for _, h := range hpas {
					if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == name {
						hpa = h
					}
				}
				if hpa == nil {
					t.Errorf("no HorizontalPodAutoscaler for Deployment %s", name)
					continue
				}
				if minR, _ := ptrValue(hpa.Spec.MinReplicas); minR < 1 || hpa.Spec.MaxReplicas < minR {
					t.Errorf("HPA %s: replicas %d..%d", hpa.Name, minR, hpa.Spec.MaxReplicas)
				}
				if d, ok := find[*appsv1.Deployment](objs, name); ok && d.Spec.Replicas != nil {
					t.Errorf("Deployment %s sets replicas although an HPA scales it (every apply would reset it)", name)
				}
			}
		})
	}
}

// TestOverlayReferencesResolve: every ConfigMap, Secret and Service that a workload, Service or Ingress names
// exists (Secrets of the prod overlay in its template, since they are created outside the repository), with the
// keys it reads; Services select pods and name ports that exist.
func TestOverlayReferencesResolve(t *testing.T) {
	root := repoRoot(t)
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			configMaps := map[string]map[string]bool{}
			for _, cm := range typed[*corev1.ConfigMap](objs) {
				configMaps[cm.Name] = keysOf(cm.Data)
			}
			secrets := map[string]map[string]bool{}
			secretObjs := typed[*corev1.Secret](objs)
			if strings.HasSuffix(dir, "prod") {
				if len(secretObjs) > 0 {
					t.Errorf("the prod overlay generates %d Secret(s): real secrets are never committed", len(secretObjs))
				}
				tmpl, err := decodeStream(readFile(t, filepath.Join(root, dir, "secrets.template.yaml")), "secrets.template.yaml")
				if err != nil {
					t.Fatal(err)
				}
				secretObjs = typed[*corev1.Secret](tmpl)
			}
			for _, s := range secretObjs {
				keys := keysOf(s.StringData)
				for k := range s.Data {
					keys[k] = true
				}
				secrets[s.Name] = keys
			}
			check := func(owner, kind string, store map[string]map[string]bool, name, key string, optional bool) {
				keys, ok := store[name]
				switch {
				case !ok && !optional:
					t.Errorf("%s: %s %q does not exist", owner, kind, name)
				case ok && key != "" && !keys[key]:
					t.Errorf("%s: %s %q has no key %q", owner, kind, name, key)
				}
			}
			for _, w := range workloads(objs) {
				owner := w.Kind + "/" + w.Name
				for _, c := range slices.Concat(w.Spec.InitContainers, w.Spec.Containers) {
					for _, ef := range c.EnvFrom {
						if r := ef.ConfigMapRef; r != nil {
							check(owner, "ConfigMap", configMaps, r.Name, "", isTrue(r.Optional))
						}
						if r := ef.SecretRef; r != nil {
							check(owner, "Secret", secrets, r.Name, "", isTrue(r.Optional))
						}
					}
					for _, e := range c.Env {
						if e.ValueFrom == nil {
							continue
						}
						if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
							check(owner, "ConfigMap", configMaps, r.Name, r.Key, isTrue(r.Optional))
						}
						if r := e.ValueFrom.SecretKeyRef; r != nil {
							check(owner, "Secret", secrets, r.Name, r.Key, isTrue(r.Optional))
						}
					}
				}
				for _, v := range w.Spec.Volumes {
					if v.ConfigMap != nil {
						check(owner, "ConfigMap", configMaps, v.ConfigMap.Name, "", isTrue(v.ConfigMap.Optional))
						for _, it := range v.ConfigMap.Items {
							check(owner, "ConfigMap", configMaps, v.ConfigMap.Name, it.Key, false)
						}
					}
					if v.Secret != nil {
						check(owner, "Secret", secrets, v.Secret.SecretName, "", isTrue(v.Secret.Optional))
						for _, it := range v.Secret.Items {
							check(owner, "Secret", secrets, v.Secret.SecretName, it.Key, false)
						}
					}
				}
			}

			ws := workloads(objs)
			services := map[string]*corev1.Service{}
			for _, svc := range typed[*corev1.Service](objs) {
				services[svc.Name] = svc
				var pods []workload
				for _, w := range ws {
					if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.Labels)) {
						pods = append(pods, w)
					}
				}
				if len(pods) == 0 {
					t.Errorf("Service %s selects no pods", svc.Name)
					continue
				}
				for _, p := range svc.Spec.Ports {
					if p.TargetPort.Type != intstr.String {
						continue
					}
					found := false
					for _, c := range pods[0].Spec.Containers {
						if _, err := containerPort(c, p.TargetPort); err == nil {
							found = true
						}
					}
					if !found {
						t.Errorf("Service %s port %s: no container port named %q", svc.Name, p.Name, p.TargetPort.StrVal)
					}
				}
			}
			for _, ing := range typed[*networkingv1.Ingress](objs) {
				for _, rule := range ing.Spec.Rules {
					for _, path := range rule.HTTP.Paths {
						b := path.Backend.Service
						svc, ok := services[b.Name]
						if !ok {
							t.Errorf("Ingress %s: no Service %s", ing.Name, b.Name)
							continue
						}
						if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
							return p.Name == b.Port.Name && b.Port.Name != "" || p.Port == b.Port.Number && b.Port.Number != 0
						}) {
							t.Errorf("Ingress %s: Service %s has no port %v", ing.Name, b.Name, b.Port)
						}
					}
				}
			}
		})
	}
}

func keysOf[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func isTrue(b *bool) bool { return b != nil && *b }

// TestOverlayReplicasAgree: prod runs 3 NATS servers, 3 MongoDB members and 3 copies of every stream
// (EVENTS_STREAM_REPLICAS=3); dev one of each. Everywhere the stream replicas fit the NATS servers, the replica-set
// init Job expects as many members as the StatefulSet runs, and nats.conf routes to exactly the servers that exist.
func TestOverlayReplicasAgree(t *testing.T) {
	want := map[string]int32{"dev": 1, "prod": 3}
	for _, dir := range overlays {
		env := filepath.Base(dir)
		t.Run(env, func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			n := want[env]
			nats, ok := find[*appsv1.StatefulSet](objs, "nats")
			if !ok {
				t.Fatal("no StatefulSet nats")
			}
			mongo, ok := find[*appsv1.StatefulSet](objs, "mongodb")
			if !ok {
				t.Fatal("no StatefulSet mongodb")
			}
			natsReplicas, _ := ptrValue(nats.Spec.Replicas)
			mongoReplicas, _ := ptrValue(mongo.Spec.Replicas)
			if natsReplicas != n {
				t.Errorf("NATS replicas = %d, want %d", natsReplicas, n)
			}
			if mongoReplicas != n {
				t.Errorf("MongoDB replicas = %d, want %d", mongoReplicas, n)
			}

			common := configMap(t, objs, "casekeeper-config")
			streams, err := strconv.Atoi(common["EVENTS_STREAM_REPLICAS"])
			if err != nil || int32(streams) != n {
				t.Errorf("EVENTS_STREAM_REPLICAS = %q, want %d", common["EVENTS_STREAM_REPLICAS"], n)
			}
			if int32(streams) > natsReplicas {
				t.Errorf("EVENTS_STREAM_REPLICAS %d exceeds the %d NATS servers", streams, natsReplicas)
			}
			// Both stream-creating services read it.
			for _, name := range []string{"case", "webhook"} {
				if d, ok := find[*appsv1.Deployment](objs, name); !ok || !readsConfigMap(d, "casekeeper-config") {
					t.Errorf("Deployment %s does not read casekeeper-config (EVENTS_STREAM_REPLICAS)", name)
				}
			}

			members := configMap(t, objs, "mongodb-config")["MONGODB_REPLICAS"]
			if members != strconv.Itoa(int(mongoReplicas)) {
				t.Errorf("MONGODB_REPLICAS = %q, but the StatefulSet runs %d members", members, mongoReplicas)
			}

			conf := configMap(t, objs, "nats-config")["nats.conf"]
			routes := regexp.MustCompile(`nats://nats-(\d+)\.nats-headless:6222`).FindAllStringSubmatch(conf, -1)
			if natsReplicas > 1 {
				if len(routes) != int(natsReplicas) {
					t.Errorf("nats.conf has %d routes for %d servers", len(routes), natsReplicas)
				}
				for i, r := range routes {
					if r[1] != strconv.Itoa(i) {
						t.Errorf("nats.conf route %d names nats-%s", i, r[1])
					}
				}
			} else if regexp.MustCompile(`(?m)^\s*cluster\s*\{`).MatchString(conf) {
				t.Error("a single NATS server must not have a cluster block (it would wait for absent peers)")
			}
			if !strings.Contains(conf, "jetstream") {
				t.Error("nats.conf does not enable JetStream")
			}
		})
	}
}

func readsConfigMap(d *appsv1.Deployment, name string) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil && unhashed(ef.ConfigMapRef.Name) == name {
				return true
			}
		}
	}
	return false
}

// TestOverlayServiceConfig: the services are configured as the contract says, with in-cluster addresses, listening
// on all interfaces, and with the issuer that Keycloak's fixed hostname gives the tokens.
func TestOverlayServiceConfig(t *testing.T) {
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			common := configMap(t, objs, "casekeeper-config")
			wantCommon := map[string]string{
				"NATS_URL":         "nats://nats:4222",
				"KEYCLOAK_REALM":   "casekeeper",
				"AUTH_AUDIENCE":    "casekeeper-api",
				"MONGODB_DATABASE": "casekeeper",
			}
			// Dev talks to Keycloak over plain HTTP inside the cluster; prod over HTTPS only (TestProdKeycloakTLS).
			if strings.HasSuffix(dir, "prod") {
				wantCommon["KEYCLOAK_URL"] = "https://keycloak:8443"
			} else {
				wantCommon["KEYCLOAK_URL"] = "http://keycloak:8080"
			}
			for k, v := range wantCommon {
				if common[k] != v {
					t.Errorf("casekeeper-config %s = %q, want %q", k, common[k], v)
				}
			}
			kc := configMap(t, objs, "keycloak-config")
			if want := kc["KC_HOSTNAME"] + "/realms/" + common["KEYCLOAK_REALM"]; common["AUTH_ISSUER"] != want {
				t.Errorf("AUTH_ISSUER = %q, but Keycloak's hostname makes the issuer %q", common["AUTH_ISSUER"], want)
			}
			if kc["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] != "true" || kc["KC_HEALTH_ENABLED"] != "true" {
				t.Error("keycloak-config needs KC_HOSTNAME_BACKCHANNEL_DYNAMIC=true and KC_HEALTH_ENABLED=true")
			}
			for name, svc := range appServices {
				cfg := configMap(t, objs, svc.clientIDConfig)
				if cfg["KEYCLOAK_CLIENT_ID"] == "" {
					t.Errorf("%s: no KEYCLOAK_CLIENT_ID", svc.clientIDConfig)
				}
				for k, v := range cfg {
					if strings.HasSuffix(k, "_ADDR") && !strings.HasSuffix(k, "_SERVICE_ADDR") && !strings.HasPrefix(v, "0.0.0.0:") {
						t.Errorf("%s %s = %q: must listen on 0.0.0.0 in a pod", svc.clientIDConfig, k, v)
					}
				}
				d, _ := find[*appsv1.Deployment](objs, name)
				if d == nil || !readsConfigMap(d, svc.clientIDConfig) {
					t.Errorf("Deployment %s does not read %s", name, svc.clientIDConfig)
				}
			}
			// The gateway and the webhook service (links in thin payloads) both need the public URL.
			if common["GATEWAY_PUBLIC_URL"] == "" {
				t.Error("casekeeper-config has no GATEWAY_PUBLIC_URL")
			}
			gw := configMap(t, objs, "gateway-config")
			if gw["CASE_SERVICE_ADDR"] != "case:9091" || gw["WEBHOOK_SERVICE_ADDR"] != "webhook:9092" {
				t.Errorf("gateway backends = %q, %q", gw["CASE_SERVICE_ADDR"], gw["WEBHOOK_SERVICE_ADDR"])
			}
			if strings.HasSuffix(dir, "prod") {
				if gw["DASHBOARD_COOKIE_SECURE"] != "true" || !strings.HasPrefix(common["GATEWAY_PUBLIC_URL"], "https://") {
					t.Error("prod: the dashboard must be served over HTTPS with Secure cookies")
				}
				if !strings.HasPrefix(kc["KC_HOSTNAME"], "https://") || kc["KC_DB"] == "" {
					t.Error("prod: Keycloak needs an https hostname and a real database (KC_DB)")
				}
				for _, ing := range typed[*networkingv1.Ingress](objs) {
					if len(ing.Spec.TLS) == 0 {
						t.Errorf("prod: Ingress %s has no TLS", ing.Name)
					}
				}
			}
			wh := configMap(t, objs, "webhook-config")
			if wh["WEBHOOK_ALLOW_LOOPBACK_HTTP"] != "false" {
				t.Error("in Kubernetes, webhooks never go to loopback over plain HTTP")
			}
			// Every retention is set explicitly, as a Go duration, and the feed keeps no more and no less than the
			// stream it copies (docs/operations.md, "Retention").
			retention := map[string]time.Duration{}
			for k, v := range map[string]string{
				"EVENTS_STREAM_MAX_AGE":      configMap(t, objs, "case-config")["EVENTS_STREAM_MAX_AGE"],
				"GATEWAY_FEED_RETENTION":     gw["GATEWAY_FEED_RETENTION"],
				"GATEWAY_AUDIT_RETENTION":    gw["GATEWAY_AUDIT_RETENTION"],
				"WEBHOOK_DELIVERY_RETENTION": wh["WEBHOOK_DELIVERY_RETENTION"],
			} {
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					t.Errorf("%s = %q: want a positive Go duration (%v)", k, v, err)
				}
				retention[k] = d
			}
			if retention["GATEWAY_FEED_RETENTION"] != retention["EVENTS_STREAM_MAX_AGE"] {
				t.Errorf("GATEWAY_FEED_RETENTION %s differs from EVENTS_STREAM_MAX_AGE %s",
					retention["GATEWAY_FEED_RETENTION"], retention["EVENTS_STREAM_MAX_AGE"])
			}
		})
	}
}

// TestOverlayNetworkPolicies: deny by default; DNS for all; only the gateway and Keycloak admit traffic from outside
// the namespace (the ingress controller; monitoring may scrape metrics ports); the services' egress stays inside the
// namespace except the webhook service's, which reaches the internet on 443 only, never private ranges.
func TestOverlayNetworkPolicies(t *testing.T) {
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			nps := typed[*networkingv1.NetworkPolicy](objs)
			var denyAll, dns bool
			for _, np := range nps {
				all := len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0
				types := np.Spec.PolicyTypes
				if all && len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 &&
					slices.Contains(types, networkingv1.PolicyTypeIngress) && slices.Contains(types, networkingv1.PolicyTypeEgress) {
					denyAll = true
				}
				for _, e := range np.Spec.Egress {
					if all && slices.ContainsFunc(e.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.IntVal == 53 }) {
						dns = true
					}
				}
				for _, in := range np.Spec.Ingress {
					for _, peer := range in.From {
						if peer.NamespaceSelector == nil && peer.IPBlock == nil {
							continue
						}
						from := peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
						target := np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"]
						switch {
						case from == "monitoring":
						case from == "ingress-nginx" && (target == "gateway" || target == "keycloak"):
						default:
							t.Errorf("NetworkPolicy %s admits traffic from outside the namespace (%v) to %q", np.Name, peer, target)
						}
					}
				}
				for _, e := range np.Spec.Egress {
					for _, peer := range e.To {
						if peer.IPBlock == nil {
							continue
						}
						checkIPBlock(t, np, e, *peer.IPBlock)
					}
				}
			}
			if !denyAll {
				t.Error("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
			}
			if !dns {
				t.Error("no NetworkPolicy lets every pod reach DNS")
			}
			var internet bool
			for _, np := range nps {
				if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "webhook" {
					continue
				}
				for _, e := range np.Spec.Egress {
					for _, peer := range e.To {
						if peer.IPBlock != nil && peer.IPBlock.CIDR == "0.0.0.0/0" {
							internet = true
						}
					}
				}
			}
			if !internet {
				t.Error("the webhook service has no egress to the internet")
			}
		})
	}
}

// checkIPBlock: CIDRs are canonical; an egress to the whole internet is HTTPS only for the webhook service and
// excludes the private, link-local and loopback ranges; other ipBlocks are private ranges (a managed database).
func checkIPBlock(t *testing.T, np *networkingv1.NetworkPolicy, rule networkingv1.NetworkPolicyEgressRule, b networkingv1.IPBlock) {
	t.Helper()
	prefix, err := netip.ParsePrefix(b.CIDR)
	if err != nil || prefix.Masked() != prefix {
		t.Errorf("NetworkPolicy %s: CIDR %q is not canonical (%v)", np.Name, b.CIDR, err)
		return
	}
	var except []netip.Prefix
	for _, e := range b.Except {
		p, err := netip.ParsePrefix(e)
		if err != nil || p.Masked() != p || !prefix.Overlaps(p) || p.Bits() < prefix.Bits() {
			t.Errorf("NetworkPolicy %s: except %q is not a canonical sub-range of %s", np.Name, e, b.CIDR)
		}
		except = append(except, p)
	}
	if prefix.Bits() != 0 {
		if !prefix.Addr().IsPrivate() {
			t.Errorf("NetworkPolicy %s: egress to a public range %s", np.Name, b.CIDR)
		}
		return
	}
	if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "webhook" {
		t.Errorf("NetworkPolicy %s: only the webhook service may reach the internet", np.Name)
	}
	if len(rule.Ports) != 1 || rule.Ports[0].Port == nil || rule.Ports[0].Port.IntVal != 443 {
		t.Errorf("NetworkPolicy %s: internet egress must be port 443 only", np.Name)
	}
	mustExclude := []string{"10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "127.0.0.1", "100.64.0.1",
		"fd00::1", "fe80::1", "::1"}
	for _, a := range mustExclude {
		addr := netip.MustParseAddr(a)
		if !prefix.Contains(addr) {
			continue
		}
		if !slices.ContainsFunc(except, func(p netip.Prefix) bool { return p.Contains(addr) }) {
			t.Errorf("NetworkPolicy %s: internet egress %s does not exclude %s", np.Name, b.CIDR, a)
		}
	}
}

// TestBaseRealmCopyIsCurrent: kustomize only reads files under a kustomization's root, so the Keycloak realm is
// copied into deploy/k8s/base/keycloak. The copy must be byte-for-byte the file the realm owner maintains.
func TestBaseRealmCopyIsCurrent(t *testing.T) {
	root := repoRoot(t)
	orig := readFile(t, filepath.Join(root, "deploy", "keycloak", "casekeeper-realm.json"))
	cp := readFile(t, filepath.Join(root, "deploy", "k8s", "base", "keycloak", "casekeeper-realm.json"))
	if string(orig) != string(cp) {
		t.Fatal("deploy/k8s/base/keycloak/casekeeper-realm.json differs from deploy/keycloak/casekeeper-realm.json: " +
			"cp deploy/keycloak/casekeeper-realm.json deploy/k8s/base/keycloak/")
	}
	for _, dir := range overlays {
		objs := kustomizeBuild(t, dir)
		if got := configMap(t, objs, "keycloak-realm")["casekeeper-realm.json"]; got != string(orig) {
			t.Errorf("%s: the keycloak-realm ConfigMap does not hold the realm file", dir)
		}
	}
}

// TestNATSStoreEncryptedAtRest: in every overlay, nats.conf — read by nats-server's own parser — encrypts the
// JetStream store with the key the StatefulSet takes from the Secret nats-secrets.
func TestNATSStoreEncryptedAtRest(t *testing.T) {
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			conf := filepath.Join(t.TempDir(), "nats.conf")
			if err := os.WriteFile(conf, []byte(configMap(t, objs, "nats-config")["nats.conf"]), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("POD_NAME", "nats-0")
			t.Setenv("NATS_STORE_KEY", "the-key-from-the-secret")
			opts, err := server.ProcessConfigFile(conf)
			if err != nil {
				t.Fatalf("nats.conf: %v", err)
			}
			if opts.JetStreamKey != "the-key-from-the-secret" || opts.JetStreamCipher != server.AES {
				t.Fatalf("nats.conf: store key %q, cipher %v; want the key from NATS_STORE_KEY and AES", opts.JetStreamKey, opts.JetStreamCipher)
			}
			nats, _ := find[*appsv1.StatefulSet](objs, "nats")
			supplied := false
			for _, c := range nats.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					if ref := e.ValueFrom; e.Name == "NATS_STORE_KEY" && ref != nil && ref.SecretKeyRef != nil &&
						ref.SecretKeyRef.Name == "nats-secrets" && ref.SecretKeyRef.Key == "NATS_STORE_KEY" {
						supplied = true
					}
				}
			}
			if !supplied {
				t.Fatal("the nats StatefulSet does not take NATS_STORE_KEY from the Secret nats-secrets")
			}
		})
	}
}
