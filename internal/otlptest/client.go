package otlptest

import (
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Provider returns an OpenTelemetry SDK tracer provider for one service
// that exports to an OTLP receiver at addr (host:port) over gRPC, or over
// HTTP when useHTTP is set. It blocks instead of dropping spans when its
// queue is full, so a test's client never loses what the test counts on.
// Shut it down (which flushes) before reading what arrived.
func Provider(tb testing.TB, addr, service string, useHTTP bool) *sdktrace.TracerProvider {
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
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service))
	return sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(512), sdktrace.WithBlocking()))
}
