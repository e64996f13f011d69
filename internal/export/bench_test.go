package export

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/units"
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

// BenchmarkExportPersistentQueue is BenchmarkExportQueue with the
// persistent queue: every request is written to a file and acknowledged
// after the (instant) send, with the default group commit (fsync every 1s).
func BenchmarkExportPersistentQueue(b *testing.B) {
	cfg := DefaultConfig()
	cfg.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:1"}
	cfg.Queue.Persistent = true
	benchExport(b, cfg, &fakeClient{discard: true})
}

// BenchmarkPersistentQueue measures one request's trip through the
// persistent queue alone: written, read back by a sender, acknowledged.
// Requests of 100 spans (about 10KiB) as in the Export benchmarks, and of
// 8192 spans (one full sampler batch), with the default group commit and
// with an fsync per request (fsync_interval: 0).
func BenchmarkPersistentQueue(b *testing.B) {
	for _, spans := range []int{100, 8192} {
		for _, fsync := range []time.Duration{time.Second, 0} {
			b.Run(fmt.Sprintf("spans=%d/fsync=%s", spans, fsync), func(b *testing.B) {
				var gen spanGen
				req, _ := gen.request(b, spans)
				qc := DefaultConfig().Queue
				qc.Persistent = true
				qc.BatchTimeout = 0
				qc.FsyncInterval = units.Duration(fsync)
				q := newPQueue(b.TempDir(), qc, slog.New(slog.DiscardHandler), prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}))
				if _, err := q.open(); err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				b.ReportAllocs()
				b.SetBytes(int64(len(req)))
				start := time.Now()
				for b.Loop() {
					if err := q.put(ctx, req, spans); err != nil {
						b.Fatal(err)
					}
					bt, ok := q.next()
					if !ok {
						b.Fatal("queue stopped")
					}
					q.finish(bt, true)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "batches/s")
				q.close()
				if _, _, err := q.shutdown(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

func benchExport(b *testing.B, cfg Config, fc *fakeClient) {
	const spans = 100
	var gen spanGen
	req, _ := gen.request(b, spans)
	e, err := New(cfg, Settings{Registerer: prometheus.NewRegistry(), StorageDir: b.TempDir()})
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
