package export

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/goleak"

	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// spanGen makes export requests whose spans have unique IDs and names
// "span-<n>", n counting from 0 across all requests of the generator.
type spanGen struct{ next int }

// request returns an encoded ExportTraceServiceRequest of n spans and
// their names.
func (g *spanGen) request(t testing.TB, n int) ([]byte, []string) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("test")
	var names []string
	for range n {
		i := g.next
		g.next++
		sp := ss.Spans().AppendEmpty()
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[8:], uint64(i/4+1)) // 4 spans per trace
		var sid pcommon.SpanID
		binary.BigEndian.PutUint64(sid[:], uint64(i+1))
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		name := fmt.Sprintf("span-%d", i)
		sp.SetName(name)
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + i))
		sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + i + 1000))
		sp.Attributes().PutStr("http.route", "/api/checkout")
		names = append(names, name)
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b, names
}

// spanNames returns the names of every span in td, sorted.
func spanNames(td ptrace.Traces) []string {
	var out []string
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				out = append(out, spans.At(k).Name())
			}
		}
	}
	slices.Sort(out)
	return out
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// testConfig is a valid gRPC config with small, round numbers.
func testConfig(endpoint string) Config {
	cfg := DefaultConfig()
	cfg.OTLP = &OTLPConfig{Endpoint: endpoint}
	cfg.Queue = QueueConfig{
		MaxSpans: 100, MaxBatchSpans: 30, MaxBatchBytes: units.Bytes(1 << 20),
		BatchTimeout: units.Duration(200 * time.Millisecond), Senders: 1,
	}
	cfg.Retry = RetryConfig{
		InitialInterval: units.Duration(time.Second),
		MaxInterval:     units.Duration(4 * time.Second),
		MaxElapsed:      units.Duration(time.Minute),
	}
	return cfg
}

// metricValue returns the value of the named counter or gauge, or the
// sample count of a histogram, checking its exporter label.
func metricValue(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s: %d series, want 1", name, len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "exporter" || m.GetLabel()[0].GetValue() != kind {
			t.Fatalf("%s: labels %v, want exporter=%q", name, m.GetLabel(), kind)
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// counts are the span counters, for one comparison.
type counts struct {
	Sent, Failed, Dropped, Retries float64
}

func readCounts(t *testing.T, reg *prometheus.Registry, kind string) counts {
	t.Helper()
	return counts{
		Sent:    metricValue(t, reg, "tailgate_exporter_sent_spans_total", kind),
		Failed:  metricValue(t, reg, "tailgate_exporter_failed_spans_total", kind),
		Dropped: metricValue(t, reg, "tailgate_exporter_abandoned_spans_total", kind),
		Retries: metricValue(t, reg, "tailgate_exporter_retries_total", kind),
	}
}

// fakeCall is one send the fake client saw.
type fakeCall struct {
	at    time.Time
	spans int
	reqs  int
	data  []byte
}

// fakeClient is an in-memory client for synctest tests: respond decides
// each attempt's outcome, hold (when set) blocks attempts until it is
// closed or the attempt's context ends.
type fakeClient struct {
	mu      sync.Mutex
	calls   []fakeCall
	respond func(call int) (partialSuccess, error)
	hold    chan struct{}
	closed  bool
	discard bool // record nothing (benchmarks)
}

func (f *fakeClient) start(context.Context) error { return nil }

func (f *fakeClient) send(ctx context.Context, b *batch) (partialSuccess, error) {
	if f.discard {
		return partialSuccess{}, nil
	}
	f.mu.Lock()
	call := len(f.calls)
	f.calls = append(f.calls, fakeCall{at: time.Now(), spans: b.spans, reqs: len(b.reqs), data: b.bytes()})
	hold, respond := f.hold, f.respond
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return partialSuccess{}, retryable(ctx.Err(), 0)
		}
	}
	if respond == nil {
		return partialSuccess{}, nil
	}
	return respond(call)
}

func (f *fakeClient) shutdown(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeClient) snapshot() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// startFake creates and starts an exporter that sends through fc, with
// jitter disabled (every backoff wait is exactly the current interval).
func startFake(t *testing.T, cfg Config, fc *fakeClient) (*Exporter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(cfg, Settings{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	e.client = fc
	e.jitter = 0
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e, reg
}
