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

func serviceDockerfiles(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot(t), "services", "*", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range paths {
		out[filepath.Base(filepath.Dir(p))] = p
	}
	return out
}

var wantExpose = map[string][]string{
	"case":      {"9091", "8091"},
	"webhook":   {"9092", "8092"},
	"gateway":   {"8080", "9090"},
	"devserver": {"8080", "9090", "9091", "9092", "8091", "8092"},
}

// TestDockerfiles: every service image is a multi-stage build of a static binary that the Makefile builds too,
// from ./services/<name>/cmd/<name>, copied onto distroless/static as a non-root user, with the service's ports
// exposed and its addresses on 0.0.0.0.
func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	services := makefileServices(t)
	dockerfiles := serviceDockerfiles(t)
	for _, required := range []string{"case", "webhook", "gateway"} {
		if _, ok := dockerfiles[required]; !ok {
			t.Errorf("services/%s/Dockerfile is missing", required)
		}
	}
	for name, path := range dockerfiles {
		t.Run(name, func(t *testing.T) {
			ins := parseDockerfile(t, path)
			var froms []instruction
			var entrypoint, user, build string
			var exposed []string
			var envs []string
			for _, in := range ins {
				switch in.Cmd {
				case "FROM":
					froms = append(froms, in)
					user = "" // USER is per stage
				case "ENTRYPOINT":
					entrypoint = in.Args
				case "USER":
					user = in.Args
				case "EXPOSE":
					exposed = append(exposed, strings.Fields(in.Args)...)
				case "ENV":
					envs = append(envs, in.Args)
				case "RUN":
					if strings.Contains(in.Args, "go build") {
						build = in.Args
					}
				case "HEALTHCHECK":
					t.Errorf("line %d: HEALTHCHECK needs a shell or a probe binary; the image has neither", in.Line)
				}
			}
			if len(froms) < 2 {
				t.Fatalf("want a multi-stage build, got %d stage(s)", len(froms))
			}
			if final := froms[len(froms)-1].Args; final != "gcr.io/distroless/static-debian12:nonroot" {
				t.Errorf("final stage FROM %q, want gcr.io/distroless/static-debian12:nonroot", final)
			}
			if user != "65532:65532" && user != "65532" {
				t.Errorf("final stage USER %q, want 65532 (distroless nonroot, numeric so Kubernetes can verify it)", user)
			}

			var ep []string
			if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) != 1 {
				t.Fatalf("ENTRYPOINT %q: want the exec form with the binary alone", entrypoint)
			}
			bin := filepath.Base(ep[0])
			if bin != name {
				t.Errorf("ENTRYPOINT runs %q in services/%s", bin, name)
			}
			if !slices.Contains(services, bin) {
				t.Errorf("ENTRYPOINT binary %q is not in the Makefile's SERVICES %v", bin, services)
			}
			cmdDir := filepath.Join(root, "services", bin, "cmd", bin)
			if st, err := os.Stat(cmdDir); err != nil || !st.IsDir() {
				t.Errorf("./services/%s/cmd/%s is not a directory: %v", bin, bin, err)
			}
			wantBuild := "-o /out/" + bin + " ./services/" + bin + "/cmd/" + bin
			for _, part := range []string{"CGO_ENABLED=0", "go build", "-trimpath", wantBuild} {
				if !strings.Contains(build, part) {
					t.Errorf("the go build step %q lacks %q", build, part)
				}
			}
			copied := false
			for _, in := range ins {
				if in.Cmd == "COPY" && strings.HasPrefix(in.Args, "--from=") && strings.HasSuffix(in.Args, "/out/"+bin+" "+ep[0]) {
					copied = true
				}
			}
			if !copied {
				t.Errorf("no COPY --from=<build> /out/%s %s", bin, ep[0])
			}

			slices.Sort(exposed)
			want := slices.Clone(wantExpose[name])
			slices.Sort(want)
			if want != nil && !slices.Equal(exposed, want) {
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
	for _, svc := range services {
		if _, ok := dockerfiles[svc]; !ok && svc != "devserver" {
			t.Errorf("the Makefile builds %s but services/%s/Dockerfile does not exist", svc, svc)
		}
	}
}

// TestDockerfilesCopyWorkspace: Go refuses a workspace whose member modules are missing, so every Dockerfile copies
// the go.mod of every module go.work lists (before the sources, for layer caching). Fails when a module is added to
// go.work and not to the Dockerfiles.
func TestDockerfilesCopyWorkspace(t *testing.T) {
	mods := workspaceModules(t)
	for name, path := range serviceDockerfiles(t) {
		t.Run(name, func(t *testing.T) {
			ins := parseDockerfile(t, path)
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
		})
	}
}

// TestImagesMakefileFragment: deploy/images.mk builds an image per service Dockerfile and stops with a clear
// message when no Docker engine is available.
func TestImagesMakefileFragment(t *testing.T) {
	root := repoRoot(t)
	mk := string(readFile(t, filepath.Join(root, "deploy", "images.mk")))
	m := regexp.MustCompile(`(?m)^IMAGE_SERVICES\s*\?=\s*(.*)$`).FindStringSubmatch(mk)
	if m == nil {
		t.Fatal("images.mk has no IMAGE_SERVICES")
	}
	dockerfiles := serviceDockerfiles(t)
	for _, svc := range strings.Fields(m[1]) {
		if _, ok := dockerfiles[svc]; !ok {
			t.Errorf("images.mk builds %s, which has no Dockerfile", svc)
		}
	}
	for svc := range dockerfiles {
		if !slices.Contains(strings.Fields(m[1]), svc) {
			t.Errorf("services/%s/Dockerfile is not built by `make images`", svc)
		}
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
}
