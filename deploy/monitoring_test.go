package deploy_test

import (
	"encoding/json"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// podMonitor and prometheusRule are the Prometheus Operator's kinds, as far as deploy/k8s/monitoring uses them;
// the manifests decode strictly into them, so a field written wrong fails.
type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// TestMonitoring checks deploy/k8s/monitoring: it builds; each PodMonitor selects a workload of the prod overlay
// and a port that workload has; every alert has a severity, a summary and an expression Prometheus parses; the
// Grafana dashboard is JSON whose every query parses; and every metric the rules and the dashboard name is one
// the services register (read from their Go source), so a renamed metric fails here instead of silencing an alert.
func TestMonitoring(t *testing.T) {
	objs := kustomizeBuild(t, "deploy/k8s/monitoring")
	prod := workloads(kustomizeBuild(t, "deploy/k8s/overlays/prod"))
	exported := registeredMetrics(t)

	var exprs []string
	monitors := typed[*podMonitor](objs)
	if len(monitors) != 3 {
		t.Fatalf("%d PodMonitors, want one per service (case, webhook, gateway)", len(monitors))
	}
	for _, m := range monitors {
		sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		if err != nil {
			t.Fatalf("PodMonitor %s: %v", m.Name, err)
		}
		var matched *workload
		for i, w := range prod {
			if sel.Matches(labels.Set(w.Labels)) {
				matched = &prod[i]
			}
		}
		if matched == nil {
			t.Errorf("PodMonitor %s selects no workload of the prod overlay", m.Name)
			continue
		}
		for _, ep := range m.Spec.PodMetricsEndpoints {
			if ep.Path != "/metrics" || !hasPort(matched.Spec.Containers, ep.Port) {
				t.Errorf("PodMonitor %s scrapes %s on port %q, which %s %s does not have", m.Name, ep.Path, ep.Port, matched.Kind, matched.Name)
			}
		}
	}

	rules := typed[*prometheusRule](objs)
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(rules))
	}
	alerts := 0
	for _, g := range rules[0].Spec.Groups {
		for _, r := range g.Rules {
			alerts++
			if r.Alert == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" ||
				!slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("rule %q in %s: want an alert name, a summary, a description and a severity of critical, warning or info", r.Alert, g.Name)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			exprs = append(exprs, r.Expr)
		}
	}
	if alerts < 8 {
		t.Errorf("%d alerts; the rules lost some", alerts)
	}

	dashboard := configMap(t, objs, "casekeeper-grafana-dashboard")["casekeeper-dashboard.json"]
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(dashboard), &d); err != nil || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("the Grafana dashboard: %v (uid %q, %d panels)", err, d.UID, len(d.Panels))
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, cm := range typed[*corev1.ConfigMap](objs) {
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("ConfigMap %s lacks the label grafana_dashboard: \"1\" the Grafana sidecar looks for", cm.Name)
		}
	}

	promql := parser.NewParser(parser.Options{})
	for _, e := range exprs {
		expr, err := promql.ParseExpr(e)
		if err != nil {
			t.Errorf("%q does not parse: %v", e, err)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && !exported[vs.Name] {
				t.Errorf("%q names %s, which no service registers", e, vs.Name)
			}
			return nil
		})
	}
}

func hasPort(cs []corev1.Container, name string) bool {
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

// registeredMetrics reads the metric names the services and pkg register: the Name of every prometheus.*Opts
// literal in their Go source (a histogram also gives its _bucket, _sum and _count series). A literal whose name is
// not a constant string, or that sets Namespace or Subsystem, fails the test: extend this reader then.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	root := repoRoot(t)
	fset := token.NewFileSet()
	for _, dir := range []string{"services", "pkg"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := goparser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.CompositeLit)
				if !ok {
					return true
				}
				sel, ok := lit.Type.(*ast.SelectorExpr)
				if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
					return true
				}
				for _, el := range lit.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					key := kv.Key.(*ast.Ident).Name
					switch key {
					case "Namespace", "Subsystem":
						t.Errorf("%s: prometheus.%s sets %s, which registeredMetrics does not read", fset.Position(kv.Pos()), sel.Sel.Name, key)
					case "Name":
						b, ok := kv.Value.(*ast.BasicLit)
						if !ok || b.Kind != token.STRING {
							t.Errorf("%s: prometheus.%s with a Name that is not a string literal", fset.Position(kv.Pos()), sel.Sel.Name)
							continue
						}
						name, _ := strconv.Unquote(b.Value)
						names[name] = true
						if sel.Sel.Name == "HistogramOpts" {
							names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
						}
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(names) < 20 {
		t.Fatalf("found %d metric names in the source; the reader is broken", len(names))
	}
	return names
}
