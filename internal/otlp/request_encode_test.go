package otlp

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// parsed returns td's OTLP encoding and the Request parsed from it.
func parsed(t *testing.T, td ptrace.Traces) ([]byte, *Request) {
	t.Helper()
	body := marshal(t, td)
	req := new(Request)
	if err := Parse(body, Limits{}, req); err != nil {
		t.Fatal(err)
	}
	return body, req
}

// TestAppendRequestRoundTrip: a request re-encoded from its parsed spans
// (after dropping some, as partial rejection does) decodes with pdata to
// exactly the kept spans under their resources and scopes.
func TestAppendRequestRoundTrip(t *testing.T) {
	td := ptrace.NewTraces()
	for r, svc := range []string{"checkout", "payments"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
		for s := range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("lib" + string(rune('a'+s)))
			for k := range 3 {
				sp := ss.Spans().AppendEmpty()
				sp.SetName(svc + "-" + string(rune('0'+k)))
				sp.SetTraceID([16]byte{byte(r + 1), byte(s + 1), byte(k + 1)})
				sp.SetSpanID([8]byte{byte(r + 1), byte(s + 1), byte(k + 1)})
				sp.SetKind(ptrace.SpanKindServer)
				sp.SetStartTimestamp(1_700_000_000_000_000_000)
				sp.SetEndTimestamp(1_700_000_000_100_000_000)
			}
		}
	}
	_, req := parsed(t, td)
	// Drop the middle span of every scope, as a filter would.
	kept := req.Spans[:0]
	var want []string
	for i, sp := range req.Spans {
		if i%3 != 1 {
			kept = append(kept, sp)
			want = append(want, string(sp.Name()))
		}
	}
	req.Spans = kept
	var e Encoder
	out := e.AppendRequest(nil, req)
	er := ptraceotlp.NewExportRequest()
	if err := er.UnmarshalProto(out); err != nil {
		t.Fatal(err)
	}
	var got []string
	rss := er.Traces().ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		svc, _ := rs.Resource().Attributes().Get("service.name")
		if rs.SchemaUrl() != "https://opentelemetry.io/schemas/1.26.0" {
			t.Errorf("resource %d schema %q", i, rs.SchemaUrl())
		}
		for j := range rs.ScopeSpans().Len() {
			ss := rs.ScopeSpans().At(j)
			for k := range ss.Spans().Len() {
				sp := ss.Spans().At(k)
				if sp.Name()[:len(svc.Str())] != svc.Str() {
					t.Errorf("span %s under resource %s", sp.Name(), svc.Str())
				}
				if want := "lib" + string(rune('a'+(int(sp.TraceID()[1])-1))); ss.Scope().Name() != want {
					t.Errorf("span %s under scope %s, want %s", sp.Name(), ss.Scope().Name(), want)
				}
				got = append(got, sp.Name())
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("spans %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("spans %v, want %v", got, want)
		}
	}
}

// TestAppendRequestFuncNoAllocs: re-encoding a request into a buffer with
// room allocates nothing once the encoder has served one request (the
// write-ahead log encodes every request's entry spans this way).
func TestAppendRequestFuncNoAllocs(t *testing.T) {
	td := ptrace.NewTraces()
	for r := range 3 {
		ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		for k := range 50 {
			sp := ss.Spans().AppendEmpty()
			sp.SetName("op")
			sp.SetTraceID([16]byte{byte(r + 1), byte(k + 1)})
			sp.SetSpanID([8]byte{byte(r + 1), byte(k + 1)})
			sp.SetKind(ptrace.SpanKindServer)
		}
	}
	body, req := parsed(t, td)
	var e Encoder
	buf := e.AppendRequestFunc(nil, req, nil)
	if allocs := testing.AllocsPerRun(100, func() { buf = e.AppendRequestFunc(buf[:0], req, nil) }); allocs != 0 {
		t.Errorf("%.1f allocations per request, want 0", allocs)
	}
	if len(buf) < len(body)/2 {
		t.Errorf("encoded %d bytes of a %d-byte request", len(buf), len(body))
	}
}

// TestAppendResourceSpansNoAllocs: encoding kept spans with the sampling
// attributes and a merged tracestate (every kept trace's export)
// allocates nothing once the encoder has served one call.
func TestAppendResourceSpansNoAllocs(t *testing.T) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for k := range 10 {
		sp := ss.Spans().AppendEmpty()
		sp.SetName("op")
		sp.SetTraceID([16]byte{1, byte(k + 1)})
		sp.SetSpanID([8]byte{1, byte(k + 1)})
		sp.TraceState().FromRaw("vendor=x,ot=rv:00000000000001")
	}
	_, req := parsed(t, td)
	spans := make([][]byte, len(req.Spans))
	for i := range req.Spans {
		spans[i] = req.Spans[i].Raw
	}
	g := Group{Resource: req.Resources[0].Raw, Scope: req.Scopes[0].Raw}
	ext := Extension{Rate: 20, Rule: "rest", Threshold: "f333333333333"}
	var e Encoder
	buf := e.AppendResourceSpans(nil, &g, spans, &ext)
	if allocs := testing.AllocsPerRun(100, func() { buf = e.AppendResourceSpans(buf[:0], &g, spans, &ext) }); allocs != 0 {
		t.Errorf("%.1f allocations per call, want 0", allocs)
	}
}
