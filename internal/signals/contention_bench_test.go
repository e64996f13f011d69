package signals

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkObserveTraceUnderIngest measures ObserveTrace (what a sampler
// shard calls as it decides an error trace) while another goroutine
// observes 100-span requests without pause, as ingest does under load. The
// time per op includes any wait for a lock that Observe holds.
func BenchmarkObserveTraceUnderIngest(b *testing.B) {
	var spans []TraceSpan
	spans = append(spans, http5xx(ts("frontend", "GET /", server, 1, 0, 0, 1000, true)))
	for i := range 29 {
		id := uint64(i + 2)
		parent := uint64(1)
		kind := client
		if i%2 == 1 {
			parent, kind = id-1, server
		}
		spans = append(spans, ts(fmt.Sprintf("svc%d", i/2), fmt.Sprintf("op%d", i), kind, id, parent, uint64(i), uint64(500+i), i == 27))
	}
	req := parseRequest(b, benchRequest(b, 4))
	s := newTestSignals(b, DefaultConfig(), nil)
	now := t0.Add(2 * time.Second)
	for range 200 {
		s.Observe(req, now)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				s.Observe(req, now)
			}
		}
	})
	b.ReportAllocs()
	for b.Loop() {
		s.ObserveTrace(spans, t0)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
}
