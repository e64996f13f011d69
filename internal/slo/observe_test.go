package slo

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/goleak"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testSpan describes a span to encode.
type testSpan struct {
	service  string
	resAttrs map[string]string
	name     string
	kind     ptrace.SpanKind
	err      bool
	http     int64
	grpc     int64 // -1: none
	dur      time.Duration
	end      time.Time
	attrs    map[string]any
}

// request encodes spans as an ExportTraceServiceRequest with the pdata
// library and parses it with otlp.Parse, as ingest does.
func request(t testing.TB, spans ...testSpan) *otlp.Request {
	t.Helper()
	td := ptrace.NewTraces()
	var ss ptrace.ScopeSpans
	for i, s := range spans {
		// Consecutive spans of one service without resource attributes
		// share a resource, as an SDK's batch does.
		if i == 0 || s.service != spans[i-1].service || len(s.resAttrs) > 0 || len(spans[i-1].resAttrs) > 0 {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", s.service)
			for k, v := range s.resAttrs {
				rs.Resource().Attributes().PutStr(k, v)
			}
			ss = rs.ScopeSpans().AppendEmpty()
		}
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1, byte(i + 1)})
		sp.SetSpanID(pcommon.SpanID{2, byte(i + 1)})
		sp.SetName(s.name)
		sp.SetKind(s.kind)
		end := s.end
		if end.IsZero() {
			end = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-s.dur)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		if s.err {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		if s.http != 0 {
			sp.Attributes().PutInt("http.response.status_code", s.http)
		}
		if s.grpc >= 0 && s.grpc != 0 {
			sp.Attributes().PutInt("rpc.grpc.status_code", s.grpc)
		}
		for k, v := range s.attrs {
			switch v := v.(type) {
			case string:
				sp.Attributes().PutStr(k, v)
			case int:
				sp.Attributes().PutInt(k, int64(v))
			case bool:
				sp.Attributes().PutBool(k, v)
			}
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	var req otlp.Request
	if err := otlp.Parse(b, otlp.Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	if req.Rejected > 0 {
		t.Fatalf("rejected spans: %s", req.RejectReason)
	}
	return &req
}

func srv(service, name string) testSpan {
	return testSpan{service: service, name: name, kind: ptrace.SpanKindServer, dur: 100 * time.Millisecond}
}

func (s testSpan) with(f func(*testSpan)) testSpan { f(&s); return s }

func TestObserveCounts(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 30, 0, time.UTC)
	spec := func(name string, f func(*Spec)) Spec {
		s := Spec{Name: name, Service: "checkout", Objective: 99, Window: units.Duration(30 * 24 * time.Hour), SLI: SLISpec{Kind: Availability}}
		f(&s)
		return s
	}
	specs := []Spec{
		spec("all", func(*Spec) {}),
		spec("route", func(s *Spec) { s.SLI.Filter = map[string]string{"http.route": "/api/checkout"} }),
		spec("name", func(s *Spec) { s.SLI.Filter = map[string]string{"span_name": "POST /pay"} }),
		spec("attr", func(s *Spec) { s.SLI.Filter = map[string]string{"tenant": "acme", "http.request.retries": "0"} }),
		spec("res", func(s *Spec) { s.SLI.Filter = map[string]string{"resource.deployment.environment": "prod"} }),
		spec("strict", func(s *Spec) { s.SLI.ClientErrorsBad = true }),
		spec("latency", func(s *Spec) { s.SLI = SLISpec{Kind: Latency, Threshold: units.Duration(300 * time.Millisecond)} }),
		spec("other", func(s *Spec) { s.Service = "search" }),
	}
	e, err := NewEngine(specs, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	req := request(t,
		srv("checkout", "GET /"),
		srv("checkout", "POST /pay").with(func(s *testSpan) { s.err = true; s.attrs = map[string]any{"http.route": "/api/checkout"} }),
		srv("checkout", "POST /pay").with(func(s *testSpan) { s.http = 503; s.dur = 300 * time.Millisecond }),
		srv("checkout", "GET /x").with(func(s *testSpan) { s.http = 404; s.dur = 301 * time.Millisecond }),
		srv("checkout", "GET /x").with(func(s *testSpan) { s.grpc = 14; s.attrs = map[string]any{"tenant": "acme", "http.request.retries": 0} }),
		srv("checkout", "GET /x").with(func(s *testSpan) { s.grpc = 5; s.attrs = map[string]any{"tenant": "acme", "http.request.retries": 1} }),
		srv("checkout", "GET /y").with(func(s *testSpan) {
			s.kind = ptrace.SpanKindConsumer
			s.resAttrs = map[string]string{"deployment.environment": "prod"}
		}),
		// Not requests of checkout: client, internal, another service.
		srv("checkout", "GET /z").with(func(s *testSpan) { s.kind = ptrace.SpanKindClient; s.err = true }),
		srv("checkout", "GET /z").with(func(s *testSpan) { s.kind = ptrace.SpanKindInternal; s.err = true }),
		srv("search", "GET /q").with(func(s *testSpan) { s.err = true }),
	)
	e.Observe(req, now)
	type gt struct{ Good, Total float64 }
	want := map[string]gt{
		"all":     {4, 7}, // bad: ERROR, 503, UNAVAILABLE(14); NOT_FOUND(5) and 404 are good
		"route":   {0, 1},
		"name":    {0, 2},
		"attr":    {0, 1},
		"res":     {1, 1},
		"strict":  {3, 7}, // the 404 is bad too
		"latency": {6, 7}, // 300ms is good, 301ms is not
		"other":   {0, 1},
	}
	got := map[string]gt{}
	for _, s := range e.List(now) {
		got[s.Name] = gt{s.Good, s.Total}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("good/total (-want +got):\n%s", diff)
	}
}

func TestObserveGroups(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 30, 0, time.UTC)
	e, err := NewEngine([]Spec{{Name: "routes", Service: "api", Objective: 99, Window: units.Duration(24 * time.Hour),
		SLI: SLISpec{Kind: Availability, GroupBy: "http.route", MaxGroups: 2}}}, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	route := func(r string, bad bool) testSpan {
		return srv("api", "op").with(func(s *testSpan) {
			s.err = bad
			if r != "" {
				s.attrs = map[string]any{"http.route": r}
			}
		})
	}
	e.Observe(request(t, route("/a", false), route("/a", true), route("/b", false), route("/c", true), route("/d", false), route("", true)), now)
	st, _ := e.Status("routes", now)
	got := map[string][2]float64{}
	for _, g := range st.Groups {
		got[g.Group] = [2]float64{g.Good, g.Total}
	}
	// /a and /b take the two groups; /c and /d share (other); a span
	// without the route has its own bucket beyond the bound.
	want := map[string][2]float64{"/a": {1, 2}, "/b": {1, 1}, GroupOther: {1, 2}, GroupMissing: {0, 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if st.Total != 6 || st.Good != 3 {
		t.Errorf("aggregate good/total = %v/%v, want 3/6", st.Good, st.Total)
	}
}

func TestObserveSkew(t *testing.T) {
	now := time.Date(2024, 6, 1, 12, 0, 30, 0, time.UTC)
	spec := Spec{Name: "s", Service: "svc", Objective: 99, Window: units.Duration(24 * time.Hour), SLI: SLISpec{Kind: Availability}}
	at := func(end time.Time) testSpan { return srv("svc", "op").with(func(s *testSpan) { s.end = end }) }
	spans := []testSpan{
		at(now),
		at(now.Add(4 * time.Minute)),
		at(now.Add(-4 * time.Minute)),
		at(now.Add(10 * time.Minute)),                   // future
		at(now.Add(-2 * time.Hour)),                     // far past
		at(time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC)), // ancient
		at(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)), // far future
	}
	tests := []struct {
		name      string
		skew      time.Duration
		wantTotal float64
		rejected  uint64
	}{
		{"counted at arrival", 0, 7, 0},
		{"bounded", 5 * time.Minute, 3, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEngine([]Spec{spec}, Settings{Config: EngineConfig{MaxSkew: units.Duration(tt.skew)}})
			if err != nil {
				t.Fatal(err)
			}
			e.Observe(request(t, spans...), now)
			st, _ := e.Status("s", now)
			if st.Total != tt.wantTotal {
				t.Errorf("total = %v, want %v", st.Total, tt.wantTotal)
			}
			// Whatever their timestamps, spans land in the arrival minute.
			if w := st.Windows[0]; w.Window != "5m" || w.Total != tt.wantTotal {
				t.Errorf("5m window total = %v, want %v", w.Total, tt.wantTotal)
			}
			if got := e.skewRejected.Load(); got != tt.rejected {
				t.Errorf("rejected = %d, want %d", got, tt.rejected)
			}
		})
	}
}

func TestObserveMinuteRollover(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := NewEngine([]Spec{{Name: "s", Service: "svc", Objective: 99, Window: units.Duration(time.Hour), SLI: SLISpec{Kind: Availability}}}, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	// Each span ends as it arrives.
	observe := func(at time.Time, bad bool) {
		e.Observe(request(t, srv("svc", "op").with(func(s *testSpan) { s.end, s.err = at, bad })), at)
	}
	observe(t0.Add(10*time.Second), false)
	observe(t0.Add(59*time.Second), true)
	observe(t0.Add(60*time.Second), false) // next minute
	observe(t0.Add(3*time.Minute+5*time.Second), false)
	st, _ := e.Status("s", t0.Add(3*time.Minute+10*time.Second))
	if st.Good != 3 || st.Total != 4 {
		t.Errorf("good/total = %v/%v, want 3/4", st.Good, st.Total)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	m0 := units.MinuteOf(t0)
	for _, c := range []struct {
		m           units.Minute
		good, total uint64
	}{{m0, 1, 2}, {m0 + 1, 1, 1}, {m0 + 2, 0, 0}} {
		g, tot := e.slos[0].agg.ev.at(c.m)
		if g != c.good || tot != c.total {
			t.Errorf("minute %d: %d/%d, want %d/%d", c.m-m0, g, tot, c.good, c.total)
		}
	}
}
