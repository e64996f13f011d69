package shed

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A simulated service: workers requests are served at once, each in
// service time; the rest wait for a worker. Capacity is
// workers/service requests per second.
const (
	simWorkers = 10
	simService = 10 * time.Millisecond
	simCap     = float64(simWorkers) / 0.010 // 1000 requests/s
)

// workHandler serves a request with one of workers for service time.
func workHandler(workers int, service time.Duration) http.Handler {
	sem := make(chan struct{}, workers)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		time.Sleep(service)
		<-sem
		w.WriteHeader(http.StatusNoContent)
	})
}

// result is one request's outcome.
type result struct {
	crit    Criticality
	start   time.Duration // since the load began
	latency time.Duration
	status  int // 0 when the client gave up
}

// load drives h at rate requests per second for d, the i-th request of
// criticality mix(i), through a real net/http server and client. Time is whatever clock runs it: virtual inside a
// synctest bubble.
func load(ctx context.Context, h http.Handler, rate float64, d time.Duration, mix func(int) Criticality, timeout time.Duration) ([]result, error) {
	pn := newPipeNet()
	srv := &http.Server{Handler: h}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pn) }()
	tr := &http.Transport{DialContext: pn.DialContext, MaxIdleConnsPerHost: 10000}
	client := &http.Client{Transport: tr, Timeout: timeout}

	n := int(rate * d.Seconds())
	gap := time.Duration(float64(time.Second) / rate)
	results := make([]result, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range n {
		if i > 0 {
			time.Sleep(gap)
		}
		c := mix(i)
		wg.Go(func() {
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/work", nil)
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
	tr.CloseIdleConnections()
	err := srv.Shutdown(ctx)
	if sErr := <-served; !errors.Is(sErr, http.ErrServerClosed) {
		err = errors.Join(err, sErr)
	}
	return results, err
}

// summary is what happened to the requests of one criticality.
type summary struct {
	total, ok, refused, gaveUp int
	latencies                  []time.Duration // of successes
}

func (s summary) successRate() float64 { return float64(s.ok) / float64(s.total) }

func (s summary) p99() time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	l := slices.Sorted(slices.Values(s.latencies))
	return l[(len(l)*99+99)/100-1]
}

func summarize(rs []result) map[Criticality]*summary {
	m := map[Criticality]*summary{Critical: {}, Default: {}, Sheddable: {}}
	for _, r := range rs {
		s := m[r.crit]
		s.total++
		switch r.status {
		case http.StatusNoContent:
			s.ok++
			s.latencies = append(s.latencies, r.latency)
		case http.StatusServiceUnavailable:
			s.refused++
		default:
			s.gaveUp++
		}
	}
	return m
}

func (s *summary) String() string {
	return fmt.Sprintf("%d requests: %d ok (%.1f%%), %d refused, %d gave up; p99 %s",
		s.total, s.ok, 100*s.successRate(), s.refused, s.gaveUp, s.p99())
}

func TestShedUnderOverload(t *testing.T) {
	tests := []struct {
		name      string
		load      float64 // times capacity
		critEvery int
		// wantShedOK bounds the sheddable success rate from above.
		wantShedOK float64
	}{
		// Critical requests alone need 60% of capacity; sheddable ones
		// can have the remaining 400/s of their 2400/s: at most 16.7%.
		{"3x, 1 in 5 critical", 3, 5, 0.17},
		// Critical 30% of capacity; sheddable can have 700/s of 1200/s.
		{"1.5x, 1 in 5 critical", 1.5, 5, 0.59},
		// No shares to hide behind: the limit alone must find capacity.
		{"2x, all critical", 2, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { overload(t, tt.load, tt.critEvery, tt.wantShedOK) })
		})
	}
}

