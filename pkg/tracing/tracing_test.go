package tracing

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/casekeeper/core/pkg/logging"
)

func TestExporterFromEnv(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		on      bool
		errPart string
	}{
		{name: "nothing set: off", env: nil},
		{name: "an endpoint: on", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: true},
		{name: "a traces endpoint: on", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, on: true},
		{name: "otlp asked for: on", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{name: "grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true},
		{name: "none wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}},
		{name: "disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, errPart: "OTEL_TRACES_EXPORTER"},
		{name: "unknown protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			errPart: "OTEL_EXPORTER_OTLP_PROTOCOL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exp, err := exporterFromEnv(context.Background(), func(k string) string { return c.env[k] })
			if c.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), c.errPart) {
					t.Fatalf("error %v, want one naming %s", err, c.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (exp != nil) != c.on {
				t.Fatalf("exporter %v, want on=%v", exp, c.on)
			}
			if exp != nil {
				_ = exp.Shutdown(context.Background())
			}
		})
	}
}

func TestTraceContextRoundTripsThroughHeaders(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled})
	h := Headers{}
	Inject(trace.ContextWithSpanContext(context.Background(), sc), h)
	if got := h.Get("traceparent"); got != "00-01020300000000000000000000000000-0405060000000000-01" {
		t.Fatalf("traceparent %q", got)
	}
	back := Extract(h)
	if back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() || !back.IsRemote() {
		t.Fatalf("extracted %v, want %v (remote)", back, sc)
	}
	if Extract(Headers{}).IsValid() {
		t.Fatal("empty headers gave a span context")
	}
	none := Headers{}
	Inject(context.Background(), none)
	if len(none) != 0 {
		t.Fatalf("no span wrote %v", none)
	}
}

func TestLogLinesCarryTheTrace(t *testing.T) {
	var buf bytes.Buffer
	log, err := logging.New(&buf, "info")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xab}, SpanID: trace.SpanID{0xcd}})
	log.With("service", "x").InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "traced")
	log.Info("untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.Contains(lines[0], `"trace_id":"ab000000000000000000000000000000"`) || !strings.Contains(lines[0], `"span_id":"cd00000000000000"`) {
		t.Errorf("traced line %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("untraced line %s", lines[1])
	}
}
