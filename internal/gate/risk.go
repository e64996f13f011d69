package gate

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// HistorySource gives an SLO's event counts over a past interval, for the
// budget each release cost.
type HistorySource interface {
	SLOEvents(ctx context.Context, slo string, from, to time.Time) (good, total float64, err error)
}

// RiskReport is what an SRE puts in front of a product manager before a
// release: how much budget is left, how fast it burns, what releases
// usually cost, and what an outage or a failed release costs in money.
type RiskReport struct {
	Service     string    `json:"service"`
	GeneratedAt time.Time `json:"generated_at"`
	Policy      string    `json:"policy"`
	// FeatureDecision, FeatureRule and FeatureReasons are what the gate
	// would answer now for a feature release (not recorded in the audit
	// log).
	FeatureDecision Verdict  `json:"feature_decision"`
	FeatureRule     string   `json:"feature_rule"`
	FeatureReasons  []string `json:"feature_reasons"`

	SLOs []SLORisk `json:"slos"`
	// Deploys is the number of deploy markers in the longest SLO window;
	// Rollbacks those of change class rollback.
	Deploys   int `json:"deploys"`
	Rollbacks int `json:"rollbacks"`
	// ChangeFailureRate is rollbacks per non-rollback deploy; nil without
	// deploys.
	ChangeFailureRate *float64 `json:"change_failure_rate"`

	// Money is present when business inputs are configured.
	Money *MoneyRisk `json:"money"`
	Notes []string   `json:"notes"`
}

// SLORisk is one SLO's part of the risk report.
type SLORisk struct {
	Name      string  `json:"name"`
	Objective float64 `json:"objective"`
	Window    string  `json:"window"`
	Good      float64 `json:"good"`
	Total     float64 `json:"total"`
	// BudgetEvents is the window's whole budget in events:
	// (1 - objective) x total.
	BudgetEvents          float64  `json:"budget_events"`
	BudgetRemaining       *float64 `json:"budget_remaining"`
	BudgetRemainingEvents *float64 `json:"budget_remaining_events"`
	// BurnRateNow is the burn rate over BurnRateWindow, the shortest
	// window with data among 1h, 30m, 5m.
	BurnRateNow             *float64      `json:"burn_rate_now"`
	BurnRateWindow          string        `json:"burn_rate_window,omitempty"`
	TimeToExhaustionSeconds *float64      `json:"time_to_exhaustion_seconds"`
	AlertsFiring            []FiringAlert `json:"alerts_firing"`
	Stale                   bool          `json:"stale"`
	// Release is the budget releases cost, from deploy markers.
	Release *ReleaseCost `json:"release_cost"`
	// OutageHourBudget is the share of the window's budget one hour of
	// full outage burns at the window's average traffic.
	OutageHourBudget *float64 `json:"outage_hour_budget"`
	// FailedReleaseBudget is the same for the configured failed release.
	FailedReleaseBudget *float64 `json:"failed_release_budget"`
}

// ReleaseCost sums up the budget consumed in the window after each deploy.
type ReleaseCost struct {
	Releases int    `json:"releases"`
	After    string `json:"after"` // the window charged to a release
	// Median, Mean and Max are fractions of the SLO window's budget.
	Median          float64 `json:"median_budget"`
	Mean            float64 `json:"mean_budget"`
	Max             float64 `json:"max_budget"`
	MedianBadEvents float64 `json:"median_bad_events"`
}

// MoneyRisk is the risk report's money figures.
type MoneyRisk struct {
	Currency       string  `json:"currency"`
	RevenuePerHour float64 `json:"revenue_per_hour"`
	// OutageHour is the cost of one hour of full outage: lost revenue and
	// the SLA credit it would newly trigger.
	OutageHour Cost `json:"outage_hour"`
	// FailedRelease is the cost of one failed release (Impact of requests
	// failing for Duration).
	FailedRelease         Cost    `json:"failed_release"`
	FailedReleaseImpact   float64 `json:"failed_release_impact"`
	FailedReleaseDuration string  `json:"failed_release_duration"`
	// ExpectedReleaseCost is FailedRelease.Total x the change failure rate;
	// nil without deploy history.
	ExpectedReleaseCost *float64 `json:"expected_release_cost"`
	// SLA figures: the SLO the contract reads, its availability now and
	// the credit owed now.
	SLASLO          string   `json:"sla_slo,omitempty"`
	SLAAvailability *float64 `json:"sla_availability,omitempty"` // percent
	SLACreditNow    *float64 `json:"sla_credit_now,omitempty"`
}

// Cost is a money figure split by cause.
type Cost struct {
	Revenue   float64 `json:"revenue"`
	SLACredit float64 `json:"sla_credit"`
	Total     float64 `json:"total"`
	// SLAAvailabilityAfter is the SLA availability (percent) after the
	// event, when an SLA is configured.
	SLAAvailabilityAfter *float64 `json:"sla_availability_after,omitempty"`
}