func overload(t *testing.T, times float64, critEvery int, wantShedOK float64) {
	shed := mustNew(t, Config{Limit: LimitConfig{Window: 100 * time.Millisecond}})
	h := shed.Middleware(workHandler(simWorkers, simService))
	const d = 5 * time.Second
	rs, err := load(t.Context(), h, times*simCap, d, oneIn(critEvery), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sum := summarize(rs)
	crit, shd := sum[Critical], sum[Sheddable]
	t.Logf("critical: %v", crit)
	t.Logf("sheddable: %v", shd)
	t.Logf("final limit %d", shed.Limit())

	if crit.gaveUp+shd.gaveUp > 0 {
		t.Errorf("%d requests timed out; the admitted ones should not queue that long", crit.gaveUp+shd.gaveUp)
	}
	// Shedding must not waste capacity: the service did at least 90% of
	// what it can.
	if done, can := crit.ok+shd.ok, int(0.9*simCap*d.Seconds()); done < can {
		t.Errorf("served %d requests, want >= %d (90%% of capacity)", done, can)
	}
	// Admitted critical requests do not wait much: within 2x the
	// unloaded 10ms.
	if p := crit.p99(); p > 2*simService {
		t.Errorf("critical p99 %s, want <= %s", p, 2*simService)
	}
	if shd.total == 0 {
		// All critical at 2x: half must be refused, and the limit must
		// come down near the 10 workers.
		if l := shed.Limit(); l > 2*simWorkers {
			t.Errorf("limit %d, want <= %d", l, 2*simWorkers)
		}
		return
	}
	if crit.successRate() < 0.99 {
		t.Errorf("critical success %.2f%%, want >= 99%%", 100*crit.successRate())
	}
	if r := shd.successRate(); r > wantShedOK {
		t.Errorf("sheddable success %.1f%%, want <= %.1f%%", 100*r, 100*wantShedOK)
	}
	// The order: the first request refused is sheddable, and sheddable
	// requests bear the refusals.
	first := slices.IndexFunc(rs, func(r result) bool { return r.status == http.StatusServiceUnavailable })
	if first < 0 || rs[first].crit != Sheddable {
		t.Errorf("first refusal: index %d, want a sheddable request", first)
	}
	if shd.refused == 0 || crit.refused*10 > shd.refused {
		t.Errorf("refused %d critical and %d sheddable, want far more sheddable", crit.refused, shd.refused)
	}
}

// oneIn makes every n-th request critical and the others sheddable.
func oneIn(n int) func(int) Criticality {
	return func(i int) Criticality {
		if i%n == 0 {
			return Critical
		}
		return Sheddable
	}
}

// TestShedOrder drives 3x capacity with one request in five critical, one
// in five default and three sheddable: the critical requests alone need
// 60% of capacity, and so do the default ones. The service can serve
// critical ones fully, default ones partly, and sheddable ones hardly at
// all, in that order.
func TestShedOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shed := mustNew(t, Config{Limit: LimitConfig{Window: 100 * time.Millisecond}})
		h := shed.Middleware(workHandler(simWorkers, simService))
		mix := func(i int) Criticality {
			switch i % 5 {
			case 0:
				return Critical
			case 1:
				return Default
			}
			return Sheddable
		}
		rs, err := load(t.Context(), h, 3*simCap, 5*time.Second, mix, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		sum := summarize(rs)
		for _, c := range []Criticality{Critical, Default, Sheddable} {
			t.Logf("%s: %v", c, sum[c])
		}
		crit, def, shd := sum[Critical].successRate(), sum[Default].successRate(), sum[Sheddable].successRate()
		if crit < 0.99 {
			t.Errorf("critical success %.2f%%, want >= 99%%", 100*crit)
		}
		// Capacity left after critical: 400/s of default's 600/s, 66.7%.
		if !(def < crit && def > 0.5 && def <= 0.67) {
			t.Errorf("default success %.1f%%, want between 50%% and 67%%", 100*def)
		}
		if !(shd < def && shd < 0.05) {
			t.Errorf("sheddable success %.1f%%, want under default's and 5%%", 100*shd)
		}
		if p := sum[Critical].p99(); p > 2*simService {
			t.Errorf("critical p99 %s, want <= %s", p, 2*simService)
		}
	})
}
