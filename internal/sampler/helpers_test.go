package sampler

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/units"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// spanSpec describes a test span.
type spanSpec struct {
	trace   otlp.TraceID
	id      uint64 // span ID as a number, must be non-zero
	parent  uint64 // 0 for a root span
	name    string
	service string
	kind    ptrace.SpanKind
	err     bool
	start   time.Duration // offset from a fixed epoch
	dur     time.Duration
	attrs   map[string]any // string, int, bool or float64
	res     map[string]any // extra resource attributes
	state   string         // W3C tracestate
}

var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func spanID(n uint64) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], n)
	return id
}

// traceID makes a trace ID whose sampling randomness (bytes 9..15) is r
// and whose first bytes hold n.
func traceID(n uint64, r uint64) otlp.TraceID {
	var id otlp.TraceID
	binary.BigEndian.PutUint64(id[0:8], n|1<<63)
	binary.BigEndian.PutUint64(id[8:16], r&(1<<56-1))
	return id
}

// buildTraces builds pdata traces with one resource_spans per distinct
// (service, resource attributes) in order of first appearance.
func buildTraces(specs []spanSpec) ptrace.Traces {
	td := ptrace.NewTraces()
	type key struct{ svc, res string }
	scopes := map[key]ptrace.ScopeSpans{}
	for _, s := range specs {
		k := key{s.service, resKey(s.res)}
		ss, ok := scopes[k]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", s.service)
			otlptest.PutAttrs(rs.Resource().Attributes(), s.res)
			ss = rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("tailgate-test")
			ss.Scope().SetVersion("1.0")
			scopes[k] = ss
		}
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(s.trace))
		sp.SetSpanID(spanID(s.id))
		if s.parent != 0 {
			sp.SetParentSpanID(spanID(s.parent))
		}
		name := s.name
		if name == "" {
			name = "op"
		}
		sp.SetName(name)
		sp.SetKind(s.kind)
		start := epoch.Add(s.start)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(s.dur)))
		if s.err {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		otlptest.PutAttrs(sp.Attributes(), s.attrs)
		if s.state != "" {
			sp.TraceState().FromRaw(s.state)
		}
	}
	return td
}

func resKey(m map[string]any) string {
	var b strings.Builder
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		switch v := m[k].(type) {
		case string:
			b.WriteString(v)
		default:
			b.WriteString("?")
		}
		b.WriteByte(';')
	}
	return b.String()
}

func marshal(t testing.TB, specs []spanSpec) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(buildTraces(specs)).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t testing.TB, b []byte) *otlp.Request {
	t.Helper()
	var req otlp.Request
	if err := otlp.Parse(b, otlp.Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	if req.Rejected != 0 {
		t.Fatalf("rejected spans: %s", req.RejectReason)
	}
	return &req
}

// simpleTrace is a trace of n spans: a root server span and children.
func simpleTrace(id otlp.TraceID, n int, service string, withRoot bool) []spanSpec {
	var out []spanSpec
	for i := range n {
		s := spanSpec{trace: id, id: uint64(i + 1), parent: uint64(i), name: "child", service: service,
			kind: ptrace.SpanKindInternal, start: time.Duration(i) * time.Millisecond, dur: time.Millisecond}
		if i == 0 {
			s.parent, s.name, s.kind, s.dur = 0, "GET /", ptrace.SpanKindServer, 10*time.Millisecond
			if !withRoot {
				s.parent = 999
			}
		}
		out = append(out, s)
	}
	return out
}

// fakeExporter records what it is given. While gate is set, Export waits
// for it to be closed (or ctx to end).
type fakeExporter struct {
	mu    sync.Mutex
	reqs  [][]byte
	spans int
	gate  chan struct{}
	// discards makes it a Discarder that throws requests away; it then
	// wants every request empty.
	discards bool
}

func (e *fakeExporter) Discards() bool { return e.discards }

func (e *fakeExporter) Export(ctx context.Context, req []byte, spans int) error {
	e.mu.Lock()
	gate := e.gate
	e.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if e.discards && len(req) > 0 {
		panic("a discarding exporter was given an encoded request")
	}
	if got := otlp.CountSpans(req); !e.discards && got != spans {
		panic("span count mismatch")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reqs = append(e.reqs, req)
	e.spans += spans
	return nil
}

func (e *fakeExporter) spanCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.spans
}

// keptSpan is a span decoded from what the exporter received.
type keptSpan struct {
	Trace      otlp.TraceID
	Span       uint64
	Name       string
	Service    string
	Rule       string
	Rate       float64
	TraceState string
	Partial    bool // sampling.partial=true
}

// kept decodes every request the exporter received with pdata.
func (e *fakeExporter) kept(t testing.TB) []keptSpan {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []keptSpan
	for _, b := range e.reqs {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			t.Fatalf("exported request does not decode: %v", err)
		}
		rss := req.Traces().ResourceSpans()
		for i := range rss.Len() {
			rs := rss.At(i)
			svc, _ := rs.Resource().Attributes().Get("service.name")
			for j := range rs.ScopeSpans().Len() {
				spans := rs.ScopeSpans().At(j).Spans()
				for k := range spans.Len() {
					sp := spans.At(k)
					ks := keptSpan{Trace: otlp.TraceID(sp.TraceID()), Name: sp.Name(), Service: svc.Str(),
						TraceState: sp.TraceState().AsRaw()}
					sid := sp.SpanID()
					ks.Span = binary.BigEndian.Uint64(sid[:])
					if v, ok := sp.Attributes().Get("sampling.rule"); ok {
						ks.Rule = v.Str()
					}
					if v, ok := sp.Attributes().Get("sampling.rate"); ok {
						ks.Rate = v.Double()
					}
					if v, ok := sp.Attributes().Get("sampling.partial"); ok {
						ks.Partial = v.Bool()
					}
					out = append(out, ks)
				}
			}
		}
	}
	return out
}

