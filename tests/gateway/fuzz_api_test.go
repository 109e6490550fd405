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
