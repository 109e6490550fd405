package deploy_test

import (
	"encoding/base64"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
)

// TestGatewayReplicasConfig: what several gateway pods need to behave as one. Every pod has the dashboard's session
// key (from the Secret, the same for all of them); the proxies whose X-Forwarded-For is believed are valid prefixes;
// and the per-pod rate limits, times the HPA's minimum of pods, give a client what one gateway with the binary's
// defaults would (100 requests/s, 5 failed authentications/s per address).
func TestGatewayReplicasConfig(t *testing.T) {
	root := repoRoot(t)
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			secrets := typed[*corev1.Secret](objs)
			if strings.HasSuffix(dir, "prod") {
				tmpl, err := decodeStream(readFile(t, filepath.Join(root, dir, "secrets.template.yaml")), "secrets.template.yaml")
				if err != nil {
					t.Fatal(err)
				}
				secrets = typed[*corev1.Secret](tmpl)
			}
			var key string
			var found bool
			for _, s := range secrets {
				if s.Name == "gateway-secrets" {
					key, found = s.StringData["GATEWAY_SESSION_KEY"]
					if !found {
						var b []byte
						b, found = s.Data["GATEWAY_SESSION_KEY"]
						key = string(b)
					}
				}
			}
			if !found {
				t.Fatal("gateway-secrets has no GATEWAY_SESSION_KEY")
			}
			if strings.HasSuffix(dir, "dev") {
				if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 32 {
					t.Errorf("dev GATEWAY_SESSION_KEY is not the base64 of 32 bytes")
				}
			}

			gw := configMap(t, objs, "gateway-config")
			proxies := strings.Split(gw["GATEWAY_TRUSTED_PROXIES"], ",")
			for _, p := range proxies {
				if _, err := netip.ParsePrefix(p); err != nil {
					t.Errorf("GATEWAY_TRUSTED_PROXIES entry %q: %v", p, err)
				}
			}
			hpa, ok := find[*autoscalingv2.HorizontalPodAutoscaler](objs, "gateway")
			if !ok || hpa.Spec.MinReplicas == nil {
				t.Fatal("no gateway HPA with minReplicas")
			}
			if strings.HasSuffix(dir, "prod") {
				pods := float64(*hpa.Spec.MinReplicas)
				for variable, want := range map[string]float64{"GATEWAY_RATE_LIMIT": 100, "GATEWAY_RATE_BURST": 200, "GATEWAY_FAILED_AUTH_LIMIT": 5} {
					v, err := strconv.ParseFloat(gw[variable], 64)
					if err != nil || v*pods != want {
						t.Errorf("%s=%q × %v pods = %v, want %v per client", variable, gw[variable], pods, v*pods, want)
					}
				}
			}
		})
	}
}
