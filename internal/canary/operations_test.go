package canary

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// span describes a span to encode.
type span struct {
	service, version string // version "" puts no service.version on the resource
	spanVersion      string // a span attribute version, for a custom attribute
	name, route      string
	kind             ptrace.SpanKind
	err              bool
	http, grpc       int64
	dur              time.Duration
	end              time.Time
}

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// encode builds an ExportTraceServiceRequest with the pdata library and
// parses it as ingest does; consecutive spans of one service and version
// share a resource.
func encode(tb testing.TB, spans ...span) *otlp.Request {
	tb.Helper()
	td := ptrace.NewTraces()
	var ss ptrace.ScopeSpans
	for i, s := range spans {
		if i == 0 || s.service != spans[i-1].service || s.version != spans[i-1].version {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", s.service)
			if s.version != "" {
				rs.Resource().Attributes().PutStr("service.version", s.version)
			}
			ss = rs.ScopeSpans().AppendEmpty()
		}
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1, byte(i), byte(i >> 8)})
		sp.SetSpanID(pcommon.SpanID{2, byte(i), byte(i >> 8)})
		sp.SetName(s.name)
		kind := s.kind
		if kind == 0 {
			kind = ptrace.SpanKindServer
		}
		sp.SetKind(kind)
		end := s.end
		if end.IsZero() {
			end = t0.Add(30 * time.Second)
		}
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-s.dur)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		if s.err {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		if s.http != 0 {
			sp.Attributes().PutInt("http.response.status_code", s.http)
		}
		if s.grpc != 0 {
			sp.Attributes().PutInt("rpc.grpc.status_code", s.grpc)
		}
		if s.route != "" {
			sp.Attributes().PutStr("http.route", s.route)
		}
		if s.spanVersion != "" {
			sp.Attributes().PutStr("app.version", s.spanVersion)
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		tb.Fatal(err)
	}
	req := new(otlp.Request)
	if err := otlp.Parse(b, otlp.Limits{}, req); err != nil {
		tb.Fatal(err)
	}
	return req
}

// at returns the time range of minute m of t0 (minute 0 is t0's).
func at(m int) (time.Time, time.Time) {
	t := t0.Add(time.Duration(m) * time.Minute)
	return t, t
}

