package signals

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Requests count in the minute of their end time, not of their arrival, so
// observing the same request again later (a replay) lands it in the same
// minute; beyond max_lateness and in the future the arrival minute is used.
func TestRequestsCountInTheirEndMinute(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.MaxLateness = units.Duration(5 * time.Minute)
	s, err := New(cfg, Settings{Store: &memStore{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	// t0 is 12:00; the request ends at 12:08:10.
	end := t0.Add(8*time.Minute + 10*time.Second)
	req := buildRequest(t, spanSpec{service: "a", kind: ptrace.SpanKindServer, name: "x", start: end.Add(-time.Second), end: end})
	s.Observe(parseRequest(t, req), end.Add(2*time.Second))                // arrives at 12:08:12
	s.Observe(parseRequest(t, req), end.Add(2*time.Minute))                // replayed at 12:10:10
	s.Observe(parseRequest(t, req), end.Add(4*time.Minute+50*time.Second)) // at 12:13:00, within 5m
	s.Observe(parseRequest(t, buildRequest(t,
		// An hour ahead of its arrival at 12:10:30: counted at 12:10.
		spanSpec{service: "a", kind: ptrace.SpanKindServer, name: "x", start: t0.Add(70 * time.Minute), end: t0.Add(70*time.Minute + time.Second)},
	)), t0.Add(10*time.Minute+30*time.Second))
	now := t0.Add(14 * time.Minute)
	got, err := s.Services(t.Context(), Query{From: t0, To: t0.Add(15 * time.Minute), Step: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, p := range got.Services[0].Series {
		if p.Requests > 0 {
			counts[p.Time.Format("15:04")] = p.Requests
		}
	}
	if diff := cmp.Diff(map[string]uint64{"12:08": 3, "12:10": 1}, counts); diff != "" {
		t.Errorf("requests per minute (-want +got):\n%s", diff)
	}
	if v := metricValues(t, reg, "tailgate_signals_late_spans_total")[""]; v != 1 {
		t.Errorf("late_spans_total = %v, want 1 (the span from the future)", v)
	}
}

// A failed request's error origin counts in the minute its span ended, or
// in the minute of the analysis when that minute is no longer open.
func TestErrorOriginsCountInTheEndMinute(t *testing.T) {
	s := newTestSignals(t, DefaultConfig(), &memStore{}) // max_lateness 1m
	trace := func(end time.Time) []TraceSpan {
		sp := http5xx(ts("checkout", "POST /checkout", server, 1, 0, 0, 0, true))
		sp.Start, sp.End = uint64(end.Add(-time.Second).UnixNano()), uint64(end.UnixNano())
		return []TraceSpan{sp}
	}
	at := t0.Add(9*time.Minute + 20*time.Second)                    // 12:09:20
	s.ObserveTrace(trace(t0.Add(8*time.Minute+50*time.Second)), at) // ended 12:08:50
	s.ObserveTrace(trace(t0.Add(5*time.Minute)), at)                // ended 12:05: too late
	counts := map[string]float64{}
	for _, r := range s.takeOriginsCopy() {
		counts[r.Start.Format("15:04")] += r.Requests
	}
	if diff := cmp.Diff(map[string]float64{"12:08": 1, "12:09": 1}, counts); diff != "" {
		t.Errorf("failed requests per minute (-want +got):\n%s", diff)
	}
	if s.orig.late != 1 {
		t.Errorf("late = %d, want 1", s.orig.late)
	}
}
