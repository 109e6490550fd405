package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/testinfra"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

func openStream(t *testing.T, ctx context.Context, h *harness, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/v1/events:stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A real Keycloak token lives 5 minutes in the realm; the gateway's clock is moved past its exp instead of waiting.
func testStreamsEndAtTokenExpiry(t *testing.T, h *harness) {
	acme := h.acme()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sse := openStream(t, ctx, h, acme)
	defer sse.Body.Close()
	if sse.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %d", sse.StatusCode)
	}
	watch, err := casekeeperv1.NewCaseQueryServiceClient(h.grpcConn(t)).WatchCaseEvents(testinfra.Bearer(ctx, acme),
		&casekeeperv1.WatchCaseEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if hdr, err := watch.Header(); err != nil || len(hdr.Get("x-casekeeper-stream")) == 0 {
		t.Fatalf("watch did not open: %v %v", hdr, err)
	}

	h.clock.offset.Store(int64(6 * time.Minute)) // past exp + leeway
	defer h.clock.offset.Store(0)
	body := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(sse.Body)
		body <- string(b)
	}()
	select {
	case b := <-body:
		if !strings.Contains(b, "event: error\n") || !strings.Contains(b, "access token expired") {
			t.Fatalf("SSE ended without telling the client its token expired:\n%s", b)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("SSE still open after its token expired")
	}
	for {
		_, err := watch.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), "expired") {
			t.Fatalf("watch ended with %v, want UNAUTHENTICATED saying the token expired", err)
		}
		break
	}
}

func testStreamCap(t *testing.T, h *harness) {
	acme := h.acme()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const maxStreams = 8 // GATEWAY_MAX_STREAMS_PER_CLIENT's default
	for i := range maxStreams {
		resp := openStream(t, ctx, h, acme)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d within the cap: %d", i+1, resp.StatusCode)
		}
	}
	resp := openStream(t, ctx, h, acme)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), `"code"`) {
		t.Fatalf("stream over the cap: %d %s", resp.StatusCode, b)
	}
	w, err := casekeeperv1.NewCaseQueryServiceClient(h.grpcConn(t)).WatchCaseEvents(testinfra.Bearer(ctx, acme),
		&casekeeperv1.WatchCaseEventsRequest{})
	if err == nil {
		_, err = w.Recv() // a server stream reports its refusal on the first receive
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("gRPC stream over the cap: %v", err)
	}
	// Another client is not affected.
	other := openStream(t, ctx, h, h.globex())
	defer other.Body.Close()
	if other.StatusCode != http.StatusOK {
		t.Fatalf("another client's stream: %d", other.StatusCode)
	}
}