func TestRecorderOperations(t *testing.T) {
	r := NewRecorder(RecorderConfig{Thresholds: map[string]time.Duration{"checkout": 200 * time.Millisecond}})
	now := t0.Add(40 * time.Second)
	req := encode(t,
		span{service: "checkout", version: "v2", name: "GET /cart", route: "/cart", http: 500, dur: 50 * time.Millisecond},
		span{service: "checkout", version: "v2", name: "GET /cart", route: "/cart", http: 404, dur: 300 * time.Millisecond}, // 4xx: the client's fault
		span{service: "checkout", version: "v2", name: "Pay", grpc: 14, dur: 2 * time.Second},                               // UNAVAILABLE: bad
		span{service: "checkout", version: "v2", name: "Pay", grpc: 5, dur: 10 * time.Millisecond},                          // NOT_FOUND: good
		span{service: "checkout", version: "v2", name: "call", kind: ptrace.SpanKindClient, err: true},                      // not an entry span
		span{service: "checkout", version: "v1", name: "GET /cart", route: "/cart", err: true, dur: 250 * time.Millisecond},
		span{service: "checkout", name: "GET /cart", route: "/cart"},                       // no version
		span{service: "search", version: "v9", name: "GET /", err: true},                   // another service
		span{service: "checkout", version: "v1", name: "q", kind: ptrace.SpanKindConsumer}, // consumer: entry
	)
	r.Observe(req, now)
	from, to := at(0)
	only := func(v string) func(string) bool { return func(x string) bool { return x == v } }
	got := r.Operations("checkout", only("v2"), from, to)
	want := map[string]Counts{
		"/cart": {Requests: 2, Errors: 1, Slow: 1},
		"Pay":   {Requests: 2, Errors: 1, Slow: 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("v2: %v, want %v", got, want)
	}
	got = r.Operations("checkout", only("v1"), from, to)
	want = map[string]Counts{"/cart": {Requests: 1, Errors: 1, Slow: 1}, "q": {Requests: 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("v1: %v, want %v", got, want)
	}
	if got := r.Operations("checkout", only(NoVersion), from, to)["/cart"].Requests; got != 1 {
		t.Errorf("spans without a version: %d, want 1", got)
	}
	if got := r.Operations("search", only("v9"), from, to)["GET /"]; got.Requests != 1 || got.Errors != 1 {
		t.Errorf("search: %+v, want its one failed request", got)
	}
	// The minute before holds nothing; the rows to store are the same
	// counts, one per version, operation and minute.
	if got := r.Operations("checkout", only("v2"), from.Add(-time.Minute), to.Add(-time.Minute)); len(got) != 0 {
		t.Errorf("minute before: %v", got)
	}
	var total uint64
	rows := r.Unstored()
	for _, row := range rows {
		if !row.Minute.Equal(t0) {
			t.Errorf("row in minute %s, want %s", row.Minute, t0)
		}
		total += row.Requests
	}
	if total != 8 || len(rows) != 6 {
		t.Errorf("%d rows hold %d requests, want 6 rows (v2 /cart, v2 Pay, v1 /cart, v1 q, (none) /cart, search) and 8", len(rows), total)
	}
}

func TestRecorderSpanVersionAndMinutes(t *testing.T) {
	r := NewRecorder(RecorderConfig{VersionAttributes: map[string]string{"pay": "app.version"}})
	// The attribute is on the spans: each span names its own version.
	r.Observe(encode(t,
		span{service: "pay", spanVersion: "a", name: "x", end: t0.Add(45 * time.Second)},
		span{service: "pay", spanVersion: "b", name: "x", err: true, end: t0.Add(45 * time.Second)},
		span{service: "pay", spanVersion: "b", name: "x", end: t0.Add(90 * time.Second)},
		// Ended an hour ago: beyond the lateness, counted in now's minute.
		span{service: "pay", spanVersion: "b", name: "x", end: t0.Add(-time.Hour)},
	), t0.Add(100*time.Second))
	b := func(v string) bool { return v == "b" }
	if got := r.Operations("pay", b, t0, t0)["x"]; got.Requests != 1 || got.Errors != 1 {
		t.Errorf("b in minute 0: %+v, want 1 request, 1 bad", got)
	}
	m1 := t0.Add(time.Minute)
	if got := r.Operations("pay", b, m1, m1)["x"]; got.Requests != 2 || got.Errors != 0 {
		t.Errorf("b in minute 1: %+v, want 2 requests (one clamped late)", got)
	}
	if got := r.Operations("pay", func(v string) bool { return v == "a" }, t0, m1)["x"].Requests; got != 1 {
		t.Errorf("a: %d requests, want 1", got)
	}
	// a arrived in minute 1 but its span ended in minute 0: a check from
	// its first minute must count it.
	if first, ok := r.FirstSeen("pay", "a"); !ok || !first.Equal(t0) {
		t.Errorf("a first seen %v, want %s, the minute its span ended in", first, t0)
	}
}

func TestRecorderMaxOperations(t *testing.T) {
	r := NewRecorder(RecorderConfig{MaxOperations: 2})
	var spans []span
	for i := range 5 {
		spans = append(spans, span{service: "s", version: "v", name: fmt.Sprintf("op%d", i)})
	}
	r.Observe(encode(t, spans...), t0.Add(40*time.Second))
	got := r.Operations("s", func(string) bool { return true }, t0, t0)
	if len(got) != 3 || got[OtherOperation].Requests != 3 {
		t.Errorf("%v: want op0, op1 and 3 requests under %s", got, OtherOperation)
	}
}

// observeMinute feeds n requests of a version and operation, bad of them
// failed, in the minute starting at at.
func observeMinute(tb testing.TB, r *Recorder, service, version, op string, n, bad int, at time.Time) {
	tb.Helper()
	spans := make([]span, n)
	for i := range spans {
		spans[i] = span{service: service, version: version, name: op, err: i < bad, end: at.Add(30 * time.Second)}
	}
	r.Observe(encode(tb, spans...), at.Add(40*time.Second))
}

// clockAt is a settable clock.
type clockAt struct{ t time.Time }

func (c *clockAt) now() time.Time { return c.t }

func TestCheck(t *testing.T) {
	r := NewRecorder(RecorderConfig{})
	clock := &clockAt{t0.Add(time.Minute)}
	c := NewChecker(r, Config{}, nil, clock.now)
	req := CheckRequest{Service: "checkout", Canary: "v2", Since: t0}
	check := func() CheckResult {
		t.Helper()
		res, err := c.Check(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if v := check(); v.Verdict.Verdict != Inconclusive || v.Rule != "no_canary_traffic" {
		t.Errorf("no data: %s by %s", v.Verdict.Verdict, v.Rule)
	}
	observeMinute(t, r, "checkout", "v2", "GET /", 100, 0, t0)
	if v := check(); v.Verdict.Verdict != Inconclusive || v.Rule != "no_baseline_traffic" || !strings.Contains(v.Reason, "baseline") {
		t.Errorf("no baseline: %s by %s (%s)", v.Verdict.Verdict, v.Rule, v.Reason)
	}
	// Three minutes: the canary fails 20% (60 of 300), the baseline
	// 0.5% (15 of 3,000). One side each in a minute.
	for i := range 3 {
		at := t0.Add(time.Duration(i+1) * time.Minute)
		observeMinute(t, r, "checkout", "v2", "GET /", 100, 20, at)
		observeMinute(t, r, "checkout", "v1", "GET /", 1000, 5, at)
	}
	clock.t = t0.Add(4 * time.Minute)
	v := check()
	if v.Verdict.Verdict != Fail || v.Rule != "error_ratio" {
		t.Fatalf("bad canary: %s by %s (%s)", v.Verdict.Verdict, v.Rule, v.Reason)
	}
	// 400 canary requests (100 good first), 60 bad; 3,000 of the baseline.
	if v.Canary.Requests != 400 || v.Canary.Errors != 60 || v.Baseline.Requests != 3000 || v.Baseline.Errors != 15 {
		t.Errorf("counts %+v %+v", v.Canary, v.Baseline)
	}
	// A check begun later sees only its minutes; a named baseline that
	// never ran has no traffic.
	req.Since, req.Baseline = t0.Add(3*time.Minute), "v0"
	if v := check(); v.Canary.Requests != 100 || v.Rule != "no_baseline_traffic" {
		t.Errorf("since minute 3 against v0: %d canary requests, rule %s", v.Canary.Requests, v.Rule)
	}
}

// TestPerOperation: the canary serves mostly the slow-failing /search
// (2% errors on both versions), the baseline mostly /home (0.1% on both).
// Judged on the aggregate the canary looks worse; per operation it is
// the same.
func TestPerOperation(t *testing.T) {
	canary := map[string]Counts{"/search": {Requests: 4000, Errors: 80}, "/home": {Requests: 1000, Errors: 1}}
	base := map[string]Counts{"/search": {Requests: 20000, Errors: 400}, "/home": {Requests: 180000, Errors: 180}}
	agg, _ := compareInput(canary, base, false, false)
	if v := Judge(agg, Config{}); v.Verdict != Fail {
		t.Errorf("aggregate: %s by %s; want the mix to fail it", v.Verdict, v.Rule)
	}
	in, _ := compareInput(canary, base, false, true)
	// By hand: weights 0.8 and 0.2: 0.8·0.02 + 0.2·0.001 = 0.0162.
	if got := in.Baseline.Ratio(); got < 0.0160 || got > 0.0164 {
		t.Errorf("reweighted baseline ratio %.4f, want 0.0162", got)
	}
	if v := Judge(in, Config{}); v.Verdict == Fail {
		t.Errorf("per operation: failed (%s)", v.Reason)
	}
}

// TestCheckPerOperation is TestPerOperation through spans and a Checker:
// the policy's per_operation decides whether the canary's mix counts
// against it, and an operation only the canary serves is named and left
// out.
func TestCheckPerOperation(t *testing.T) {
	r := NewRecorder(RecorderConfig{})
	// Per minute, for 5 minutes: the canary 800 /search (16 failed) and
	// 200 /home; the baseline 4,000 /search (80 failed) and 36,000 /home
	// (36 failed); the canary also serves 10 /new, all failed.
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		observeMinute(t, r, "shop", "v2", "/search", 800, 16, at)
		observeMinute(t, r, "shop", "v2", "/home", 200, 0, at)
		observeMinute(t, r, "shop", "v2", "/new", 10, 10, at)
		observeMinute(t, r, "shop", "v1", "/search", 4000, 80, at)
		observeMinute(t, r, "shop", "v1", "/home", 36000, 36, at)
	}
	now := func() time.Time { return t0.Add(5 * time.Minute) }
	req := CheckRequest{Service: "shop", Canary: "v2", Since: t0}
	agg, err := NewChecker(r, Config{}, nil, now).Check(req)
	if err != nil {
		t.Fatal(err)
	}
	if agg.Verdict.Verdict != Fail || agg.PerOperation || agg.Canary.Requests != 5050 {
		t.Errorf("aggregate: %s by %s on %d canary requests; want the mix (and /new) to fail it on all 5,050", agg.Verdict.Verdict, agg.Rule, agg.Canary.Requests)
	}
	per, err := NewChecker(r, Config{PerOperation: true}, nil, now).Check(req)
	if err != nil {
		t.Fatal(err)
	}
	// /new is left out: 5,000 canary requests on /search and /home.
	if per.Verdict.Verdict == Fail || !per.PerOperation || per.Canary.Requests != 5000 || !slices.Equal(per.CanaryOnlyOperations, []string{"/new"}) {
		t.Errorf("per operation: %s by %s (%s) on %d canary requests, canary-only %v; want not failed on 5,000, /new named",
			per.Verdict.Verdict, per.Rule, per.Reason, per.Canary.Requests, per.CanaryOnlyOperations)
	}
}

func TestRegression(t *testing.T) {
	r := NewRecorder(RecorderConfig{})
	deploy := t0.Add(30 * time.Minute)
	for i := range 30 {
		observeMinute(t, r, "payments", "v1", "/charge", 300, 1, t0.Add(time.Duration(i)*time.Minute))
	}
	clock := &clockAt{deploy.Add(time.Minute)}
	c := NewChecker(r, Config{}, nil, clock.now)
	m := Marker{Service: "payments", At: deploy, RollbackCommand: "kubectl rollout undo deployment/payments -n shop"}
	if g := c.Regression(m); g.Verdict != Inconclusive || g.RollbackCommand != "" {
		t.Errorf("right after the deploy: %s (%s)", g.Verdict, g.Detail.Reason)
	}
	// After: 5% on /charge, and a new operation.
	for i := range 5 {
		at := deploy.Add(time.Duration(i+1) * time.Minute)
		observeMinute(t, r, "payments", "v2", "/charge", 300, 15, at)
		observeMinute(t, r, "payments", "v2", "/refund", 10, 10, at)
	}
	clock.t = deploy.Add(6 * time.Minute)
	g := c.Regression(m)
	if g.Verdict != Regressed || g.RollbackCommand != m.RollbackCommand {
		t.Fatalf("5%% after 0.33%%: %s by %s (%s), rollback %q", g.Verdict, g.Detail.Rule, g.Detail.Reason, g.RollbackCommand)
	}
	if !slices.Equal(g.NewOperations, []string{"/refund"}) || g.Detail.Canary.Requests != 1500 {
		t.Errorf("new operations %v, compared %d requests after (want /refund left out, 1500)", g.NewOperations, g.Detail.Canary.Requests)
	}
	// /charge: 75 of 1,500 failed after; 30 of 9,000 before predicts 5.
	if len(g.Operations) != 1 || g.Operations[0].Operation != "/charge" || g.Operations[0].Errors != 75 || math.Abs(g.Operations[0].Excess-70) > 1e-9 {
		t.Errorf("worst operations %+v, want /charge with 75 errors, 70 in excess", g.Operations)
	}
}

// BenchmarkRecorderObserveFleet is the cost per span with counts of 250
// services present (say 50 under canary analysis and 200 with deploy
// markers: the Recorder counts every service, so the analyses and markers
// add no work at ingest). A request carries 100 entry spans of 4 services,
// two versions each, over 5 operations.
func BenchmarkRecorderObserveFleet(b *testing.B) {
	thresholds := map[string]time.Duration{}
	for i := range 250 {
		thresholds[fmt.Sprintf("svc-%d", i)] = 200 * time.Millisecond
	}
	r := NewRecorder(RecorderConfig{Thresholds: thresholds})
	var spans []span
	for i := range 250 {
		spans = append(spans, span{service: fmt.Sprintf("svc-%d", i), version: "v0", name: "warm"})
	}
	r.Observe(encode(b, spans...), t0.Add(40*time.Second))
	spans = spans[:0]
	for i := range 100 {
		spans = append(spans, span{
			service: fmt.Sprintf("svc-%d", i/25*60),
			version: fmt.Sprintf("v%d", i/12%2),
			name:    "GET /x", route: fmt.Sprintf("/op%d", i%5),
			http: 200 + int64(i%20/19)*300, dur: time.Duration(i) * 5 * time.Millisecond,
		})
	}
	req := encode(b, spans...)
	now := t0.Add(40 * time.Second)
	b.ReportAllocs()
	for b.Loop() {
		r.Observe(req, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
}

// BenchmarkCheck is one verdict from 30 minutes of counts of a canary and
// its baseline, per operation, with a latency threshold.
func BenchmarkCheck(b *testing.B) {
	r := NewRecorder(RecorderConfig{Thresholds: map[string]time.Duration{"s": 200 * time.Millisecond}})
	for i := range 30 {
		at := t0.Add(time.Duration(i) * time.Minute)
		for op := range 5 {
			observeMinute(b, r, "s", "v2", fmt.Sprintf("op%d", op), 20, 1, at)
			observeMinute(b, r, "s", "v1", fmt.Sprintf("op%d", op), 400, 2, at)
		}
	}
	c := NewChecker(r, Config{PerOperation: true}, map[string]float64{"s": 99.5}, func() time.Time { return t0.Add(31 * time.Minute) })
	req := CheckRequest{Service: "s", Canary: "v2", Since: t0}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Check(req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestObserveConcurrent counts from several goroutines while versions and
// operations are added and the counts read: nothing is lost (run with
// -race).
func TestObserveConcurrent(t *testing.T) {
	r := NewRecorder(RecorderConfig{})
	var spans []span
	for i := range 10 {
		spans = append(spans, span{service: "s", version: fmt.Sprintf("v%d", i%3), name: fmt.Sprintf("op%d", i%4), err: i == 0})
	}
	req := encode(t, spans...)
	now := t0.Add(40 * time.Second)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 100 {
				r.Observe(req, now)
			}
			r.Observe(encode(t, span{service: fmt.Sprintf("other-%d", g), version: "v", name: "x"}), now)
			_ = r.Unstored()
		}()
	}
	for range 4 {
		<-done
	}
	total := sumOps(r.Operations("s", func(string) bool { return true }, t0, t0))
	if total.Requests != 4000 || total.Errors != 400 {
		t.Errorf("%d requests, %d bad; want 4000 and 400", total.Requests, total.Errors)
	}
}

// TestRecorderIntVersion: a version attribute that is an integer (a build
// number) counts under its text.
func TestRecorderIntVersion(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "s")
	rs.Resource().Attributes().PutInt("service.version", 1234)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{1})
	sp.SetName("x")
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Second)))
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	req := new(otlp.Request)
	if err := otlp.Parse(b, otlp.Limits{}, req); err != nil {
		t.Fatal(err)
	}
	r := NewRecorder(RecorderConfig{})
	r.Observe(req, t0.Add(2*time.Second))
	if got := count(r, "s", "1234", t0, t0); got.Requests != 1 {
		t.Errorf("version 1234: %+v, want its one request", got)
	}
}

