package sampler

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"runtime"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// benchRequest is an encoded request of tracesPerReq 10-span traces, with
// the offsets of every span's trace ID so each use can get fresh IDs.
type benchRequest struct {
	b       []byte
	idOffs  [][]int // per trace, the offsets of its spans' trace IDs
	encoded int     // total encoded size of the spans
	spans   int
}

const tracesPerReq = 10

func newBenchRequest(tb testing.TB) *benchRequest { return newBenchRequestWith(tb, nil) }

// sdkResource is what an OpenTelemetry SDK puts on a resource besides
// service.name: about 350 bytes encoded, three times a small span.
var sdkResource = map[string]any{
	"telemetry.sdk.name": "opentelemetry", "telemetry.sdk.language": "go", "telemetry.sdk.version": "1.47.0",
	"host.name": "checkout-7d9f8b6c5-x2x9q", "host.arch": "amd64", "os.type": "linux",
	"os.description": "Debian GNU/Linux 12 (bookworm)", "process.pid": 48213,
	"process.executable.name": "checkout", "process.runtime.name": "go",
	"process.runtime.version": "go1.26.8", "process.runtime.description": "go version go1.26.8 linux/amd64",
	"k8s.namespace.name": "shop", "k8s.pod.name": "checkout-7d9f8b6c5-x2x9q",
}

// newBenchRequestWith builds the benchmark request with extra resource
// attributes on every resource.
func newBenchRequestWith(tb testing.TB, extraRes map[string]any) *benchRequest {
	var specs []spanSpec
	for i := range tracesPerReq {
		id := traceID(uint64(i)+1, uint64(i)*0x0101010101+0x1234)
		for j := range 10 {
			svc := "frontend"
			if j >= 5 {
				svc = "checkout"
			}
			s := spanSpec{trace: id, id: uint64(j + 1), parent: uint64(j), name: "GET /api/cart", service: svc,
				kind: ptrace.SpanKindServer, start: time.Duration(j) * time.Millisecond, dur: 5 * time.Millisecond,
				attrs: map[string]any{"http.route": "/api/cart", "http.request.method": "GET", "http.response.status_code": 200,
					"user.tier": "gold"},
				res: map[string]any{"deployment.environment": "prod", "service.version": "1.4.2"}}
			maps.Copy(s.res, extraRes)
			if j > 0 {
				s.kind, s.name = ptrace.SpanKindInternal, "render"
				s.attrs = map[string]any{"component": "template", "items": 3}
			}
			if i == 0 && j == 3 {
				s.err = true // one trace in ten is an error trace
			}
			specs = append(specs, s)
		}
	}
	br := &benchRequest{b: marshal(tb, specs)}
	req := parse(tb, br.b)
	br.idOffs = make([][]int, tracesPerReq)
	for i := range req.Spans {
		sp := &req.Spans[i]
		base := cap(br.b) - cap(sp.Raw)
		k := bytes.Index(sp.Raw, sp.TraceID[:])
		if k < 0 {
			tb.Fatal("trace ID not found in span")
		}
		t := int(binary.BigEndian.Uint64(sp.TraceID[0:8])&^(1<<63)) - 1
		br.idOffs[t] = append(br.idOffs[t], base+k)
		br.encoded += len(sp.Raw)
		br.spans++
	}
	return br
}

// renew gives every trace of the request a fresh, random-looking ID.
func (br *benchRequest) renew(seq *uint64) {
	for _, offs := range br.idOffs {
		*seq++
		var id [16]byte
		binary.BigEndian.PutUint64(id[0:8], *seq)
		binary.BigEndian.PutUint64(id[8:16], mix64(*seq))
		for _, off := range offs {
			copy(br.b[off:off+16], id[:])
		}
	}
}

// discardExporter counts what it is given; with discards set it is a
// Discarder, as the none exporter is.
type discardExporter struct {
	spans    int
	discards bool
}

func (d *discardExporter) Export(_ context.Context, _ []byte, n int) error {
	d.spans += n
	return nil
}

func (d *discardExporter) Discards() bool { return d.discards }

// BenchmarkPipeline measures parse -> Consume -> buffer -> decide -> encode
// for 10-span traces on the calling goroutine (run with -cpu 1 for one
// core). Fake time advances 10ms per request of 100 spans, so with the
// default 2s root_grace about 20k spans stay buffered. encode has an
// exporter that takes the kept spans encoded; discard one that throws them
// away (export kind none), for which they are not encoded.
func BenchmarkPipeline(b *testing.B) {
	b.Run("encode", func(b *testing.B) { benchPipeline(b, false) })
	b.Run("discard", func(b *testing.B) { benchPipeline(b, true) })
}

