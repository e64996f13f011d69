package shed

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// discardWriter is a ResponseWriter that keeps nothing, so the overhead
// benchmarks measure the middleware, not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkMiddleware measures the cost of the middleware on one request
// with nothing else running: compare "bare" (the handler alone) with the
// others.
func BenchmarkMiddleware(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	plain, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	routed, err := New(Config{Routes: map[string]Criticality{
		"GET /api/checkout/{id}": Critical,
		"GET /api/recommend":     Sheddable,
		"/batch/":                Sheddable,
	}})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		h      http.Handler
		header string
	}{
		{"bare", ok, ""},
		{"middleware", plain.Middleware(ok), ""},
		{"middleware+header", plain.Middleware(ok), "critical"},
		{"middleware+routes", routed.Middleware(ok), ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/api/checkout/42", nil)
			if bc.header != "" {
				r.Header.Set(DefaultHeader, bc.header)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, r)
			}
		})
	}
}

// The service of the latency benchmark: 10 workers, 20ms each, so 500
// requests/s. Its time is real (time.Sleep): the point is the latency a
// client sees.
const (
	benchWorkers = 10
	benchService = 20 * time.Millisecond
	benchCap     = 500.0 // requests/s
)

// BenchmarkCriticalLatency reports the p99 latency of critical requests
// (one in five) to a service on 127.0.0.1: unloaded (the critical requests
// alone, 60% of capacity), loaded (3x capacity with sheddable requests)
// behind the middleware, and the same load without it. Each iteration is
// one second of load; -benchtime 5x gives 5 seconds.
func BenchmarkCriticalLatency(b *testing.B) {
	for _, bc := range []struct {
		name      string
		load      float64 // times capacity
		critEvery int
		shed      bool
	}{
		{"unloaded", 0.6, 1, true},
		{"loaded", 3, 5, true},
		{"loaded_no_shedding", 3, 5, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := workHandler(benchWorkers, benchService)
			if bc.shed {
				s, err := New(Config{Limit: LimitConfig{Window: 100 * time.Millisecond}})
				if err != nil {
					b.Fatal(err)
				}
				h = s.Middleware(h)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 10000}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: time.Second}
			ctx := b.Context()
			round := func() []result {
				return paced(ctx, client, srv.URL, bc.load*benchCap, time.Second, bc.critEvery)
			}
			round() // warm up connections and the limit
			var all []result
			b.ReportAllocs()
			for b.Loop() {
				all = append(all, round()...)
			}
			sum := summarize(all)
			crit, shd := sum[Critical], sum[Sheddable]
			b.ReportMetric(float64(crit.p99())/float64(time.Millisecond), "p99-critical-ms")
			b.ReportMetric(100*crit.successRate(), "critical-ok-%")
			if shd.total > 0 {
				b.ReportMetric(100*shd.successRate(), "sheddable-ok-%")
			}
			b.ReportMetric(100*float64(crit.gaveUp+shd.gaveUp)/float64(len(all)), "timeouts-%")
		})
	}
}

// paced sends requests at rate per second for d in real time, every
// critEvery-th critical and the others sheddable, and waits for all.
func paced(ctx context.Context, client *http.Client, url string, rate float64, d time.Duration, critEvery int) []result {
	n := int(rate * d.Seconds())
	gap := time.Duration(float64(time.Second) / rate)
	results := make([]result, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range n {
		// Sleep to the i-th arrival, not for one gap, so timer slack
		// does not lower the rate.
		time.Sleep(time.Until(begin.Add(time.Duration(i) * gap)))
		c := Sheddable
		if i%critEvery == 0 {
			c = Critical
		}
		wg.Go(func() {
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/work", nil)
			req.Header.Set(DefaultHeader, c.String())
			status := 0
			if resp, err := client.Do(req); err == nil {
				status = resp.StatusCode
				_ = resp.Body.Close()
			}
			results[i] = result{crit: c, start: start.Sub(begin), latency: time.Since(start), status: status}
		})
	}
	wg.Wait()
	return slices.Clip(results)
}
