package gateway_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"

	gatewaysvc "github.com/casekeeper/core/services/gateway"
)

// testFailedAuthBehindProxy: a gateway behind a trusted proxy (this test, from 127.0.0.1, writing X-Forwarded-For
// as an ingress does) keeps one failed-authentication budget per client, not one for everybody behind the proxy;
// and a token that verifies passes while its own address's budget is spent — on the API and on SSE.
func testFailedAuthBehindProxy(t *testing.T, h *harness) {
	gw := h.startGateway(func(c *gatewaysvc.Config) {
		c.FailedAuthLimit = 1 // burst 4
		c.TrustedProxies = []string{"127.0.0.0/8", "::1"}
	})
	base := "http://" + gw.HTTPAddr()
	call := func(path, client, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("X-Forwarded-For", client)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if strings.HasSuffix(path, ":stream") && resp.StatusCode == http.StatusOK {
			// The stream opened: read its first line, then let it go.
			_, _ = bufio.NewReader(resp.Body).ReadString('\n')
		}
		return resp.StatusCode
	}
	const attacker, neighbour = "203.0.113.7", "198.51.100.9"
	// 20 garbage tokens in a burst: far past the budget of 1 per second with a burst of 4.
	var statuses []int
	for range 20 {
		statuses = append(statuses, call("/v1/events?page_size=1", attacker, "garbage"))
	}
	if statuses[0] != http.StatusUnauthorized || statuses[len(statuses)-1] != http.StatusTooManyRequests {
		t.Fatalf("garbage tokens from one client: %v, want 401s then 429s", statuses)
	}
	good := h.acme()
	for _, path := range []string{"/v1/events?page_size=1", "/v1/events:stream"} {
		// Another client behind the same proxy: its own budget.
		if got := call(path, neighbour, "garbage"); got != http.StatusUnauthorized {
			t.Errorf("%s: another client's bad token while the first is throttled: %d, want 401", path, got)
		}
		if got := call(path, neighbour, good); got != http.StatusOK {
			t.Errorf("%s: another client's valid token: %d, want 200", path, got)
		}
		// The throttled address itself, with a valid token: never refused by the failed-auth budget.
		if got := call(path, attacker, good); got != http.StatusOK {
			t.Errorf("%s: a valid token from the throttled address: %d, want 200", path, got)
		}
		if got := call(path, attacker, "garbage"); got != http.StatusTooManyRequests {
			t.Errorf("%s: garbage from the throttled address: %d, want 429", path, got)
		}
	}
	// A client that is not behind a trusted proxy cannot pick its budget by writing the header: the test's own
	// gateway trusts no proxy, so every X-Forwarded-For shares the peer's (127.0.0.1) budget.
	plain := h.startGateway(func(c *gatewaysvc.Config) { c.FailedAuthLimit = 1 })
	base = "http://" + plain.HTTPAddr()
	for i := range 8 {
		call("/v1/events?page_size=1", fmt.Sprintf("192.0.2.%d", i+1), "garbage")
	}
	if got := call("/v1/events?page_size=1", "192.0.2.99", "garbage"); got != http.StatusTooManyRequests {
		t.Errorf("a forged X-Forwarded-For from an untrusted peer chose a fresh budget: %d, want 429", got)
	}
}