func keptTraces(spans []keptSpan) map[otlp.TraceID]int {
	m := map[otlp.TraceID]int{}
	for _, s := range spans {
		m[s.Trace]++
	}
	return m
}

// testConfig is a small, single-shard config.
func testConfig(rules ...RuleConfig) Config {
	c := DefaultConfig()
	c.Shards = 1
	c.DecisionCache.MaxDroppedTraces = 10000
	c.DecisionCache.MaxKeptTraces = 10000
	if len(rules) > 0 {
		c.Rules = rules
	}
	return c
}

func keepAll(name string) RuleConfig { return RuleConfig{Name: name, Keep: true} }
func dropAll(name string) RuleConfig { return RuleConfig{Name: name, Drop: true} }
func percent(name string, p float64) RuleConfig {
	return RuleConfig{Name: name, SamplePercent: &p}
}

func dur(d time.Duration) *units.Duration { u := units.Duration(d); return &u }

type testEnv struct {
	s   *Sampler
	exp *fakeExporter
	reg *prometheus.Registry
	log *lockedWriter
}

func newEnv(t testing.TB, cfg Config, set Settings) *testEnv {
	t.Helper()
	env := &testEnv{exp: &fakeExporter{}, reg: prometheus.NewRegistry(), log: &lockedWriter{w: &bytes.Buffer{}}}
	if set.Exporter == nil {
		set.Exporter = env.exp
	}
	set.Registerer = env.reg
	set.Logger = slog.New(slog.NewTextHandler(env.log, nil))
	s, err := New(cfg, set)
	if err != nil {
		t.Fatal(err)
	}
	env.s = s
	return env
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (env *testEnv) consume(t testing.TB, specs []spanSpec) error {
	t.Helper()
	return env.s.Consume(t.Context(), parse(t, marshal(t, specs)))
}

// metric returns the value of a counter or gauge with the given labels.
func (env *testEnv) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := env.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				value := ""
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] {
						value = l.GetValue()
					}
				}
				if value != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// processSync drains every shard's inbox on the calling goroutine, for
// samplers that were not started.
func (s *Sampler) processSync() {
	for _, sh := range s.shards {
		sh.drain()
	}
}

// tickSync advances every shard to now on the calling goroutine.
func (s *Sampler) tickSync(now time.Time) {
	for _, sh := range s.shards {
		sh.onTick(now.UnixNano())
	}
}

// buffered returns the buffered trace with the given ID.
func (s *Sampler) buffered(id otlp.TraceID) *Trace {
	return s.shards[s.shardOf(&id)].traces[id]
}

func ptraceotlpNewExportRequest() ptraceotlp.ExportRequest { return ptraceotlp.NewExportRequest() }

// filledBloom returns a dropped-ID filter sized for capacity IDs at the
// default false-positive rate, holding n distinct IDs added at now.
func filledBloom(capacity, n int, now int64) *bloom {
	var shape bloomShape
	shape.bitsPerID, shape.k = bloomSize(0.001)
	f := newBloom(capacity, shape, 1)
	for i := range n {
		id := traceID(uint64(i)+1, mix64(uint64(i)))
		f.add(&id, now)
	}
	return f
}
