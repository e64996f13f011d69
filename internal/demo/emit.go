package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Emitter turns planned requests into real spans: one OpenTelemetry SDK
// tracer provider per service and version, each exporting OTLP over gRPC
// like an instrumented service would.
type Emitter struct {
	providers map[string]*sdktrace.TracerProvider
	tracers   map[string]trace.Tracer
	order     []string // leaf services first, for shutdown
}

// NewEmitter builds the providers of the services of m, exporting to the
// OTLP gRPC endpoint (host:port, plaintext). The batchers block rather than
// drop when their queue is full, and flush every 200ms: well within the
// sampler's root grace, so a trace's spans all arrive before it is decided.
func NewEmitter(ctx context.Context, endpoint string, m *Model) (*Emitter, error) {
	e := &Emitter{providers: map[string]*sdktrace.TracerProvider{}, tracers: map[string]trace.Tracer{}}
	services := []struct{ name, version string }{
		{Payments, m.Stable.Version}, {Payments, m.Broken.Version}, {Payments, m.Hotfix.Version},
		{Inventory, inventoryVersion}, {Checkout, checkoutVersion}, {Frontend, frontendVersion},
	}
	for _, s := range services {
		key := s.name + "@" + s.version
		if _, ok := e.providers[key]; ok {
			continue
		}
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
		if err != nil {
			e.Shutdown(ctx)
			return nil, fmt.Errorf("create OTLP exporter of %s: %w", s.name, err)
		}
		res := resource.NewWithAttributes(semconv.SchemaURL,
			semconv.ServiceName(s.name),
			semconv.ServiceVersion(s.version),
			semconv.ServiceNamespace("shop"),
			attribute.String("deployment.environment.name", "demo"),
			semconv.TelemetrySDKLanguageGo,
			semconv.TelemetrySDKName("opentelemetry"),
		)
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithBatcher(exp,
				sdktrace.WithBlocking(),
				sdktrace.WithBatchTimeout(200*time.Millisecond),
				sdktrace.WithMaxExportBatchSize(512),
				sdktrace.WithMaxQueueSize(8192)),
		)
		e.providers[key] = tp
		e.tracers[key] = tp.Tracer("github.com/tailgate-sre/tailgate/internal/demo")
		e.order = append(e.order, key)
	}
	return e, nil
}

// Emit records the spans of r so that its last span ends at end, and
// returns the trace's ID. Children end before their parents, as in a real
// system.
func (e *Emitter) Emit(ctx context.Context, r *Request, end time.Time) trace.TraceID {
	base := end.Add(-r.Extent)
	var rec func(ctx context.Context, s *Span) trace.SpanContext
	rec = func(ctx context.Context, s *Span) trace.SpanContext {
		tr := e.tracers[s.Service+"@"+s.Version]
		cctx, sp := tr.Start(ctx, s.Name,
			trace.WithSpanKind(s.Kind),
			trace.WithTimestamp(base.Add(s.Start)),
			trace.WithAttributes(s.Attrs...))
		for _, c := range s.Children {
			rec(cctx, c)
		}
		if s.Status != 0 {
			sp.SetStatus(s.Status, s.StatusMessage)
		}
		sp.End(trace.WithTimestamp(base.Add(s.End)))
		return sp.SpanContext()
	}
	// A fresh root: never a child of whatever span ctx may carry.
	return rec(trace.ContextWithSpanContext(ctx, trace.SpanContext{}), r.Root).TraceID()
}

// Shutdown flushes every provider's spans and stops them, leaf services
// first, within ctx.
func (e *Emitter) Shutdown(ctx context.Context) error {
	var errs []error
	for _, key := range e.order {
		if err := e.providers[key].Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush spans of %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}
