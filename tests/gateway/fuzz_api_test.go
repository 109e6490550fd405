package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// FuzzQueryAPI: every unary method of the gateway's query API, with a real acme token, with requests decoded from
// arbitrary bytes (testinfra.FuzzService).
func FuzzQueryAPI(f *testing.F) {
	h := newHarness(f, harnessOptions{})
	tok := h.acme()
	testinfra.FuzzService(f, h.grpcConn(f),
		casekeeperv1.File_casekeeper_v1_query_service_proto.Services().ByName("CaseQueryService"),
		func() context.Context { return testinfra.Bearer(context.Background(), tok) },
		&casekeeperv1.ListCaseEventsRequest{After: "latest\x00", PageSize: -1},
		&casekeeperv1.GetCaseRequest{Id: "\u202e"})
}

// FuzzQueryHTTP: the HTTP API's reads with arbitrary paths and query strings under /v1/, with a real acme token.
// No answer is a server error (a 503 only when a backend is away, which it is not here), and every refusal is a
// JSON error.
func FuzzQueryHTTP(f *testing.F) {
	h := newHarness(f, harnessOptions{})
	tok := h.acme()
	for _, s := range [][2]string{{"cases", "page_size=-1"}, {"cases/%00", ""}, {"events", "after=latest&wait=abc"},
		{"events", "after=%E2%80%AE"}, {"cases/x/events", "page_token=%ff"}, {"audit", "page_size=100000"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		// As a client sends them: the path escaped, the query parsed and encoded (a raw space or control
		// character in the request line never reaches the handlers; net/http refuses the line itself).
		values, err := url.ParseQuery(query)
		if err != nil || strings.ContainsAny(path, "?#") {
			return
		}
		u := &url.URL{Path: "/v1/" + path, RawQuery: values.Encode()}
		req, err := http.NewRequest(http.MethodGet, h.base+u.String(), nil)
		if err != nil {
			return // not a request a client can send
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		if resp.StatusCode >= 400 && !json.Valid(body) {
			t.Fatalf("GET %s: %d with a body that is not JSON: %q", u, resp.StatusCode, body)
		}
	})
}

// FuzzWebhookHTTP: the webhook-management routes of the HTTP API (through the gateway to the real webhook service)
// with arbitrary methods, paths, query strings and JSON bodies, as an acme administrator. No answer is a server
// error, and every refusal is a JSON error.
func FuzzWebhookHTTP(f *testing.F) {
	h := newHarness(f, harnessOptions{realWebhooks: true})
	tok := h.user(f, "admin@acme.test", "admin").AccessToken
	// The fuzzed requests must reach the webhook service, not stop at authentication.
	if resp, body := h.get(f, "/v1/webhooks/endpoints", tok); resp.StatusCode != http.StatusOK {
		f.Fatalf("precondition: the administrator lists endpoints: %d %s", resp.StatusCode, body)
	}
	for _, s := range []struct {
		method      uint8
		path, query string
		body        string
	}{
		{1, "endpoints", "", `{"url":"https://0xa9fea9fe/","description":"\u202e","payload_format":"PAYLOAD_FORMAT_JQ","jq_transform":"def f: f; f"}`},
		{1, "endpoints", "", `{"url":"https://hooks.example.com/x","headers":{"X-Key":"a\u0000b"},"max_concurrency":100000}`},
		{2, "endpoints/ep_x", "update_mask=url,nope", `{"url":"http://169.254.169.254.:80/"}`},
		{3, "endpoints/%00", "", ""},
		{0, "deliveries", "page_size=-1&status=7&since=yesterday", ""},
		{1, "deliveries/msg_x:resend", "", `{`},
		{1, "endpoints/ep_x:recover", "", `{"since":"not a time"}`},
		{1, "transform:preview", "", `{"jq_transform":"[range(0;1e9)]","event_type":"case.updated"}`},
		{0, "endpoints/ep_x/secret", "", ""},
	} {
		f.Add(s.method, s.path, s.query, []byte(s.body))
	}
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete}
	f.Fuzz(func(t *testing.T, method uint8, path, query string, body []byte) {
		values, err := url.ParseQuery(query)
		if err != nil || strings.ContainsAny(path, "?#") {
			return
		}
		u := &url.URL{Path: "/v1/webhooks/" + path, RawQuery: values.Encode()}
		m := methods[int(method)%len(methods)]
		req, err := http.NewRequest(m, h.base+u.String(), strings.NewReader(string(body)))
		if err != nil {
			return // not a request a client can send
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s %s: %v", m, u, err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: %d %s", m, u, body, resp.StatusCode, answer)
		}
		if resp.StatusCode >= 400 && !json.Valid(answer) {
			t.Fatalf("%s %s: %d with a body that is not JSON: %q", m, u, resp.StatusCode, answer)
		}
	})
}