// Risk builds the risk report of service at now.
func (g *Gate) Risk(ctx context.Context, service string) (RiskReport, error) {
	if err := checkField("service", service, true); err != nil {
		return RiskReport{}, err
	}
	now := g.now()
	p := g.Policy(service)
	states := g.states.SLOStates(service, now)
	g.mu.RLock()
	d := p.Evaluate(CheckRequest{Service: service, ChangeClass: Feature}, states, g.active, now)
	g.mu.RUnlock()

	var longest time.Duration
	for _, st := range states {
		longest = max(longest, st.Window)
	}
	if longest == 0 {
		longest = 30 * 24 * time.Hour
	}
	deploys, err := g.store.Deploys(ctx, DeployQuery{Service: service, From: now.Add(-longest), To: now.Add(time.Nanosecond), Limit: MaxLimit})
	if err != nil {
		return RiskReport{}, fmt.Errorf("list deploys of %s: %w", service, err)
	}
	r := BuildRisk(p, service, states, deploys, now, func(slo string, from, to time.Time) (float64, float64, error) {
		if g.history == nil {
			return 0, 0, errNoHistory
		}
		return g.history.SLOEvents(ctx, slo, from, to)
	})
	r.FeatureDecision, r.FeatureRule, r.FeatureReasons = d.Verdict, d.PolicyRule, d.Reasons
	return r, nil
}

var errNoHistory = fmt.Errorf("no SLI history source")

// BuildRisk computes the risk report from the service's SLO states, its
// deploy markers (oldest first) and an event-history function. It is pure
// but for what events does.
func BuildRisk(p *Policy, service string, states []SLOState, deploys []Deploy, now time.Time,
	events func(slo string, from, to time.Time) (good, total float64, err error)) RiskReport {
	r := RiskReport{Service: service, GeneratedAt: now, Policy: p.label, SLOs: []SLORisk{}, Notes: []string{}}
	sorted := slices.Clone(states)
	slices.SortStableFunc(sorted, func(a, b SLOState) int { return strings.Compare(a.Name, b.Name) })
	if len(sorted) == 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("no SLO is defined for service %q", service))
	}

	nonRollback := 0
	for _, d := range deploys {
		r.Deploys++
		if d.ChangeClass == Rollback {
			r.Rollbacks++
		} else {
			nonRollback++
		}
	}
	if nonRollback > 0 {
		cfr := float64(r.Rollbacks) / float64(nonRollback)
		r.ChangeFailureRate = &cfr
	}

	b := p.business
	fr := b.FailedRelease
	historyNoted := false
	for _, st := range sorted {
		sr := SLORisk{
			Name:                  st.Name,
			Objective:             st.Objective,
			Window:                units.FormatDuration(st.Window),
			Good:                  st.Good,
			Total:                 st.Total,
			BudgetEvents:          (1 - st.Objective/100) * st.Total,
			BudgetRemaining:       finite(st.BudgetRemaining),
			BudgetRemainingEvents: finite(st.BudgetRemainingEvents),
			AlertsFiring:          append([]FiringAlert{}, st.AlertsFiring...),
			Stale:                 st.UpdatedAt.IsZero() || now.Sub(st.UpdatedAt) > p.staleAfter,
		}
		for _, w := range []string{"1h", "30m", "5m"} {
			if v := finite(st.BurnRates[w]); v != nil {
				sr.BurnRateNow, sr.BurnRateWindow = v, w
				break
			}
		}
		if st.TimeToExhaustion != nil {
			s := st.TimeToExhaustion.Seconds()
			sr.TimeToExhaustionSeconds = &s
		}
		hours := st.Window.Hours()
		if sr.BudgetEvents > 0 && hours > 0 {
			perHour := st.Total / hours
			outage := perHour / sr.BudgetEvents
			failed := float64(fr.Impact) * fr.Duration.Std().Hours() * perHour / sr.BudgetEvents
			sr.OutageHourBudget, sr.FailedReleaseBudget = &outage, &failed

			costs, err := releaseCosts(st, deploys, p.releaseWindow, now, sr.BudgetEvents, events)
			switch {
			case err != nil && !historyNoted:
				historyNoted = true
				r.Notes = append(r.Notes, "the budget cost of past releases is unknown: "+err.Error())
			case len(costs) > 0:
				sr.Release = summarizeCosts(costs, p.releaseWindow)
			}
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: no traffic in its window, so no budget to measure costs against", st.Name))
		}
		r.SLOs = append(r.SLOs, sr)
	}
	if len(deploys) == 0 {
		r.Notes = append(r.Notes, "no deploy markers recorded (POST /api/v1/deploys): release costs and the change failure rate are unknown")
	}
	if b.RevenuePerHour > 0 || b.SLA.MonthlyFee > 0 {
		r.Money = moneyRisk(b, sorted, r.ChangeFailureRate)
		if r.Money.SLASLO == "" && len(b.SLA.Credits) > 0 {
			r.Notes = append(r.Notes, "SLA credits not estimated: the SLA's SLO has no traffic or does not exist")
		}
	} else {
		r.Notes = append(r.Notes, "no business inputs configured (policies[].business): money figures are left out")
	}
	return r
}