// TestRecorderManyOperations: operations met in turn, twice each; every
// count lands in its own operation (the last-operation cache must not
// mix them up).
func TestRecorderManyOperations(t *testing.T) {
	r := NewRecorder(RecorderConfig{})
	var spans []span
	for round := range 2 {
		for i := range 12 {
			spans = append(spans, span{service: "s", version: "v", name: fmt.Sprintf("op%d", i), err: round == 1 && i == 11})
		}
	}
	r.Observe(encode(t, spans...), t0.Add(40*time.Second))
	got := r.Operations("s", func(string) bool { return true }, t0, t0)
	if len(got) != 12 {
		t.Fatalf("%d operations, want 12", len(got))
	}
	for op, c := range got {
		wantBad := uint64(0)
		if op == "op11" {
			wantBad = 1
		}
		if c.Requests != 2 || c.Errors != wantBad {
			t.Errorf("%s: %+v, want 2 requests, %d bad", op, c, wantBad)
		}
	}
}

func TestLatencyBuckets(t *testing.T) {
	// Every duration falls in the bucket whose bounds hold it, and the
	// bucket's middle is within 12% of it.
	for us := int64(4); us < 1<<24; us = us*21/20 + 1 {
		d := time.Duration(us) * time.Microsecond
		b := latencyBucket(d)
		if lo, hi := bucketLow(b), bucketLow(b+1); d < lo || (b < latencyBuckets-1 && d >= hi) {
			t.Fatalf("%s in bucket %d of [%s, %s)", d, b, lo, hi)
		}
		if mid := bucketMid(b); math.Abs(float64(mid-d))/float64(d) > 0.12 {
			t.Fatalf("%s stands as %s (bucket %d)", d, mid, b)
		}
	}
	if b := latencyBucket(time.Hour); b != latencyBuckets-1 {
		t.Errorf("an hour in bucket %d, want the last", b)
	}
	if b := latencyBucket(time.Microsecond); b != 0 {
		t.Errorf("1µs in bucket %d, want 0", b)
	}
}

