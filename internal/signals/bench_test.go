package signals

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// benchRequest is 100 spans of one service with 20 attributes each (a mix
// of low- and high-cardinality keys, as HTTP instrumentation writes them);
// every entryEvery-th span is a SERVER span.
func benchRequest(b *testing.B, entryEvery int) []byte {
	at := t0.Add(time.Second)
	var spans []spanSpec
	for i := range 100 {
		kind := ptrace.SpanKindInternal
		if i%entryEvery == 0 {
			kind = ptrace.SpanKindServer
		}
		route := fmt.Sprintf("/api/v1/items/{id}/r%c", 'a'+i%8)
		spans = append(spans, spanSpec{
			service: "shop", resource: map[string]any{"host.name": "node-1", "service.version": "1.2.3", "k8s.pod.name": "shop-7d9f-x2k"},
			kind: kind, name: "GET " + route, start: at, end: at.Add(time.Duration(1+i) * time.Millisecond),
			attrs: map[string]any{
				"http.request.method":       []string{"GET", "POST"}[i%2],
				"http.route":                route,
				"http.response.status_code": []int{200, 200, 200, 404, 500}[i%5],
				"url.path":                  fmt.Sprintf("/api/v1/items/%d/r", 1000+i),
				"url.scheme":                "https",
				"server.address":            "shop.internal",
				"server.port":               8080,
				"network.protocol.version":  "1.1",
				"user_agent.original":       "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
				"client.address":            fmt.Sprintf("10.0.%d.%d", i/10, i),
				"user.id":                   fmt.Sprintf("user-%06d", i*7919),
				"session.id":                fmt.Sprintf("sess-%x", i*104729),
				"enduser.role":              "customer",
				"feature.flag.new_cart":     i%3 == 0,
				"db.system":                 "postgresql",
				"thread.id":                 i % 16,
				"code.function":             "handleItems",
				"code.namespace":            "shop.api",
				"app.cart.items":            i % 12,
				"app.region":                "eu-west-1",
			},
		})
	}
	return buildRequest(b, spans...)
}

// BenchmarkObserve measures the cost per span of golden signals and
// cardinality tracking (Observe), for requests where every span is an
// entry span (the worst case) and where one span in four is.
func BenchmarkObserve(b *testing.B) {
	for _, bc := range []struct {
		name       string
		entryEvery int
	}{{"all-entry", 1}, {"quarter-entry", 4}} {
		b.Run(bc.name, func(b *testing.B) {
			req := parseRequest(b, benchRequest(b, bc.entryEvery))
			s := newTestSignals(b, DefaultConfig(), nil)
			now := t0.Add(2 * time.Second)
			// Warm up: keys, operations and series exist, and the keys with
			// few values have settled, as in a running server.
			for range 200 {
				s.Observe(req, now)
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				s.Observe(req, now)
			}
			cpu := cpuTime() - cpu0
			spans := float64(b.N) * float64(len(req.Spans))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/spans, "ns/span")
			// CPU time per span: on a shared machine wall time also counts
			// the time other processes held the core.
			b.ReportMetric(float64(cpu.Nanoseconds())/spans, "cpu-ns/span")
			b.ReportMetric(spans/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

// BenchmarkObserveTrace measures error-origin analysis of a 30-span error
// trace.
func BenchmarkObserveTrace(b *testing.B) {
	var spans []TraceSpan
	spans = append(spans, http5xx(ts("frontend", "GET /", server, 1, 0, 0, 1000, true)))
	for i := range 29 {
		id := uint64(i + 2)
		parent := uint64(1)
		if i%2 == 1 {
			parent = id - 1
		}
		kind := client
		if i%2 == 1 {
			kind = server
		}
		spans = append(spans, ts(fmt.Sprintf("svc%d", i/2), fmt.Sprintf("op%d", i), kind, id, parent, uint64(i), uint64(500+i), i == 27))
	}
	s := newTestSignals(b, DefaultConfig(), nil)
	b.ReportAllocs()
	for b.Loop() {
		s.ObserveTrace(spans, t0)
	}
}

// cpuTime returns the user and system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParseReference is otlp.Parse of the request BenchmarkObserve
// observes: the ingest cost Observe adds to.
func BenchmarkParseReference(b *testing.B) {
	raw := benchRequest(b, 1)
	var req otlp.Request
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		req.Reset()
		if err := otlp.Parse(raw, otlp.Limits{}, &req); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	spans := float64(b.N) * float64(len(req.Spans))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/spans, "ns/span")
	b.ReportMetric(float64(cpu.Nanoseconds())/spans, "cpu-ns/span")
}
