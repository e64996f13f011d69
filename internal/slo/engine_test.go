package slo

import (
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// TestFlushAndRestore runs the loops on a fake clock: every flush writes
// only what is new (no double counting within a minute or across its
// end), and a new engine on the same store restores the counts and the
// firing alert without notifying it again.
func TestFlushAndRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		spec := Spec{Name: "s", Service: "svc", Objective: 99, Window: units.Duration(24 * time.Hour), SLI: SLISpec{Kind: Availability}}
		rec := &recorder{}
		e, err := NewEngine([]Spec{spec}, Settings{Store: store, Notifiers: []Notifier{rec}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		span := func(bad bool) testSpan {
			return testSpan{service: "svc", name: "op", kind: ptrace.SpanKindServer, err: bad}
		}
		req := request(t, span(true), span(false), span(false))
		for range 150 { // 150s: crosses two minute boundaries
			e.Observe(req, time.Now())
			time.Sleep(time.Second)
		}
		time.Sleep(1500 * time.Millisecond) // one more flush
		if g, tot := store.total("s"); g != 300 || tot != 450 {
			t.Errorf("stored good/total = %d/%d, want 300/450", g, tot)
		}
		fired := rec.find("budget-exhausted", Firing)
		if len(fired) != 1 {
			t.Fatalf("budget-exhausted fired %d times", len(fired))
		}
		if err := e.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}

		rec2 := &recorder{}
		e2, err := NewEngine([]Spec{spec}, Settings{Store: store, Notifiers: []Notifier{rec2}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e2.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second)
		st, _ := e2.Status("s", time.Now())
		if st.Good != 300 || st.Total != 450 {
			t.Errorf("restored good/total = %v/%v, want 300/450", st.Good, st.Total)
		}
		// A third of the requests fail: the budget is spent and, on the
		// 1d window's scaled tiers (2m/1m), page-1h fires too.
		restored := map[string]time.Time{}
		for _, a := range st.Alerts {
			restored[a.Name] = a.FiredAt
		}
		if len(restored) != 2 || !restored["budget-exhausted"].Equal(fired[0]) || restored["page-1h"].IsZero() {
			t.Errorf("restored alerts = %v, want budget-exhausted fired at %s and page-1h", restored, fired[0])
		}
		if len(rec2.notes) != 0 {
			t.Errorf("restored alert notified again: %+v", rec2.notes)
		}
		if err := e2.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if g, tot := store.total("s"); g != 300 || tot != 450 {
			t.Errorf("after restart stored good/total = %d/%d, want 300/450", g, tot)
		}
	})
}

func TestEngineCorrectionsAPI(t *testing.T) {
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	e, err := NewEngine([]Spec{{Name: "s", Service: "svc", Objective: 99, Window: units.Duration(24 * time.Hour), SLI: SLISpec{Kind: Availability},
		Corrections: []CorrectionSpec{{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour), Reason: "declared"}}}}, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.AddCorrection(t.Context(), Correction{SLO: "s", Start: now, End: now.Add(time.Hour), Reason: "load test", CreatedBy: "alice"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == 0 || c.Source != SourceAPI || !c.CreatedAt.Equal(now) {
		t.Errorf("added correction = %+v", c)
	}
	if _, err := e.AddCorrection(t.Context(), Correction{SLO: "nope", Start: now, End: now.Add(time.Hour), Reason: "x"}, now); err == nil {
		t.Error("correction of an unknown SLO accepted")
	}
	if _, err := e.AddCorrection(t.Context(), Correction{SLO: "s", Start: now}, now); err == nil {
		t.Error("invalid correction accepted")
	}
	cs, _ := e.Corrections("s")
	if len(cs) != 2 || cs[0].Source != SourceConfig || cs[1].ID != c.ID {
		t.Errorf("corrections = %+v", cs)
	}
	if err := e.DeleteCorrection(t.Context(), "s", 0, "bob", now); err == nil {
		t.Error("deleted a config correction")
	}
	later := now.Add(time.Minute)
	if err := e.DeleteCorrection(t.Context(), "s", c.ID, "bob", later); err != nil {
		t.Error(err)
	}
	if err := e.DeleteCorrection(t.Context(), "s", c.ID, "bob", later); !errors.Is(err, ErrUnknownCorrection) {
		t.Errorf("second delete: %v, want ErrUnknownCorrection", err)
	}
	// Deleted, the correction is kept with who deleted it and when.
	cs, _ = e.Corrections("s")
	if len(cs) != 2 || !cs[1].Deleted() || cs[1].DeletedBy != "bob" || !cs[1].DeletedAt.Equal(later) {
		t.Errorf("after delete: %+v", cs)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e, err := NewEngine([]Spec{{Name: "s", Service: "svc", Objective: 99.5, Window: units.Duration(24 * time.Hour), SLI: SLISpec{Kind: Availability}}},
		Settings{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e.advance(units.MinuteOf(now) - 10)
	e.slos[0].agg.live.Add(200<<32 | 1)
	e.Observe(request(t, testSpan{service: "svc", name: "op", kind: ptrace.SpanKindServer}), now)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	// 1 bad of 201 over the window: budget 0.005 x 201 = 1.005 requests.
	for key, want := range map[string]float64{
		"tailgate_slo_objective_ratio service_name=svc slo=s":              0.995,
		"tailgate_slo_error_budget_remaining_ratio service_name=svc slo=s": 1 - 1/1.005,
		"tailgate_slo_burn_rate service_name=svc slo=s window=1h":          1.0 / 201 / 0.005,
		"tailgate_slo_window_events result=bad service_name=svc slo=s":     1,
		"tailgate_slo_alert_firing service_name=svc severity=page slo=s":   0,
		"tailgate_slo_spans_rejected_total":                                0,
	} {
		if v, ok := got[key]; !ok || math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	burn := 0
	for key := range got {
		if strings.HasPrefix(key, "tailgate_slo_burn_rate ") {
			burn++
		}
	}
	if burn != 7 { // 5m..3d; the SLO window is 1d
		t.Errorf("%d burn rate series, want 7 windows", burn)
	}
}
