package export

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
)

// BenchmarkExportGRPC measures spans/s through Export, batching and gRPC
// to a sink on loopback that decodes every request with pdata (so the sink
// shares the CPU with the exporter). Each Export carries 100 spans.
func BenchmarkExportGRPC(b *testing.B) {
	for _, compression := range []string{CompressionNone, CompressionGzip} {
		b.Run(compression, func(b *testing.B) {
			sink := otlptest.NewSink(b)
			cfg := DefaultConfig()
			cfg.OTLP = &OTLPConfig{Endpoint: sink.GRPCAddr(), Compression: compression}
			benchExport(b, cfg, nil)
			if got := sink.SpanCount(); got != b.N*100 {
				b.Errorf("sink received %d spans, want %d", got, b.N*100)
			}
		})
	}
}

// BenchmarkExportQueue measures the queue and batching alone, with a
// client that accepts everything at once.
func BenchmarkExportQueue(b *testing.B) {
	cfg := DefaultConfig()
	cfg.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:1"}
	benchExport(b, cfg, &fakeClient{discard: true})
}

func benchExport(b *testing.B, cfg Config, fc *fakeClient) {
	const spans = 100
	var gen spanGen
	req, _ := gen.request(b, spans)
	e, err := New(cfg, Settings{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	if fc != nil {
		e.client = fc
	}
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		// Export takes ownership, so each call gets its own copy, as the
		// sampler's freshly encoded requests would be.
		if err := e.Export(ctx, append([]byte(nil), req...), spans); err != nil {
			b.Fatal(err)
		}
	}
	// Up to queue.max_spans may still be queued: the rate counts the
	// time until Shutdown has flushed them.
	if err := e.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*spans)/time.Since(start).Seconds(), "spans/s")
}
