package deploy_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	prodOverlay   = "deploy/k8s/overlays/prod"
	keycloakTLS   = "keycloak-tls"
	keycloakHTTPS = 8443
)

// TestProdKeycloakTLS: in the prod overlay Keycloak serves HTTPS only, with the certificate of Secret keycloak-tls
// (named by the secrets template) mounted where its KC_HTTPS_* settings point; every Keycloak URL the services use is
// https; the services mount only ca.crt of that Secret, in the directory SSL_CERT_DIR names; the Service, the
// Ingress backend and the NetworkPolicies use the HTTPS port and nothing opens Keycloak's plain HTTP port.
func TestProdKeycloakTLS(t *testing.T) {
	objs := kustomizeBuild(t, prodOverlay)
	common := configMap(t, objs, "casekeeper-config")
	kc := configMap(t, objs, "keycloak-config")

	// Every Keycloak URL the services are given.
	for _, cm := range typed[*corev1.ConfigMap](objs) {
		for k, v := range cm.Data {
			if (strings.HasPrefix(k, "KEYCLOAK_") || strings.HasPrefix(k, "AUTH_") || strings.HasPrefix(k, "DASHBOARD_")) &&
				strings.Contains(v, "://") && !strings.HasPrefix(v, "https://") {
				t.Errorf("ConfigMap %s: %s = %q, want https", cm.Name, k, v)
			}
		}
	}
	if common["KEYCLOAK_URL"] != "https://keycloak:8443" {
		t.Errorf("KEYCLOAK_URL = %q, want https://keycloak:8443", common["KEYCLOAK_URL"])
	}
	if !strings.HasPrefix(common["AUTH_ISSUER"], "https://") {
		t.Errorf("AUTH_ISSUER = %q, want https", common["AUTH_ISSUER"])
	}

	// Keycloak: HTTPS only, certificate files from the mounted Secret.
	if kc["KC_HTTP_ENABLED"] != "false" || kc["KC_HTTPS_PORT"] != "8443" {
		t.Errorf("keycloak-config: KC_HTTP_ENABLED=%q KC_HTTPS_PORT=%q, want false and 8443", kc["KC_HTTP_ENABLED"], kc["KC_HTTPS_PORT"])
	}
	d, ok := find[*appsv1.Deployment](objs, "keycloak")
	if !ok {
		t.Fatal("no Deployment keycloak")
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	tlsDir := mountOf(t, pod, c, keycloakTLS)
	for _, k := range []string{"KC_HTTPS_CERTIFICATE_FILE", "KC_HTTPS_CERTIFICATE_KEY_FILE"} {
		if tlsDir == "" || filepath.Dir(kc[k]) != tlsDir {
			t.Errorf("keycloak-config %s = %q is not in the mount of Secret %s (%q)", k, kc[k], keycloakTLS, tlsDir)
		}
	}
	if got := secretItems(pod, keycloakTLS); !slices.Equal(got, []string{"tls.crt", "tls.key"}) {
		t.Errorf("Keycloak mounts keys %v of %s, want tls.crt and tls.key", got, keycloakTLS)
	}
	for _, p := range c.Ports {
		if p.ContainerPort == 8080 {
			t.Errorf("Keycloak still declares the plain HTTP port %s/8080", p.Name)
		}
	}
	if port, err := containerPort(c, intstr.FromString("https")); err != nil || port != keycloakHTTPS {
		t.Errorf("Keycloak port https = %d (%v), want %d", port, err, keycloakHTTPS)
	}
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("Keycloak %s probe: want scheme HTTPS (the management interface inherits the certificate)", name)
		}
	}

	// The Secret is one the operator must create: the template names it with the three keys.
	tmpl, err := decodeStream(readFile(t, filepath.Join(repoRoot(t), prodOverlay, "secrets.template.yaml")), "secrets.template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, ok := find[*corev1.Secret](tmpl, keycloakTLS)
	if !ok {
		t.Fatalf("secrets.template.yaml has no Secret %s", keycloakTLS)
	}
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret %s type %q, want %q", keycloakTLS, s.Type, corev1.SecretTypeTLS)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if _, ok := s.StringData[k]; !ok {
			t.Errorf("Secret %s in the template has no key %s", keycloakTLS, k)
		}
	}

	// The services trust the CA: ca.crt only (never the key), in the directory SSL_CERT_DIR names. SSL_CERT_DIR adds
	// to the system roots; SSL_CERT_FILE would replace them and break webhook deliveries.
	if _, set := common["SSL_CERT_FILE"]; set {
		t.Error("casekeeper-config sets SSL_CERT_FILE: it replaces the system roots; use SSL_CERT_DIR")
	}
	for name := range appServices {
		d, ok := find[*appsv1.Deployment](objs, name)
		if !ok {
			t.Errorf("no Deployment %s", name)
			continue
		}
		pod := d.Spec.Template.Spec
		dir := mountOf(t, pod, pod.Containers[0], keycloakTLS)
		if dir == "" || !slices.Contains(strings.Split(common["SSL_CERT_DIR"], ":"), dir) {
			t.Errorf("Deployment %s: Secret %s mounted at %q, SSL_CERT_DIR = %q", name, keycloakTLS, dir, common["SSL_CERT_DIR"])
		}
		if got := secretItems(pod, keycloakTLS); !slices.Equal(got, []string{"ca.crt"}) {
			t.Errorf("Deployment %s mounts keys %v of %s, want only ca.crt", name, got, keycloakTLS)
		}
		if !readsConfigMap(d, "casekeeper-config") {
			t.Errorf("Deployment %s does not read casekeeper-config (KEYCLOAK_URL, SSL_CERT_DIR)", name)
		}
	}

	// The Service and the Ingress reach Keycloak on HTTPS.
	svc, ok := find[*corev1.Service](objs, "keycloak")
	if !ok {
		t.Fatal("no Service keycloak")
	}
	var https bool
	for _, p := range svc.Spec.Ports {
		if p.Port == 8080 {
			t.Errorf("Service keycloak still exposes 8080 (%s)", p.Name)
		}
		if p.Name == "https" && p.Port == keycloakHTTPS && p.TargetPort.StrVal == "https" {
			https = true
		}
	}
	if !https {
		t.Error("Service keycloak has no port https 8443 -> https")
	}
	ing, ok := find[*networkingv1.Ingress](objs, "keycloak")
	if !ok {
		t.Fatal("no Ingress keycloak")
	}
	if ing.Annotations["nginx.ingress.kubernetes.io/backend-protocol"] != "HTTPS" {
		t.Error("Ingress keycloak: the controller must speak HTTPS to Keycloak (backend-protocol annotation)")
	}
	for _, r := range ing.Spec.Rules {
		for _, p := range r.HTTP.Paths {
			if p.Backend.Service.Port.Name != "https" {
				t.Errorf("Ingress keycloak path %s: backend port %v, want https", p.Path, p.Backend.Service.Port)
			}
		}
	}

	// NetworkPolicies: Keycloak admits 8443 only, and whoever may reach it does so on 8443.
	for _, np := range typed[*networkingv1.NetworkPolicy](objs) {
		if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] == "keycloak" {
			for _, in := range np.Spec.Ingress {
				for _, p := range in.Ports {
					if p.Port != nil && p.Port.IntVal != keycloakHTTPS {
						t.Errorf("NetworkPolicy %s admits port %d to Keycloak, want %d only", np.Name, p.Port.IntVal, keycloakHTTPS)
					}
				}
			}
		}
		for _, e := range np.Spec.Egress {
			toKeycloak := slices.ContainsFunc(e.To, func(p networkingv1.NetworkPolicyPeer) bool {
				return p.PodSelector != nil && p.PodSelector.MatchLabels["app.kubernetes.io/name"] == "keycloak"
			})
			if !toKeycloak {
				continue
			}
			for _, p := range e.Ports {
				if p.Port == nil || p.Port.IntVal != keycloakHTTPS {
					t.Errorf("NetworkPolicy %s: egress to Keycloak on %v, want %d", np.Name, p.Port, keycloakHTTPS)
				}
			}
		}
	}
}

// mountOf is where container c mounts a volume of Secret secret ("" if it does not).
func mountOf(t *testing.T, pod corev1.PodSpec, c corev1.Container, secret string) string {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Secret == nil || v.Secret.SecretName != secret {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				if !m.ReadOnly {
					t.Errorf("container %s mounts %s writable", c.Name, secret)
				}
				return m.MountPath
			}
		}
	}
	return ""
}

// secretItems are the keys of Secret secret that the pod projects (nil: all of them).
func secretItems(pod corev1.PodSpec, secret string) []string {
	for _, v := range pod.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secret {
			var keys []string
			for _, it := range v.Secret.Items {
				keys = append(keys, it.Key)
			}
			slices.Sort(keys)
			return keys
		}
	}
	return nil
}
