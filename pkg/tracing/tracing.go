// Package tracing is the OpenTelemetry set-up every service shares: one tracer provider per process, configured by
// the standard OTEL_* variables, and the W3C trace context propagated over gRPC, HTTP and NATS message headers.
//
// Tracing is off unless it is asked for: with neither OTEL_TRACES_EXPORTER=otlp nor an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set there is nobody to export to, and the hot
// paths then carry no tracing cost at all (no gRPC stats handler, no spans recorded, no trace headers written).
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off whatever else is set. Everything else the SDK reads
// itself: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, OTEL_EXPORTER_OTLP_*.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// instrumentation is the tracer name of Case-keeper's own spans.
const instrumentation = "github.com/casekeeper/core"

var enabled atomic.Bool

// Enabled reports whether Setup installed an exporting tracer provider in this process.
func Enabled() bool { return enabled.Load() }

// Tracer is the tracer Case-keeper's own spans come from (the global provider's: a no-op one until Setup).
func Tracer() trace.Tracer { return otel.Tracer(instrumentation) }

// Propagator is the W3C trace context (traceparent, tracestate): what travels in gRPC metadata, HTTP headers, NATS
// message headers and each webhook request.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Setup installs the process's tracer provider from the OTEL_* environment, for the service of the given name
// (OTEL_SERVICE_NAME overrides it). It returns the function that flushes and stops it; with tracing off that does
// nothing.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(Propagator)
	exporter, err := exporterFromEnv(ctx, os.Getenv)
	if err != nil || exporter == nil {
		return func(context.Context) error { return nil }, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	enabled.Store(true)
	return tp.Shutdown, nil
}

// exporterFromEnv returns the span exporter the environment asks for, or nil when tracing is off.
func exporterFromEnv(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	switch kind := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); kind {
	case "none":
		return nil, nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, nil
		}
	case "otlp":
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER %q: supported are otlp and none", kind)
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch strings.TrimSpace(protocol) {
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: supported are http/protobuf and grpc", protocol)
	}
}

// Inject writes the trace context of ctx into a carrier (NATS message headers, HTTP headers); with no span in ctx
// it writes nothing.
func Inject(ctx context.Context, carrier propagation.TextMapCarrier) { Propagator.Inject(ctx, carrier) }

// Extract returns the span context a carrier holds: invalid when it holds none.
func Extract(carrier propagation.TextMapCarrier) trace.SpanContext {
	return trace.SpanContextFromContext(Propagator.Extract(context.Background(), carrier))
}

// Headers is a carrier over map[string][]string headers with exact keys, as NATS message headers are: the trace
// context travels as "traceparent" and "tracestate", the names W3C gives them.
type Headers map[string][]string

func (h Headers) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (h Headers) Set(key, value string) { h[key] = []string{value} }

func (h Headers) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// GRPCServerOptions trace every RPC a server handles, joining the caller's trace from the request metadata; with
// tracing off there are none.
func GRPCServerOptions() []grpc.ServerOption {
	if !Enabled() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler())}
}

// GRPCDialOptions trace every RPC a client makes and send its trace context along; with tracing off there are none.
func GRPCDialOptions() []grpc.DialOption {
	if !Enabled() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler())}
}

// HTTPHandler traces every request h serves, joining the caller's trace from its traceparent header; with tracing
// off it is h itself. The span is named by the method alone (the route is not known outside h's mux, and a path
// holds ids); the gRPC call it makes through grpc-gateway is the child span that names the method.
func HTTPHandler(h http.Handler) http.Handler {
	if !Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, "http", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return "HTTP " + r.Method
	}))
}

// End ends a span, marking it failed with err when there is one.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
