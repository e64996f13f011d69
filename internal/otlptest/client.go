package otlptest

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// Provider returns an OpenTelemetry SDK tracer provider for one service
// that exports to an OTLP receiver at addr (host:port) over gRPC, or over
// HTTP when useHTTP is set. It blocks instead of dropping spans when its
// queue is full, so a test's client never loses what the test counts on.
// Shut it down (which flushes) before reading what arrived. attrs are
// added to the resource (e.g. service.version).
func Provider(tb testing.TB, addr, service string, useHTTP bool, attrs ...attribute.KeyValue) *sdktrace.TracerProvider {
	tb.Helper()
	var exp sdktrace.SpanExporter
	var err error
	if useHTTP {
		exp, err = otlptracehttp.New(tb.Context(), otlptracehttp.WithEndpoint(addr), otlptracehttp.WithInsecure())
	} else {
		exp, err = otlptracegrpc.New(tb.Context(), otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure())
	}
	if err != nil {
		tb.Fatal(err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, append([]attribute.KeyValue{semconv.ServiceName(service)}, attrs...)...)
	return sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(512), sdktrace.WithBlocking()))
}

// PutAttrs sets attributes on a pdata map in sorted key order, so that a
// test's encoding is the same every run (pcommon.Map.FromRaw follows Go's
// map order). Values are string, int, bool or float64.
func PutAttrs(m pcommon.Map, attrs map[string]any) {
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		switch v := attrs[k].(type) {
		case string:
			m.PutStr(k, v)
		case int:
			m.PutInt(k, int64(v))
		case bool:
			m.PutBool(k, v)
		case float64:
			m.PutDouble(k, v)
		default:
			panic(fmt.Sprintf("otlptest.PutAttrs: unsupported type %T of %q", v, k))
		}
	}
}

// SpanRequest returns a parsed request of n SERVER spans of one resource
// (its attributes, service.name among them), with distinct trace and span
// IDs, each shaped by each (attributes, status, times) when it is not nil.
func SpanRequest(tb testing.TB, resource map[string]string, n int, each func(i int, sp ptrace.Span)) *otlp.Request {
	tb.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	for k, v := range resource {
		rs.Resource().Attributes().PutStr(k, v)
	}
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{2, byte(i >> 16), byte(i >> 8), byte(i), 2})
		sp.SetSpanID(pcommon.SpanID{2, byte(i >> 16), byte(i >> 8), byte(i), 2})
		sp.SetName("GET /")
		sp.SetKind(ptrace.SpanKindServer)
		if each != nil {
			each(i, sp)
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		tb.Fatal(err)
	}
	var req otlp.Request
	if err := otlp.Parse(b, otlp.Limits{}, &req); err != nil {
		tb.Fatal(err)
	}
	return &req
}

// EntryRequest returns a parsed request of n SERVER spans of service, the
// first bad of them with status ERROR: n requests for the SLI counters.
func EntryRequest(tb testing.TB, service string, n, bad int) *otlp.Request {
	return VersionRequest(tb, service, "", n, bad, time.Time{})
}

// VersionRequest is EntryRequest with the resource's service.version
// (none when empty) and the spans ending at end (10ms long; no times
// when end is zero).
func VersionRequest(tb testing.TB, service, version string, n, bad int, end time.Time) *otlp.Request {
	tb.Helper()
	res := map[string]string{"service.name": service}
	if version != "" {
		res["service.version"] = version
	}
	return SpanRequest(tb, res, n, func(i int, sp ptrace.Span) {
		sp.SetTraceID(pcommon.TraceID{1, byte(i >> 8), byte(i), 1})
		sp.SetSpanID(pcommon.SpanID{1, byte(i >> 8), byte(i), 1})
		if !end.IsZero() {
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-10 * time.Millisecond)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		}
		if i < bad {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	})
}
