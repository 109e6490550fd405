package deploy_test

import (
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	kusttypes "sigs.k8s.io/kustomize/api/types"
	sigsyaml "sigs.k8s.io/yaml"
)

// k8sFiles lists the YAML files under deploy/k8s, relative to the repository root.
func k8sFiles(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	var files []string
	err := filepath.WalkDir(filepath.Join(root, "deploy", "k8s"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			rel, _ := filepath.Rel(root, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no YAML files under deploy/k8s")
	}
	return files
}

func isKustomization(path string) bool {
	base := filepath.Base(path)
	return base == "kustomization.yaml" || base == "kustomization.yml"
}

// TestManifestsDecodeStrictly decodes every manifest under deploy/k8s (resources, patches, the ops pods and the
// prod secrets template) into its k8s.io/api type, refusing unknown fields and duplicate keys.
func TestManifestsDecodeStrictly(t *testing.T) {
	root := repoRoot(t)
	for _, file := range k8sFiles(t) {
		if isKustomization(file) {
			continue
		}
		t.Run(file, func(t *testing.T) {
			objs, err := decodeStream(readFile(t, filepath.Join(root, file)), file)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				t.Fatal("no manifest in the file")
			}
		})
	}
}

// TestKustomizationsDecodeStrictly decodes every kustomization.yaml into kustomize's own type, refusing unknown
// fields (a misspelt key would otherwise be ignored by kustomize without a word).
func TestKustomizationsDecodeStrictly(t *testing.T) {
	root := repoRoot(t)
	for _, file := range k8sFiles(t) {
		if !isKustomization(file) {
			continue
		}
		t.Run(file, func(t *testing.T) {
			k := decodeKustomization(t, filepath.Join(root, file))
			if k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" {
				t.Errorf("apiVersion/kind = %s/%s", k.APIVersion, k.Kind)
			}
			// Deprecated fields that kustomize still accepts but rewrites with warnings.
			if len(k.CommonLabels) > 0 || len(k.PatchesStrategicMerge) > 0 || len(k.PatchesJson6902) > 0 || len(k.Bases) > 0 {
				t.Error("uses deprecated fields (commonLabels, patchesStrategicMerge, patchesJson6902, bases)")
			}
		})
	}
}

func decodeKustomization(t *testing.T, path string) kusttypes.Kustomization {
	t.Helper()
	js, err := sigsyaml.YAMLToJSONStrict(readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	var k kusttypes.Kustomization
	if err := strictJSON(js, &k); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k
}

// TestNoOrphanManifests: every manifest under deploy/k8s is used by a kustomization (as a resource or a patch),
// except the documented stand-alone ones, so nothing is silently left out of a deployment.
func TestNoOrphanManifests(t *testing.T) {
	root := repoRoot(t)
	standalone := []string{
		"deploy/k8s/ops/nats-box.yaml",
		"deploy/k8s/ops/mongo-tools.yaml",
		"deploy/k8s/overlays/prod/secrets.template.yaml", // filled outside the repository, never applied from it
	}
	used := map[string]bool{}
	for _, file := range k8sFiles(t) {
		if !isKustomization(file) {
			continue
		}
		dir := filepath.Dir(file)
		k := decodeKustomization(t, filepath.Join(root, file))
		for _, r := range k.Resources {
			used[filepath.ToSlash(filepath.Join(dir, r))] = true
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				used[filepath.ToSlash(filepath.Join(dir, p.Path))] = true
			}
		}
	}
	for _, file := range k8sFiles(t) {
		if isKustomization(file) || used[file] || slices.Contains(standalone, file) {
			continue
		}
		t.Errorf("%s is used by no kustomization", file)
	}
	for _, file := range standalone {
		if !slices.Contains(k8sFiles(t), file) {
			t.Errorf("stand-alone manifest %s is missing", file)
		}
	}
}
