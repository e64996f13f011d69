package slo

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// recorder is a Notifier that keeps what it is given.
type recorder struct {
	mu    sync.Mutex
	notes []Notification
}

func (r *recorder) Notify(n Notification) {
	r.mu.Lock()
	r.notes = append(r.notes, n)
	r.mu.Unlock()
}

func (r *recorder) find(alert string, status AlertState) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, n := range r.notes {
		if n.Alert.Name == alert && n.Status == status {
			out = append(out, n.At)
		}
	}
	return out
}

// TestEndToEndPage sends OTLP traffic with a known error rate through the
// engine's real loops on a fake clock (testing/synctest): no page during
// the cold start, a page within the Workbook's detection time, and a
// resolution after the short window clears.
func TestEndToEndPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e, err := NewEngine([]Spec{{Name: "checkout-availability", Service: "checkout", Objective: 99.9,
			Window: units.Duration(30 * 24 * time.Hour), SLI: SLISpec{Kind: Availability}}},
			Settings{Notifiers: []Notifier{rec}, APIBaseURL: "http://tailgate:8080/"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		// 20 requests a second: all good, 100% bad, or 1 in 20 (5%) bad.
		span := func(bad bool) testSpan {
			return testSpan{service: "checkout", name: "POST /pay", kind: ptrace.SpanKindServer, dur: 50 * time.Millisecond, err: bad}
		}
		mk := func(nbad int) []testSpan {
			var s []testSpan
			for i := range 20 {
				s = append(s, span(i < nbad))
			}
			return s
		}
		good, allBad, fivePct := request(t, mk(0)...), request(t, mk(20)...), request(t, mk(1)...)
		traffic := func(d time.Duration, which func(time.Duration) int) {
			t0 := time.Now()
			for time.Since(t0) < d {
				switch which(time.Since(t0)) {
				case 0:
					e.Observe(good, time.Now())
				case 1:
					e.Observe(allBad, time.Now())
				default:
					e.Observe(fivePct, time.Now())
				}
				time.Sleep(time.Second)
			}
		}
		// Cold start: two minutes of total failure right after install, then
		// health. The 1h window is not covered: no page.
		traffic(90*time.Minute, func(d time.Duration) int {
			if d < 2*time.Minute {
				return 1
			}
			return 0
		})
		if got := rec.find("page-1h", Firing); len(got) != 0 {
			t.Fatalf("page-1h fired during the cold start at %v", got)
		}
		// An incident: 5% errors for 30 minutes. The Workbook's detection
		// time is (1 - 0.999) / 0.05 × 1h × 14.4 = 17.28 minutes.
		incident := time.Now()
		traffic(30*time.Minute, func(time.Duration) int { return 2 })
		end := time.Now()
		traffic(20*time.Minute, func(time.Duration) int { return 0 })

		fired := rec.find("page-1h", Firing)
		if len(fired) != 1 {
			t.Fatalf("page-1h fired %d times, want 1", len(fired))
		}
		detect := fired[0].Sub(incident)
		const predicted = 17*time.Minute + 17*time.Second // 17.28m
		// Minute buckets and the 10s evaluation add at most about a minute.
		if detect < predicted-time.Second || detect > predicted+75*time.Second {
			t.Errorf("page-1h fired %s after the incident began, want about %s", detect, predicted)
		}
		t.Logf("page-1h fired %s after the incident began (predicted %s)", detect, predicted)
		resolved := rec.find("page-1h", Resolved)
		if len(resolved) != 1 {
			t.Fatalf("page-1h resolved %d times, want 1", len(resolved))
		}
		// The 5m burn falls under 14.4 once under 28.8% of the 5m window
		// holds the incident (~3.6m), then keep_firing_for (5m) runs.
		if r := resolved[0].Sub(end); r < 8*time.Minute || r > 10*time.Minute {
			t.Errorf("page-1h resolved %s after the incident ended, want 8..10m", r)
		}
		st, _ := e.Status("checkout-availability", time.Now())
		// 140 minutes at 20/s; 2 minutes all bad, 30 minutes 5% bad.
		if want := float64(140 * 60 * 20); st.Total != want {
			t.Errorf("total = %v, want %v", st.Total, want)
		}
		if want := float64(2*60*20 + 30*60); st.Total-st.Good != want {
			t.Errorf("bad = %v, want %v", st.Total-st.Good, want)
		}
		rec.mu.Lock()
		n := rec.notes[0]
		rec.mu.Unlock()
		if n.Links["slo"] != "http://tailgate:8080/api/v1/slos/checkout-availability" || n.BurnRates["1h"] == nil {
			t.Errorf("notification lacks links or burn rates: %+v", n)
		}
		if err := e.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := e.Shutdown(t.Context()); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
	})
}