func benchPipeline(b *testing.B, discards bool) {
	br := newBenchRequest(b)
	cfg := DefaultConfig()
	cfg.Shards = 1
	exp := &discardExporter{discards: discards}
	s, err := New(cfg, Settings{Exporter: exp})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	s.now = func() time.Time { return now }
	var req otlp.Request
	var seq uint64
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(br.b)))
	for b.Loop() {
		br.renew(&seq)
		req.Reset()
		if err := otlp.Parse(br.b, otlp.Limits{}, &req); err != nil {
			b.Fatal(err)
		}
		if err := s.Consume(ctx, &req); err != nil {
			b.Fatal(err)
		}
		s.processSync()
		now = now.Add(10 * time.Millisecond)
		s.tickSync(now)
	}
	b.ReportMetric(float64(b.N*br.spans)/b.Elapsed().Seconds(), "spans/s")
	b.StopTimer()
	_ = s.Shutdown(ctx)
	if exp.spans == 0 {
		b.Fatal("nothing exported")
	}
}

// BenchmarkBufferMemory buffers 100k spans (10k traces) and reports the
// heap they take per span against their encoded size.
// BenchmarkBufferMemory measures heap per buffered span against the span's
// own encoded size, with small resources and with SDK-sized ones (which the
// shard shares between traces instead of copying into each).
func BenchmarkBufferMemory(b *testing.B) {
	b.Run("small-resource", func(b *testing.B) { benchBufferMemory(b, newBenchRequest(b)) })
	b.Run("sdk-resource", func(b *testing.B) { benchBufferMemory(b, newBenchRequestWith(b, sdkResource)) })
}

func benchBufferMemory(b *testing.B, br *benchRequest) {
	const requests = 1000
	var perSpan, ratio float64
	for b.Loop() {
		cfg := DefaultConfig()
		cfg.Shards = 1
		cfg.DecisionCache.MaxDroppedTraces = 1000
		s, err := New(cfg, Settings{Exporter: &discardExporter{}})
		if err != nil {
			b.Fatal(err)
		}
		var req otlp.Request
		var seq uint64
		ctx := context.Background()
		// Warm the pools and scratch space outside the measurement.
		br.renew(&seq)
		if err := otlp.Parse(br.b, otlp.Limits{}, &req); err != nil {
			b.Fatal(err)
		}
		if err := s.Consume(ctx, &req); err != nil {
			b.Fatal(err)
		}
		s.processSync()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range requests {
			br.renew(&seq)
			req.Reset()
			if err := otlp.Parse(br.b, otlp.Limits{}, &req); err != nil {
				b.Fatal(err)
			}
			if err := s.Consume(ctx, &req); err != nil {
				b.Fatal(err)
			}
			s.processSync()
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		spans := requests * br.spans
		if got := s.shards[0].nspans; got != int64(spans+br.spans) {
			b.Fatalf("%d spans buffered, want %d", got, spans+br.spans)
		}
		perSpan = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(spans)
		ratio = perSpan / (float64(br.encoded) / float64(br.spans))
		accounted := float64(s.shards[0].nbytes) / float64(spans+br.spans)
		b.ReportMetric(accounted, "accounted-B/span")
		runtime.KeepAlive(s)
		_ = s.Shutdown(ctx)
	}
	b.ReportMetric(perSpan, "heap-B/span")
	b.ReportMetric(float64(br.encoded)/float64(br.spans), "encoded-B/span")
	b.ReportMetric(ratio, "x-encoded")
}

// BenchmarkSnapshotCopy measures what a periodic snapshot costs a shard:
// copying the non-zero words of a filter sized for the default
// max_dropped_traces over two shards (5M IDs) that holds 60,000 IDs (a
// 20-second load of 3,000 dropped traces a second).
func BenchmarkSnapshotCopy(b *testing.B) {
	f := filledBloom(5_000_000, 60_000, 1)
	var cb copyBuf
	f.snapshotCopy(&cb) // grows the storage, as a daemon's first snapshot does
	b.ReportAllocs()
	for b.Loop() {
		if c := f.snapshotCopy(&cb); len(c.sparseWords) == 0 {
			b.Fatal("empty copy")
		}
	}
}

// BenchmarkBloomAdd measures adding one dropped trace ID to a filter sized
// for the default max_dropped_traces over two shards (5M IDs): a cache miss
// on a random block, plus the counts a snapshot copy relies on.
func BenchmarkBloomAdd(b *testing.B) {
	var shape bloomShape
	shape.bitsPerID, shape.k = bloomSize(0.001)
	f := newBloom(5_000_000, shape, 1)
	i := uint64(0)
	for b.Loop() {
		i++
		id := traceID(i, mix64(i))
		f.add(&id, 1)
	}
	if f.nonzero() == 0 {
		b.Fatal("no bit set")
	}
}
