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
