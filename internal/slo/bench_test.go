package slo

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// benchSpecs defines n SLOs over n/5 services, five per service: plain
// availability, latency, a route filter, a span name filter (or, with
// attrs, a filter on a custom span attribute, which costs a pass over the
// span's attributes) and a per-route grouping.
func benchSpecs(n int, attrs bool) []Spec {
	var specs []Spec
	for i := 0; len(specs) < n; i++ {
		svc := fmt.Sprintf("svc-%d", i)
		w := units.Duration(30 * 24 * time.Hour)
		fourth := SLISpec{Kind: Latency, Threshold: units.Duration(time.Second), Filter: map[string]string{"span_name": "POST /pay"}}
		if attrs {
			fourth.Filter = map[string]string{"tenant": "acme"}
		}
		for j, sli := range []SLISpec{
			{Kind: Availability},
			{Kind: Latency, Threshold: units.Duration(300 * time.Millisecond)},
			{Kind: Availability, Filter: map[string]string{"http.route": "/api/checkout"}},
			fourth,
			{Kind: Availability, GroupBy: "http.route", MaxGroups: 10},
		} {
			if len(specs) == n {
				break
			}
			specs = append(specs, Spec{Name: fmt.Sprintf("%s-%d", svc, j), Service: svc, Objective: 99.9, Window: w, SLI: sli})
		}
	}
	return specs
}

// BenchmarkObserve measures the SLI counting added to ingest, per span,
// with 100 SLOs defined (20 services, 5 SLOs each: no custom attribute
// filter). BenchmarkObserveAttributeFilter replaces the span name filter
// with one on a custom span attribute. The request holds 100
// spans of three services (one resource each, as an SDK batches them):
// entry spans with routes and attributes, and client spans that only pass
// the kind check.
func BenchmarkObserve(b *testing.B) { benchObserve(b, false) }

func BenchmarkObserveAttributeFilter(b *testing.B) { benchObserve(b, true) }

func benchObserve(b *testing.B, attrs bool) {
	e, err := NewEngine(benchSpecs(100, attrs), Settings{})
	if err != nil {
		b.Fatal(err)
	}
	var spans []testSpan
	routes := []string{"/api/checkout", "/api/cart", "/api/search", "/healthz"}
	for i := range 100 {
		s := testSpan{service: fmt.Sprintf("svc-%d", i/34), name: "POST /pay", kind: ptrace.SpanKindServer, dur: time.Duration(i) * 10 * time.Millisecond,
			http: 200, attrs: map[string]any{"http.route": routes[i%4], "tenant": []string{"acme", "globex"}[i%2], "http.request.method": "POST", "user_agent.original": "bench"}}
		if i%10 == 9 {
			s.http = 503
		}
		if i%5 == 4 {
			s.kind = ptrace.SpanKindClient
		}
		spans = append(spans, s)
	}
	req := request(b, spans...)
	now := time.Now()
	e.Observe(req, now)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.Observe(req, now)
	}
	perSpan := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(len(req.Spans))
	b.ReportMetric(perSpan, "ns/span")
	b.ReportMetric(1e9/perSpan, "spans/s")
}

// BenchmarkEvaluate10k measures one evaluation of every alert of 10,000
// SLOs (2,000 of them grouped, with 3 groups each), each with six hours of
// per-minute history. Evaluation reads each window with two prefix-sum
// lookups, so the history's length does not change the cost. Run it with
// -cpu 1.
func BenchmarkEvaluate10k(b *testing.B) {
	specs := benchSpecs(10000, true)
	e, err := NewEngine(specs, Settings{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	m0 := units.MinuteOf(start)
	e.advance(m0)
	for _, st := range e.slos {
		st.since, st.agg.since = start, start
		if st.groupBy != nil {
			for _, g := range []string{"/a", "/b", "/c"} {
				st.newGroup(g, start).since = start
			}
		}
	}
	const minutes = 360
	for m := m0; m < m0+minutes; m++ {
		for i, st := range e.slos {
			bad := uint64((int(m) + i) % 3)
			st.allSeries(func(s *series) { s.live.Add(100<<32 | bad) })
		}
		e.advance(m + 1)
	}
	now := (m0 + minutes).Time().Add(30 * time.Second)
	e.evaluate(now)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		now = now.Add(10 * time.Second)
		e.evaluate(now)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/eval")
}
