package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// repoRoot is the repository root: tests run in deploy/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root %s has no go.work: %v", root, err)
	}
	return root
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// kinds maps apiVersion/kind to the Go type a manifest must decode into. A kind missing here fails the tests: add
// it deliberately.
var kinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Pod":                                 func() any { return &corev1.Pod{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/PersistentVolumeClaim":               func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
	"networking.k8s.io/v1/Ingress":           func() any { return &networkingv1.Ingress{} },
	// The Prometheus Operator's kinds, as far as deploy/k8s/monitoring uses them (monitoring_test.go).
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return &podMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &prometheusRule{} },
}

// object is one decoded manifest.
type object struct {
	APIVersion, Kind, Name, Namespace string
	Obj                               any // a pointer to the k8s.io/api type
	Source                            string
}

func (o object) String() string { return fmt.Sprintf("%s %s (%s)", o.Kind, o.Name, o.Source) }

// splitYAML returns the non-empty documents of a multi-document YAML stream.
func splitYAML(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for line := range strings.Lines(string(doc)) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		out.WriteString(line)
	}
	return out.Bytes()
}

// strictJSON decodes JSON into v, refusing unknown fields and trailing data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	return nil
}

// decodeManifest converts one YAML document to JSON (refusing duplicate keys) and decodes it strictly into the type
// of its kind.
func decodeManifest(doc []byte, source string) (object, error) {
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, fmt.Errorf("%s: YAML: %w", source, err)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return object{}, fmt.Errorf("%s: %w", source, err)
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return object{}, fmt.Errorf("%s: no Go type registered for %s %s", source, tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	if err := strictJSON(js, obj); err != nil {
		return object{}, fmt.Errorf("%s: %s %s: %w", source, tm.APIVersion, tm.Kind, err)
	}
	meta := obj.(metav1.Object)
	return object{
		APIVersion: tm.APIVersion, Kind: tm.Kind, Name: meta.GetName(), Namespace: meta.GetNamespace(),
		Obj: obj, Source: source,
	}, nil
}

func decodeStream(data []byte, source string) ([]object, error) {
	docs, err := splitYAML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var objs []object
	var errs []error
	for i, doc := range docs {
		o, err := decodeManifest(doc, fmt.Sprintf("%s#%d", source, i))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, o)
	}
	return objs, errors.Join(errs...)
}

// kustomizeBuild runs kustomize (as `kubectl apply -k` would: files only from under the kustomization's root) on a
// directory relative to the repository root, and decodes its output strictly. Built once per directory.
func kustomizeBuild(t testing.TB, dir string) []object {
	t.Helper()
	v, _ := builds.LoadOrStore(dir, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		path := filepath.Join(repoRoot(t), dir)
		k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
		resMap, err := k.Run(filesys.MakeFsOnDisk(), path)
		if err != nil {
			b.err = fmt.Errorf("kustomize build %s: %w", dir, err)
			return
		}
		out, err := resMap.AsYaml()
		if err != nil {
			b.err = fmt.Errorf("kustomize build %s: %w", dir, err)
			return
		}
		b.yaml = out
		b.objs, b.err = decodeStream(out, "kustomize build "+dir)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.objs
}

type buildResult struct {
	once sync.Once
	yaml []byte
	objs []object
	err  error
}

var builds sync.Map

// typed returns the objects of one Go type.
func typed[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func find[T interface{ GetName() string }](objs []object, name string) (T, bool) {
	for _, v := range typed[T](objs) {
		if v.GetName() == name {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// workload is a pod template with its owner, for checks that apply to every kind.
type workload struct {
	Kind, Name string
	Labels     map[string]string
	Spec       *corev1.PodSpec
	Replicas   *int32
}

func workloads(objs []object) []workload {
	var out []workload
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{"Deployment", v.Name, v.Spec.Template.Labels, &v.Spec.Template.Spec, v.Spec.Replicas})
		case *appsv1.StatefulSet:
			out = append(out, workload{"StatefulSet", v.Name, v.Spec.Template.Labels, &v.Spec.Template.Spec, v.Spec.Replicas})
		case *batchv1.Job:
			out = append(out, workload{"Job", v.Name, v.Spec.Template.Labels, &v.Spec.Template.Spec, nil})
		case *corev1.Pod:
			out = append(out, workload{"Pod", v.Name, v.Labels, &v.Spec, nil})
		}
	}
	return out
}

// configData merges the data of the ConfigMaps whose names (without kustomize's hash suffix) are given.
func configMap(t testing.TB, objs []object, name string) map[string]string {
	t.Helper()
	for _, cm := range typed[*corev1.ConfigMap](objs) {
		if unhashed(cm.Name) == name {
			return cm.Data
		}
	}
	t.Fatalf("no ConfigMap %s", name)
	return nil
}

// unhashed removes the "-<10 characters>" suffix that kustomize generators append.
func unhashed(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i > 0 && len(name)-i-1 == 10 {
		return name[:i]
	}
	return name
}

func ptrValue[T any](p *T) (T, bool) {
	if p == nil {
		var zero T
		return zero, false
	}
	return *p, true
}
