package tests

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// skipMarker is the visible note a README puts right before a shell block that its test does not run: the
// stack's own commands (`make run`, `make test`) and what needs a Docker engine. Its reason is part of the line.
var skipMarker = regexp.MustCompile(`^<!-- not run by the README test: (.+) -->$`)

// shellLangs are the info strings of the fenced blocks a reader would paste into a shell.
var shellLangs = []string{"sh", "bash", "shell"}

// shellBlock is one fenced shell block of a Markdown file.
type shellBlock struct {
	line int    // of the opening fence, 1-based
	text string // the lines between the fences, without the fence's indentation
	skip string // the marker's reason when the block is not run
}

// shellBlocks returns the shell blocks of a Markdown document in order. A marker that is not followed by a shell
// block (blank lines aside) is an error, so that a marker cannot outlive the block it was written for.
func shellBlocks(doc string) ([]shellBlock, error) {
	var (
		blocks     []shellBlock
		inFence    bool
		keep       bool // the open fence is a shell block
		indent     string
		cur        shellBlock
		body       []string
		marker     string
		markerLine int
	)
	for i, line := range strings.Split(doc, "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if inFence {
			if strings.HasPrefix(trimmed, "```") && strings.Trim(trimmed, "`") == "" {
				inFence = false
				if keep {
					cur.text = strings.Join(body, "\n") + "\n"
					blocks = append(blocks, cur)
				}
				continue
			}
			body = append(body, strings.TrimPrefix(line, indent))
			continue
		}
		if lang, ok := strings.CutPrefix(trimmed, "```"); ok {
			inFence, keep, body = true, slices.Contains(shellLangs, strings.TrimSpace(lang)), nil
			indent = line[:strings.Index(line, "```")]
			if marker != "" && !keep {
				return nil, fmt.Errorf("line %d: the marker is before a %q block, not a shell block", markerLine, lang)
			}
			cur = shellBlock{line: n, skip: marker}
			marker = ""
			continue
		}
		if m := skipMarker.FindStringSubmatch(trimmed); m != nil {
			if marker != "" {
				return nil, fmt.Errorf("line %d: a second marker before any shell block (the first is on line %d)", n, markerLine)
			}
			marker, markerLine = m[1], n
			continue
		}
		if marker != "" && trimmed != "" {
			return nil, fmt.Errorf("line %d: the marker is not followed by a shell block", markerLine)
		}
	}
	if inFence {
		return nil, fmt.Errorf("line %d: the block is not closed", cur.line)
	}
	if marker != "" {
		return nil, fmt.Errorf("line %d: the marker is not followed by a shell block", markerLine)
	}
	return blocks, nil
}

// localAddr matches a loopback address with its port, and the http(s) scheme in front of it when there is one.
var localAddr = regexp.MustCompile(`(https?://)?\b(?:127\.0\.0\.1|localhost):([0-9]+)\b`)

// addrMap maps the README's default ports to where the test's stack listens.
type addrMap map[string]stackAddr

// stackAddr is where one part of the test's stack listens: host:port, and for a part reached by URL the whole base
// URL when it is not just http(s)://host:port (the suite's Keycloak may have another scheme or a path).
type stackAddr struct{ hostPort, baseURL string }

// rewrite returns text with every loopback address moved to the test's stack. A port the map does not know fails:
// a block that talks to a part the test does not start would otherwise reach whatever else listens there.
func (m addrMap) rewrite(text string) (string, error) {
	var unknown []string
	out := localAddr.ReplaceAllStringFunc(text, func(s string) string {
		sub := localAddr.FindStringSubmatch(s)
		to, ok := m[sub[2]]
		if !ok {
			unknown = append(unknown, s)
			return s
		}
		if sub[1] != "" {
			if to.baseURL != "" {
				return to.baseURL
			}
			return sub[1] + to.hostPort
		}
		return to.hostPort
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("no part of the test's stack listens on the README's %s", strings.Join(unknown, ", "))
	}
	return out, nil
}

// urlAddr is the addrMap entry of a base URL such as the suite's KEYCLOAK_URL.
func urlAddr(base string) (stackAddr, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return stackAddr{}, fmt.Errorf("%q is not a base URL", base)
	}
	return stackAddr{hostPort: u.Host, baseURL: strings.TrimSuffix(base, "/")}, nil
}

func TestShellBlocks(t *testing.T) {
	doc := strings.Join([]string{
		"# Title",
		"```sh",
		"echo one",
		"```",
		"```",
		"<!-- not run by the README test: inside another block -->",
		"```",
		"<!-- not run by the README test: the stack's own command -->",
		"",
		"```bash",
		"make run",
		"```",
		"1. In a list:",
		"   ```sh",
		"   echo two \\",
		"     three",
		"   ```",
		"```json",
		"{}",
		"```",
	}, "\n")
	got, err := shellBlocks(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []shellBlock{
		{line: 2, text: "echo one\n"},
		{line: 10, text: "make run\n", skip: "the stack's own command"},
		{line: 14, text: "echo two \\\n  three\n"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("shellBlocks:\n got %+v\nwant %+v", got, want)
	}

	for name, doc := range map[string]string{
		"marker before prose":    "<!-- not run by the README test: x -->\ntext\n```sh\necho\n```\n",
		"marker at the end":      "```sh\necho\n```\n<!-- not run by the README test: x -->\n",
		"marker before json":     "<!-- not run by the README test: x -->\n```json\n{}\n```\n",
		"two markers":            "<!-- not run by the README test: x -->\n<!-- not run by the README test: y -->\n```sh\necho\n```\n",
		"block without its end":  "```sh\necho\n",
		"marker without a block": "<!-- not run by the README test: x -->\n",
	} {
		if blocks, err := shellBlocks(doc); err == nil {
			t.Errorf("%s: no error, blocks %+v", name, blocks)
		}
	}
}

func TestAddrMapRewrite(t *testing.T) {
	kc, err := urlAddr("https://127.0.0.1:28180/auth/")
	if err != nil {
		t.Fatal(err)
	}
	m := addrMap{"8180": kc, "8080": {hostPort: "127.0.0.1:41000"}, "9091": {hostPort: "127.0.0.1:41001"}}
	got, err := m.rewrite("curl http://127.0.0.1:8180/realms/x http://localhost:8080/v1 && grpcurl 127.0.0.1:9091 x\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "curl https://127.0.0.1:28180/auth/realms/x http://127.0.0.1:41000/v1 && grpcurl 127.0.0.1:41001 x\n"; got != want {
		t.Fatalf("rewrite:\n got %q\nwant %q", got, want)
	}
	if _, err := m.rewrite("curl http://127.0.0.1:9000/health\n"); err == nil {
		t.Fatal("a port the stack does not have was left as it is")
	}
}
