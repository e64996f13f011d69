package gate

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// history answers SLOEvents from a table keyed by interval.
type history map[[2]time.Time][2]float64

func (h history) SLOEvents(_ context.Context, slo string, from, to time.Time) (float64, float64, error) {
	v, ok := h[[2]time.Time{from, to}]
	if !ok {
		return 0, 0, fmt.Errorf("unexpected interval %s..%s of %s", from.Format(time.TimeOnly), to.Format(time.TimeOnly), slo)
	}
	return v[0], v[1], nil
}

// TestRiskReport checks the report against figures worked out by hand:
// 10,000 requests an hour over 30 days (7.2M), objective 99.9% so 7,200
// bad allowed, 3,600 spent.
func TestRiskReport(t *testing.T) {
	spec := PolicySpec{
		Service: "checkout",
		Business: Business{
			RevenuePerHour: 12000,
			FailedRelease:  FailedRelease{Impact: 0.2, Duration: units.Duration(30 * time.Minute)},
			SLA:            SLA{MonthlyFee: 50000, Credits: []CreditTier{{Below: 99.9, Credit: 0.1}, {Below: 99, Credit: 0.25}}},
		},
	}
	p, err := CompilePolicy(spec)
	if err != nil {
		t.Fatal(err)
	}
	tte := 72 * time.Hour
	avail := SLOState{
		Name: "checkout-availability", Service: "checkout", Objective: 99.9, Window: 720 * time.Hour,
		Good: 7_196_400, Total: 7_200_000, BudgetRemaining: f(0.5), BudgetRemainingEvents: f(3600),
		BurnRates: map[string]*float64{"1h": f(2), "5m": f(3)}, TimeToExhaustion: &tte, UpdatedAt: t0,
	}
	latency := SLOState{Name: "checkout-latency", Service: "checkout", Objective: 99, Window: 28 * 24 * time.Hour, UpdatedAt: t0}
	h := func(d time.Duration) time.Time { return t0.Add(-d) }
	deploys := []Deploy{
		{Service: "checkout", Version: "1", ChangeClass: Feature, Time: h(10 * time.Hour)},
		{Service: "checkout", Version: "2", ChangeClass: Feature, Time: h(5 * time.Hour)},
		{Service: "checkout", Version: "1", ChangeClass: Rollback, Time: h(270 * time.Minute)},
		{Service: "checkout", Version: "3", ChangeClass: Feature, Time: h(2 * time.Hour)},
		{Service: "checkout", Version: "4", Time: h(20 * time.Minute)},
	}
	events := history{
		{h(10 * time.Hour), h(9 * time.Hour)}:        {9928, 10000},  // 72 bad
		{h(5 * time.Hour), h(270 * time.Minute)}:     {4280, 5000},   // cut at the rollback; 720 bad
		{h(270 * time.Minute), h(210 * time.Minute)}: {9964, 10000},  // 36 bad
		{h(2 * time.Hour), h(time.Hour)}:             {10000, 10000}, // 0 bad
		{h(20 * time.Minute), t0}:                    {3189, 3333},   // cut at now; 144 bad
	}
	r := BuildRisk(p, "checkout", []SLOState{latency, avail}, deploys, t0, func(slo string, from, to time.Time) (float64, float64, error) {
		return events.SLOEvents(context.Background(), slo, from, to)
	})

	zero, quarter := 0.0, 0.25
	availNow, after1h, afterFR := 99.95, 100*7_186_400/7_200_000.0, 100*7_195_400/7_200_000.0
	tteSec := tte.Seconds()
	want := RiskReport{
		Service: "checkout", GeneratedAt: t0, Policy: "checkout",
		SLOs: []SLORisk{
			{
				Name: "checkout-availability", Objective: 99.9, Window: "30d", Good: 7_196_400, Total: 7_200_000,
				BudgetEvents: 7200, BudgetRemaining: f(0.5), BudgetRemainingEvents: f(3600),
				BurnRateNow: f(2), BurnRateWindow: "1h", TimeToExhaustionSeconds: &tteSec, AlertsFiring: []FiringAlert{},
				Release:          &ReleaseCost{Releases: 5, After: "1h", Median: 0.01, Mean: 0.027, Max: 0.1, MedianBadEvents: 72},
				OutageHourBudget: f(10000 / 7200.0), FailedReleaseBudget: f(1000 / 7200.0),
			},
			{Name: "checkout-latency", Objective: 99, Window: "28d", AlertsFiring: []FiringAlert{}},
		},
		Deploys: 5, Rollbacks: 1, ChangeFailureRate: &quarter,
		Money: &MoneyRisk{
			Currency: "USD", RevenuePerHour: 12000,
			OutageHour:            Cost{Revenue: 12000, SLACredit: 5000, Total: 17000, SLAAvailabilityAfter: &after1h},
			FailedRelease:         Cost{Revenue: 1200, SLACredit: 0, Total: 1200, SLAAvailabilityAfter: &afterFR},
			FailedReleaseImpact:   0.2,
			FailedReleaseDuration: "30m",
			ExpectedReleaseCost:   f(300),
			SLASLO:                "checkout-availability", SLAAvailability: &availNow, SLACreditNow: &zero,
		},
		Notes: []string{"checkout-latency: no traffic in its window, so no budget to measure costs against"},
	}
	approx := cmpopts.EquateApprox(1e-12, 1e-9)
	if diff := cmp.Diff(want, r, approx); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestRiskWithoutHistoryOrBusiness(t *testing.T) {
	clk := &clock{t: t0}
	states := StateFunc(func(string, time.Time) []SLOState {
		return []SLOState{{Name: "a", Objective: 99, Window: 24 * time.Hour, Good: 990, Total: 1000, BudgetRemaining: f(0), UpdatedAt: t0}}
	})
	store := NewMemoryStore()
	g, err := New(nil, Settings{States: states, Store: store, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.RecordDeploy(t.Context(), Deploy{Service: "checkout", Version: "v9", Time: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	r, err := g.Risk(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	wantNotes := []string{
		"the budget cost of past releases is unknown: no SLI history source",
		"no business inputs configured (policies[].business): money figures are left out",
	}
	if diff := cmp.Diff(wantNotes, r.Notes); diff != "" {
		t.Errorf("notes (-want +got)\n%s", diff)
	}
	if r.FeatureDecision != Deny || r.FeatureRule != RuleBudgetSpent || r.Money != nil || r.Deploys != 1 {
		t.Errorf("report: %+v", r)
	}
	if got := *r.SLOs[0].OutageHourBudget; math.Abs(got-1000/24.0/10) > 1e-12 {
		t.Errorf("outage hour budget = %v", got)
	}
	// The report is not a gate check: nothing in the audit log.
	if ds, _ := g.Decisions(t.Context(), DecisionQuery{}); len(ds) != 0 {
		t.Errorf("risk report recorded %d decisions", len(ds))
	}
}
