// Package grpcserver builds the gRPC server every service runs: panic recovery, request logging, metrics,
// authentication, masking of internal errors, health checks and reflection — in that order, for every service alike —
// and, when tracing is on, a span for every RPC.
package grpcserver

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/tracing"
	"github.com/casekeeper/core/pkg/validation"
)

// Options configure a server.
type Options struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	Verifier auth.TokenVerifier
	Policy   auth.Policy
	// MaxRecvBytes bounds a request message (default 4 MiB).
	MaxRecvBytes int
}

// Server is a gRPC server plus its health service, which the caller marks serving once ready.
type Server struct {
	*grpc.Server
	Health *health.Server
}

// New returns a server with the shared interceptor chain; register services on it, then serve it with
// lifecycle.GRPCServer.
func New(opts Options) *Server {
	if opts.MaxRecvBytes == 0 {
		opts.MaxRecvBytes = 4 << 20
	}
	m := newMetrics(opts.Registry)
	srv := grpc.NewServer(append(tracing.GRPCServerOptions(),
		grpc.MaxRecvMsgSize(opts.MaxRecvBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(
			recoverUnary(opts.Log),
			observeUnary(opts.Log, m),
			auth.UnaryServerInterceptor(opts.Verifier, opts.Policy),
		),
		grpc.ChainStreamInterceptor(
			recoverStream(opts.Log),
			observeStream(opts.Log, m),
			auth.StreamServerInterceptor(opts.Verifier, opts.Policy),
		))...,
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return &Server{Server: srv, Health: hs}
}

type metrics struct {
	handled *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total", Help: "RPCs completed, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "grpc_server_handling_seconds", Help: "RPC latency by method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 30},
		}, []string{"method"}),
	}
	if reg != nil {
		reg.MustRegister(m.handled, m.latency)
	}
	return m
}

func observeUnary(log *slog.Logger, m *metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		err = observe(ctx, log, m, info.FullMethod, start, err)
		return resp, err
	}
}

func observeStream(log *slog.Logger, m *metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		return observe(ss.Context(), log, m, info.FullMethod, start, err)
	}
}

// observe records the call and masks errors that are not gRPC statuses: their text may hold internal details, so
// it goes to the log and the caller gets a plain Internal.
func observe(ctx context.Context, log *slog.Logger, m *metrics, method string, start time.Time, err error) error {
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			switch {
			case errors.Is(err, context.Canceled):
				err = status.Error(codes.Canceled, "the call was canceled")
			case errors.Is(err, context.DeadlineExceeded):
				err = status.Error(codes.DeadlineExceeded, "the call ran out of time")
			default:
				log.ErrorContext(ctx, "rpc failed", "method", method, "error", err)
				err = status.Error(codes.Internal, "internal error")
			}
		}
	}
	code := status.Code(err)
	elapsed := time.Since(start)
	m.handled.WithLabelValues(method, code.String()).Inc()
	m.latency.WithLabelValues(method).Observe(elapsed.Seconds())
	if code == codes.Internal || code == codes.Unknown || code == codes.DataLoss {
		log.ErrorContext(ctx, "rpc", "method", method, "code", code.String(), "duration_ms", elapsed.Milliseconds())
	} else {
		log.DebugContext(ctx, "rpc", "method", method, "code", code.String(), "duration_ms", elapsed.Milliseconds())
	}
	return err
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "rpc panicked", "method", info.FullMethod, "panic", r)
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ss.Context(), "rpc panicked", "method", info.FullMethod, "panic", r)
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}

// InvalidArgument turns field errors into an InvalidArgument status whose message and BadRequest details name
// every field at fault.
func InvalidArgument(errs validation.Errors) error {
	st := status.New(codes.InvalidArgument, errs.Error())
	br := &errdetails.BadRequest{}
	for _, f := range errs {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Message})
	}
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}