// TestCheckQuantiles: a canary whose requests last 1 to 1,000 ms evenly
// against a baseline at 10 ms: the verdict's quantiles, by hand p50 500,
// p90 900, p99 990 ms, within the buckets' 12%.
func TestCheckQuantiles(t *testing.T) {
	r := NewRecorder(RecorderConfig{})
	var spans []span
	for i := 1; i <= 1000; i++ {
		spans = append(spans, span{service: "s", version: "v2", name: "x", dur: time.Duration(i) * time.Millisecond})
	}
	for range 200 {
		spans = append(spans, span{service: "s", version: "v1", name: "x", dur: 10 * time.Millisecond})
	}
	r.Observe(encode(t, spans...), t0.Add(40*time.Second))
	res, err := NewChecker(r, Config{}, nil, func() time.Time { return t0.Add(50 * time.Second) }).Check(CheckRequest{Service: "s", Canary: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	q := res.LatencyQuantiles
	if q == nil {
		t.Fatal("no latency quantiles")
	}
	near := func(got, want float64) bool { return math.Abs(got-want)/want <= 0.12 }
	if c := q.Canary; c.Requests != 1000 || !near(c.P50, 0.5) || !near(c.P90, 0.9) || !near(c.P99, 0.99) {
		t.Errorf("canary quantiles %+v, want 1,000 requests, p50 0.5 s, p90 0.9 s, p99 0.99 s", c)
	}
	if b := q.Baseline; b.Requests != 200 || !near(b.P50, 0.01) || !near(b.P99, 0.01) {
		t.Errorf("baseline quantiles %+v, want 200 requests at 10 ms", b)
	}
}
