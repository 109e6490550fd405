// Package httpapi is the gateway's HTTP/JSON face: the CaseQueryService and WebhookService routes through
// grpc-gateway, the SSE stream, /openapi.json and the operational routes, with conditional GETs, body and time
// limits, and a budget for failed authentications. The case routes are served by calling the gateway's own gRPC
// server over an in-process connection, never by calling the implementation directly, so HTTP and gRPC share one
// chain of authentication, rate limiting, audit and error mapping.
package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/tracing"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/clientaddr"
	"github.com/casekeeper/core/services/gateway/internal/feed"
	"github.com/casekeeper/core/services/gateway/internal/grpcapi"
	"github.com/casekeeper/core/services/gateway/internal/ratelimit"
)

// longPollMax is added to the request timeout of /v1/events, whose answer may wait that long on purpose.
const longPollMax = feed.MaxWait

// Options configure the HTTP API.
type Options struct {
	// Self is a connection to the gateway's own gRPC server (in process).
	Self *grpc.ClientConn
	// Webhooks is a connection to the webhook service whose interceptors verify the caller's token and delegate.
	Webhooks *grpc.ClientConn
	// FailedAuth limits 401s per client address, as ClientAddress finds it (nil: the TCP peer); a request whose
	// token Verifier accepts is never refused by it.
	FailedAuth    *ratelimit.Limiter
	ClientAddress *clientaddr.Resolver
	Verifier      auth.TokenVerifier
	// Refund gives a request back to its caller's rate budget: a 304 costs the client nothing of it.
	Refund         func(auth.Principal)
	MaxBodyBytes   int64
	RequestTimeout time.Duration
	PublicURL      string
}

// API is the HTTP handler. Ops routes and any extra handlers (the dashboard) are mounted on Mux.
type API struct {
	Mux   *http.ServeMux
	query casekeeperv1.CaseQueryServiceClient
	spec  []byte
	addr  *clientaddr.Resolver
}

// New builds the routes.
func New(ctx context.Context, o Options) (*API, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithErrorHandler(gatewayErrorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithForwardResponseOption(setETag),
		// Only Authorization (always forwarded by grpc-gateway) reaches the gRPC side: no client header may turn
		// into metadata a backend might trust, and no backend metadata leaks out as Grpc-Metadata-* headers but
		// the feed's poll hint.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if key == grpcapi.PollIntervalHeader {
				return "X-Poll-Interval", true
			}
			return "", false
		}),
		runtime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
	)
	if o.ClientAddress == nil {
		o.ClientAddress = &clientaddr.Resolver{}
	}
	a := &API{Mux: http.NewServeMux(), query: casekeeperv1.NewCaseQueryServiceClient(o.Self), addr: o.ClientAddress}
	if err := casekeeperv1.RegisterCaseQueryServiceHandlerClient(ctx, gw, a.query); err != nil {
		return nil, fmt.Errorf("case query routes: %w", err)
	}
	if o.Webhooks != nil {
		if err := casekeeperv1.RegisterWebhookServiceHandlerClient(ctx, gw, casekeeperv1.NewWebhookServiceClient(o.Webhooks)); err != nil {
			return nil, fmt.Errorf("webhook routes: %w", err)
		}
	}
	spec, err := openAPISpec(o.PublicURL)
	if err != nil {
		return nil, err
	}
	a.spec = spec

	budget := failedAuth{lim: o.FailedAuth, addr: o.ClientAddress, verify: o.Verifier}
	api := withLimits(o.MaxBodyBytes, o.RequestTimeout, budget.wrap(withValidUTF8(withConditionalGET(o.refund, gw))))
	a.Mux.Handle("/v1/", api)
	a.Mux.Handle("GET /v1/events:stream", budget.wrap(withValidUTF8(http.HandlerFunc(a.streamEvents))))
	a.Mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(a.spec)
	})
	return a, nil
}

// refund gives a 304's request back to the budget of the token's client. The token verified a moment ago, so
// verifying it again is a cache hit.
func (o Options) refund(r *http.Request) {
	if o.Refund == nil || o.Verifier == nil {
		return
	}
	token, ok := bearerToken(r)
	if !ok {
		return
	}
	if p, err := o.Verifier.Verify(r.Context(), token); err == nil {
		o.Refund(p)
	}
}

// Server returns an http.Server for the API with header, read and idle timeouts. There is no global write
// timeout — long-polls and streams outlive any sensible one — so each route sets its own write deadline.
func (a *API) Server() *http.Server {
	return &http.Server{
		Handler:           tracing.HTTPHandler(a.Mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}