// releaseCosts returns, per deploy inside the SLO's window, the share of
// the window's budget consumed between the deploy and the earliest of
// after later, the next deploy, and now.
func releaseCosts(st SLOState, deploys []Deploy, after time.Duration, now time.Time, budget float64,
	events func(slo string, from, to time.Time) (float64, float64, error)) ([]releaseSample, error) {
	var out []releaseSample
	for i, d := range deploys {
		if d.Time.Before(now.Add(-st.Window)) || !d.Time.Before(now) {
			continue
		}
		end := d.Time.Add(after)
		if i+1 < len(deploys) && deploys[i+1].Time.Before(end) {
			end = deploys[i+1].Time
		}
		if now.Before(end) {
			end = now
		}
		if !end.After(d.Time) {
			continue
		}
		good, total, err := events(st.Name, d.Time, end)
		if err != nil {
			return nil, err
		}
		bad := math.Max(total-good, 0)
		out = append(out, releaseSample{bad: bad, budget: bad / budget})
	}
	return out, nil
}

type releaseSample struct{ bad, budget float64 }

func summarizeCosts(s []releaseSample, after time.Duration) *ReleaseCost {
	budgets := make([]float64, len(s))
	bads := make([]float64, len(s))
	sum, mx := 0.0, 0.0
	for i, x := range s {
		budgets[i], bads[i] = x.budget, x.bad
		sum += x.budget
		mx = math.Max(mx, x.budget)
	}
	return &ReleaseCost{
		Releases:        len(s),
		After:           units.FormatDuration(after),
		Median:          median(budgets),
		Mean:            sum / float64(len(s)),
		Max:             mx,
		MedianBadEvents: median(bads),
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func moneyRisk(b Business, states []SLOState, cfr *float64) *MoneyRisk {
	fr := b.FailedRelease
	frHours := fr.Duration.Std().Hours()
	m := &MoneyRisk{
		Currency:              b.Currency,
		RevenuePerHour:        b.RevenuePerHour,
		FailedReleaseImpact:   float64(fr.Impact),
		FailedReleaseDuration: fr.Duration.String(),
	}
	m.OutageHour.Revenue = b.RevenuePerHour
	m.FailedRelease.Revenue = b.RevenuePerHour * float64(fr.Impact) * frHours

	if sla := slaState(b.SLA, states); sla != nil && len(b.SLA.Credits) > 0 {
		avail := 100 * sla.Good / sla.Total
		perHour := sla.Total / sla.Window.Hours()
		owed := creditShare(b.SLA.Credits, avail)
		credit := owed * b.SLA.MonthlyFee
		m.SLASLO, m.SLAAvailability, m.SLACreditNow = sla.Name, &avail, &credit
		// An event turns that many good requests of the window bad; the
		// credit it costs is the step to a deeper tier, if any.
		after := func(bad float64) (float64, float64) {
			a := 100 * math.Max(sla.Good-bad, 0) / sla.Total
			return a, (creditShare(b.SLA.Credits, a) - owed) * b.SLA.MonthlyFee
		}
		a1, c1 := after(perHour)
		m.OutageHour.SLACredit, m.OutageHour.SLAAvailabilityAfter = c1, &a1
		a2, c2 := after(perHour * float64(fr.Impact) * frHours)
		m.FailedRelease.SLACredit, m.FailedRelease.SLAAvailabilityAfter = c2, &a2
	}
	m.OutageHour.Total = m.OutageHour.Revenue + m.OutageHour.SLACredit
	m.FailedRelease.Total = m.FailedRelease.Revenue + m.FailedRelease.SLACredit
	if cfr != nil {
		e := *cfr * m.FailedRelease.Total
		m.ExpectedReleaseCost = &e
	}
	return m
}

// slaState returns the SLO the SLA reads: the named one, or the first with
// traffic; nil when none has traffic.
func slaState(sla SLA, states []SLOState) *SLOState {
	for i := range states {
		st := &states[i]
		if (sla.SLO == "" || st.Name == sla.SLO) && st.Total > 0 && st.Window > 0 {
			return st
		}
	}
	return nil
}

// creditShare is the credit of the deepest tier whose threshold the
// availability is under.
func creditShare(tiers []CreditTier, avail float64) float64 {
	share := 0.0
	for _, t := range tiers {
		if avail < t.Below {
			share = math.Max(share, float64(t.Credit))
		}
	}
	return share
}
