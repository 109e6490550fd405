package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd, Args string
	Line      int
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(readFile(t, path)), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start})
		cur.Reset()
	}
	return out
}

// makefileServices parses `SERVICES := ...` from the top-level Makefile: the binaries it builds into bin/.
func makefileServices(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "Makefile"))
	if err != nil {
		t.Fatalf("the top-level Makefile: %v", err)
	}
	m := regexp.MustCompile(`(?m)^SERVICES\s*:?=\s*(.*)$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("the Makefile has no `SERVICES := ...` line")
	}
	return strings.Fields(m[1])
}

// workspaceModules parses the `use` directives of go.work.
func workspaceModules(t *testing.T) []string {
	t.Helper()
	var mods []string
	inBlock := false
	for line := range strings.Lines(string(readFile(t, filepath.Join(repoRoot(t), "go.work")))) {
		line = strings.TrimSpace(strings.SplitN(line, "//", 2)[0])
		switch {
		case line == "use (":
			inBlock = true
		case inBlock && line == ")":
			inBlock = false
		case inBlock && line != "":
			mods = append(mods, filepath.Clean(line))
		case strings.HasPrefix(line, "use ") && !strings.HasSuffix(line, "("):
			mods = append(mods, filepath.Clean(strings.TrimSpace(strings.TrimPrefix(line, "use "))))
		}
	}
	if len(mods) == 0 {
		t.Fatal("go.work lists no modules")
	}
	return mods
}

// stage is one FROM of the Dockerfile and the instructions under it.
type stage struct {
	Name, Base string
	Line       int
	Ins        []instruction
}

// dockerfile is the repository's one Dockerfile: the ARGs before the first FROM, then its stages.
type dockerfile struct {
	GlobalArgs []string
	Stages     []stage
}

func parseStages(t *testing.T) dockerfile {
	t.Helper()
	var df dockerfile
	for _, in := range parseDockerfile(t, filepath.Join(repoRoot(t), "Dockerfile")) {
		if in.Cmd != "FROM" {
			if len(df.Stages) == 0 {
				if in.Cmd != "ARG" {
					t.Fatalf("line %d: %s before the first FROM", in.Line, in.Cmd)
				}
				df.GlobalArgs = append(df.GlobalArgs, strings.SplitN(in.Args, "=", 2)[0])
				continue
			}
			df.Stages[len(df.Stages)-1].Ins = append(df.Stages[len(df.Stages)-1].Ins, in)
			continue
		}
		f := strings.Fields(in.Args)
		f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--platform=") })
		st := stage{Base: f[0], Line: in.Line}
		if len(f) == 3 && strings.EqualFold(f[1], "AS") {
			st.Name = f[2]
		}
		df.Stages = append(df.Stages, st)
	}
	if len(df.Stages) == 0 {
		t.Fatal("the Dockerfile has no FROM")
	}
	return df
}

func (df dockerfile) stage(name string) (stage, bool) {
	i := slices.IndexFunc(df.Stages, func(s stage) bool { return s.Name == name })
	if i < 0 {
		return stage{}, false
	}
	return df.Stages[i], true
}

// nonServiceStages are the stages that are not an image of their own.
var nonServiceStages = []string{"build", "runtime"}

// serviceStages are the stages the last FROM can pick by SERVICE, in file order.
func (df dockerfile) serviceStages() []string {
	var out []string
	for _, s := range df.Stages {
		if s.Name != "" && !slices.Contains(nonServiceStages, s.Name) {
			out = append(out, s.Name)
		}
	}
	return out
}

// image resolves the image built with --build-arg SERVICE=svc, as BuildKit does: the last FROM names the stage, and
// a stage built on another stage inherits its configuration. It returns the external base image and the
// instructions that shape the image, from the base's first to the picked stage's last.
func (df dockerfile) image(t *testing.T, svc string) (base string, ins []instruction) {
	t.Helper()
	name := strings.NewReplacer("${SERVICE}", svc, "$SERVICE", svc).Replace(df.Stages[len(df.Stages)-1].Base)
	for range len(df.Stages) {
		st, ok := df.stage(name)
		if !ok {
			return name, ins
		}
		ins = append(slices.Clone(st.Ins), ins...)
		name = st.Base
	}
	t.Fatalf("the stages of %s form a cycle", svc)
	return "", nil
}

var wantExpose = map[string][]string{
	"case":      {"9091", "8091"},
	"webhook":   {"9092", "8092"},
	"gateway":   {"8080", "9090"},
	"devserver": {"8080", "9090", "9091", "9092", "8091", "8092"},
}

// TestDockerfile: one Dockerfile builds every service image, picked by the build argument SERVICE. Each image is a
// static binary that the Makefile builds too, from ./services/<name>/cmd/<name>, copied onto distroless/static as a
// non-root user, with the service's ports exposed and its addresses on 0.0.0.0.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	services := makefileServices(t)
	df := parseStages(t)

	if !slices.Contains(df.GlobalArgs, "SERVICE") {
		t.Error("no global `ARG SERVICE` before the first FROM: the last FROM cannot use it")
	}
	if last := df.Stages[len(df.Stages)-1]; last.Base != "${SERVICE}" || last.Name != "" || len(last.Ins) != 0 {
		t.Errorf("line %d: the last stage must be exactly `FROM ${SERVICE}`, got FROM %s (as %q, %d instructions)",
			last.Line, last.Base, last.Name, len(last.Ins))
	}
	stages := df.serviceStages()
	if got, want := slices.Sorted(slices.Values(stages)), slices.Sorted(slices.Values(services)); !slices.Equal(got, want) {
		t.Errorf("service stages %v, want the Makefile's SERVICES %v", got, want)
	}
	for _, s := range df.Stages {
		for _, in := range s.Ins {
			if in.Cmd == "HEALTHCHECK" {
				t.Errorf("line %d: HEALTHCHECK needs a shell or a probe binary; the image has neither", in.Line)
			}
		}
	}

	build, ok := df.stage("build")
	if !ok {
		t.Fatal("no stage named build")
	}
	var buildRun string
	hasArg := false
	for _, in := range build.Ins {
		switch {
		case in.Cmd == "ARG" && in.Args == "SERVICE":
			hasArg = true
		case in.Cmd == "RUN" && strings.Contains(in.Args, "go build"):
			buildRun = in.Args
		}
	}
	if !hasArg {
		t.Error("the build stage does not declare `ARG SERVICE`: the go build step would not see it")
	}
	for _, part := range []string{"CGO_ENABLED=0", "go build", "-trimpath", "-o /out/${SERVICE} ./services/${SERVICE}/cmd/${SERVICE}"} {
		if !strings.Contains(buildRun, part) {
			t.Errorf("the go build step %q lacks %q", buildRun, part)
		}
	}
	// The build step refuses an unknown SERVICE with a message, before go build would fail on a missing package.
	if m := regexp.MustCompile(`case "\$SERVICE" in ([a-z|]+)\)`).FindStringSubmatch(buildRun); m == nil {
		t.Error(`the build step does not check SERVICE (case "$SERVICE" in a|b|...)`)
	} else if got := strings.Split(m[1], "|"); !slices.Equal(got, stages) {
		t.Errorf("the build step accepts SERVICE %v, want the service stages %v", got, stages)
	}

	for _, name := range stages {
		t.Run(name, func(t *testing.T) {
			base, ins := df.image(t, name)
			if base != "gcr.io/distroless/static-debian12:nonroot" {
				t.Errorf("the image is FROM %q, want gcr.io/distroless/static-debian12:nonroot", base)
			}
			var entrypoint, user string
			var exposed, envs []string
			for _, in := range ins {
				switch in.Cmd {
				case "ENTRYPOINT":
					entrypoint = in.Args
				case "USER":
					user = in.Args
				case "EXPOSE":
					exposed = append(exposed, strings.Fields(in.Args)...)
				case "ENV":
					envs = append(envs, in.Args)
				}
			}
			if user != "65532:65532" && user != "65532" {
				t.Errorf("USER %q, want 65532 (distroless nonroot, numeric so Kubernetes can verify it)", user)
			}

			var ep []string
			if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) != 1 {
				t.Fatalf("ENTRYPOINT %q: want the exec form with the binary alone", entrypoint)
			}
			bin := filepath.Base(ep[0])
			if bin != name {
				t.Errorf("ENTRYPOINT runs %q in the %s image", bin, name)
			}
			cmdDir := filepath.Join(root, "services", bin, "cmd", bin)
			if st, err := os.Stat(cmdDir); err != nil || !st.IsDir() {
				t.Errorf("./services/%s/cmd/%s is not a directory: %v", bin, bin, err)
			}
			copied := slices.ContainsFunc(ins, func(in instruction) bool {
				return in.Cmd == "COPY" && strings.HasPrefix(in.Args, "--from=build ") && strings.HasSuffix(in.Args, " /out/"+bin+" "+ep[0])
			})
			if !copied {
				t.Errorf("no COPY --from=build /out/%s %s", bin, ep[0])
			}

			slices.Sort(exposed)
			want := slices.Sorted(slices.Values(wantExpose[name]))
			if !slices.Equal(exposed, want) {
				t.Errorf("EXPOSE %v, want %v", exposed, want)
			}
			for _, e := range envs {
				for _, kv := range strings.Fields(e) {
					k, v, _ := strings.Cut(kv, "=")
					if strings.HasSuffix(k, "_ADDR") && !strings.HasPrefix(v, "0.0.0.0:") {
						t.Errorf("ENV %s=%s: a container must listen on 0.0.0.0", k, v)
					}
				}
			}
		})
	}
	paths, _ := filepath.Glob(filepath.Join(root, "services", "*", "Dockerfile"))
	for _, p := range paths {
		t.Errorf("%s: the services are built by the Dockerfile at the repository root", p)
	}
}

// TestDockerfileCopiesWorkspace: Go refuses a workspace whose member modules are missing, so the build stage copies
// the go.mod of every module go.work lists (before the sources, for layer caching). Fails when a module is added to
// go.work and not to the Dockerfile.
func TestDockerfileCopiesWorkspace(t *testing.T) {
	mods := workspaceModules(t)
	build, ok := parseStages(t).stage("build")
	if !ok {
		t.Fatal("no stage named build")
	}
	ins := build.Ins
	firstSource := slices.IndexFunc(ins, func(in instruction) bool {
		return in.Cmd == "COPY" && !strings.Contains(in.Args, "go.mod") && !strings.Contains(in.Args, "go.work") &&
			!strings.HasPrefix(in.Args, "--from=")
	})
	var modCopies []string
	for i, in := range ins {
		if in.Cmd != "COPY" || !strings.Contains(in.Args, "go.mod") {
			continue
		}
		if firstSource >= 0 && i > firstSource {
			t.Errorf("line %d: go.mod copied after sources; copy every go.mod first for layer caching", in.Line)
		}
		modCopies = append(modCopies, strings.Fields(in.Args)[0])
	}
	if !slices.ContainsFunc(ins, func(in instruction) bool { return in.Cmd == "COPY" && strings.HasPrefix(in.Args, "go.work ") }) {
		t.Error("go.work is not copied")
	}
	for _, mod := range mods {
		want := filepath.ToSlash(filepath.Join(mod, "go.mod"))
		if !slices.Contains(modCopies, want) {
			t.Errorf("go.work uses %s but the Dockerfile does not COPY %s", mod, want)
		}
	}
	download := slices.IndexFunc(ins, func(in instruction) bool { return in.Cmd == "RUN" && strings.Contains(in.Args, "go mod download") })
	if download < 0 || (firstSource >= 0 && download > firstSource) {
		t.Error("want `RUN go mod download` between the module files and the sources")
	}
}

// TestImagesMakefileFragment: deploy/images.mk builds an image per service stage of the Dockerfile, with
// SERVICE=<name> and the repository root as the context, and stops with a clear message when no Docker engine is
// available.
func TestImagesMakefileFragment(t *testing.T) {
	root := repoRoot(t)
	mk := string(readFile(t, filepath.Join(root, "deploy", "images.mk")))
	m := regexp.MustCompile(`(?m)^IMAGE_SERVICES\s*\?=\s*(.*)$`).FindStringSubmatch(mk)
	if m == nil {
		t.Fatal("images.mk has no IMAGE_SERVICES")
	}
	stages := parseStages(t).serviceStages()
	if got, want := slices.Sorted(slices.Values(strings.Fields(m[1]))), slices.Sorted(slices.Values(stages)); !slices.Equal(got, want) {
		t.Errorf("images.mk builds %v, want the Dockerfile's service stages %v", got, want)
	}

	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Fatalf("make is not installed: %v", err)
	}
	for docker, wantMsg := range map[string]string{
		"/nonexistent/docker": "not found",        // no CLI
		"false":               "no Docker engine", // a CLI whose `info` fails, like docker without a daemon
	} {
		cmd := exec.Command(makeBin, "-f", filepath.Join(root, "deploy", "images.mk"), "images", "DOCKER="+docker)
		cmd.Dir = t.TempDir() // the fragment finds the repository itself
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("make images DOCKER=%s succeeded:\n%s", docker, out)
			continue
		}
		if !strings.Contains(string(out), wantMsg) {
			t.Errorf("make images DOCKER=%s: want %q in the message, got:\n%s", docker, wantMsg, out)
		}
		if strings.Contains(string(out), " build ") {
			t.Errorf("make images DOCKER=%s attempted a build:\n%s", docker, out)
		}
	}

	// What `make image-<name>` would run (-n prints the recipes, the engine check's included, and runs none).
	for _, svc := range stages {
		cmd := exec.Command(makeBin, "-n", "-f", filepath.Join(root, "deploy", "images.mk"), "image-"+svc)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n image-%s: %v\n%s", svc, err, out)
		}
		line := strings.Join(strings.Fields(strings.ReplaceAll(string(out), "\\\n", " ")), " ")
		for _, want := range []string{
			" build ", "-f " + filepath.Join(root, "Dockerfile") + " ", "--build-arg SERVICE=" + svc + " ",
			"-t casekeeper/" + svc + ":dev ", " " + root,
		} {
			if !strings.Contains(line, want) {
				t.Errorf("make image-%s runs no %q:\n%s", svc, want, out)
			}
		}
	}
}
