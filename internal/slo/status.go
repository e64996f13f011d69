package slo

import (
	"fmt"
	"math"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Status is an SLO's state at an instant: what the API returns for
// GET /api/v1/slos/{name} and what the release gate reads. Values that need
// traffic are nil ("no data", null in JSON) when the window had none.
type Status struct {
	Name        string `json:"name"`
	Service     string `json:"service"`
	Description string `json:"description,omitempty"`
	// Objective is the target in percent.
	Objective float64 `json:"objective"`
	// Window is "30d" for a rolling window, "month" or "week" for a
	// calendar one; WindowStart..WindowEnd is the current period (WindowEnd
	// is now for a rolling window).
	Window string `json:"window"`
	// WindowSeconds is the length of the window (of the current period for
	// a calendar window).
	WindowSeconds   float64   `json:"window_seconds"`
	WindowStart     time.Time `json:"window_start"`
	WindowEnd       time.Time `json:"window_end"`
	BudgetingMethod string    `json:"budgeting_method"`
	SLIKind         string    `json:"sli_kind"`
	Threshold       string    `json:"threshold,omitempty"`

	// Good and Total count the window's events (time slices with the
	// timeslices methods), net of corrections.
	Good  float64  `json:"good"`
	Total float64  `json:"total"`
	SLI   *float64 `json:"sli"`
	// BudgetRemaining is the fraction of the error budget left: 1
	// untouched, 0 spent, negative overspent.
	BudgetRemaining *float64 `json:"budget_remaining"`
	BudgetExhausted bool     `json:"budget_exhausted"`
	Budget          Budget   `json:"budget"`
	// BurnRates maps each window ("5m", "30m", "1h", "2h", "6h", "1d",
	// "3d" and the SLO window's label) to its burn rate, nil without data.
	BurnRates map[string]*float64 `json:"burn_rates"`
	Windows   []WindowStatus      `json:"windows"`
	// Coverage is the share of the SLO window (so far, for a calendar
	// window) during which tailgate was counting.
	Coverage float64 `json:"coverage"`
	// TimeToExhaustion is when the remaining budget runs out at the
	// current 1h burn rate; nil when it does not burn.
	TimeToExhaustion     *float64            `json:"time_to_exhaustion_seconds"`
	TimeToExhaustionText string              `json:"time_to_exhaustion,omitempty"`
	Alerts               []Alert             `json:"alerts"`
	Groups               []GroupStatus       `json:"groups,omitempty"`
	Corrections          []CorrectionSummary `json:"corrections,omitempty"`
	Warnings             []string            `json:"warnings,omitempty"`
	LastEventAt          *time.Time          `json:"last_event_at"`
	TrackedSince         time.Time           `json:"tracked_since"`
	EvaluatedAt          time.Time           `json:"evaluated_at"`
	AlertsEvaluatedAt    time.Time           `json:"alerts_evaluated_at,omitzero"`
}

// Budget is the error budget in events over the SLO window.
type Budget struct {
	// Total is the allowed bad events: (1 - objective) × total.
	Total     float64 `json:"total_events"`
	Consumed  float64 `json:"consumed_events"`
	Remaining float64 `json:"remaining_events"`
	// ConsumedRatio is Consumed / Total; nil without data.
	ConsumedRatio *float64 `json:"consumed"`
}

// WindowStatus is one window's numbers.
type WindowStatus struct {
	Window     string   `json:"window"`
	Good       float64  `json:"good"`
	Total      float64  `json:"total"`
	SLI        *float64 `json:"sli"`
	ErrorRatio *float64 `json:"error_ratio"`
	BurnRate   *float64 `json:"burn_rate"`
	Coverage   float64  `json:"coverage"`
}

// GroupStatus is one group of a grouped SLO.
type GroupStatus struct {
	Group           string              `json:"group"`
	Good            float64             `json:"good"`
	Total           float64             `json:"total"`
	SLI             *float64            `json:"sli"`
	BudgetRemaining *float64            `json:"budget_remaining"`
	BurnRates       map[string]*float64 `json:"burn_rates"`
	Coverage        float64             `json:"coverage"`
}

// CorrectionSummary is a correction that overlaps the SLO window, with the
// events it excluded from it.
type CorrectionSummary struct {
	Correction
	ExcludedGood  uint64 `json:"excluded_good"`
	ExcludedTotal uint64 `json:"excluded_total"`
}

// Alert is an alert of an SLO that is pending or firing.
type Alert struct {
	SLO     string `json:"slo"`
	Service string `json:"service"`
	// Group is the group value of a grouped SLO, "" otherwise.
	Group string `json:"group,omitempty"`
	// Name is the rule's name (a tier such as page-1h, or budget-exhausted,
	// budget-low, no-data); AlertName the Alertmanager alertname.
	Name       string      `json:"name"`
	AlertName  string      `json:"alertname"`
	Kind       AlertKind   `json:"kind"`
	Severity   Severity    `json:"severity"`
	State      AlertState  `json:"state"`
	ActiveAt   time.Time   `json:"active_at"`
	FiredAt    time.Time   `json:"fired_at,omitzero"`
	ResolvedAt time.Time   `json:"resolved_at,omitzero"`
	Values     AlertValues `json:"values"`
	Summary    string      `json:"summary"`
}

// Transition is a recorded change of an alert's state.
type Transition struct {
	SLO      string      `json:"slo"`
	Service  string      `json:"service"`
	Group    string      `json:"group,omitempty"`
	Alert    string      `json:"alert"`
	Kind     AlertKind   `json:"kind"`
	Severity Severity    `json:"severity"`
	From     AlertState  `json:"from"`
	To       AlertState  `json:"to"`
	At       time.Time   `json:"at"`
	Values   AlertValues `json:"values"`
}

// HistoryPoint is an SLO's state at one step of a history query.
type HistoryPoint struct {
	Time            time.Time           `json:"time"`
	Good            float64             `json:"good"`
	Total           float64             `json:"total"`
	SLI             *float64            `json:"sli"`
	BudgetRemaining *float64            `json:"budget_remaining"`
	BurnRates       map[string]*float64 `json:"burn_rates"`
}

// ratio returns num/den, or false without data.
func ratio(num, den float64) (float64, bool) {
	if den == 0 {
		return 0, false
	}
	return num / den, true
}

// errorBudget returns 1 - objective for an objective in percent, rounded
// to 12 decimals so that 99.9% gives exactly the float64 nearest 0.001
// rather than 100-99.9's representation error.
func errorBudget(percent float64) float64 {
	return math.Round((100-percent)*1e10) / 1e12
}

// burnRate returns (bad/total)/eb, eb being the error budget fraction
// (1 - objective). With a 100% objective (eb 0) it is +Inf as soon as one
// event is bad.
func burnRate(good, total, eb float64) (float64, bool) {
	if total == 0 {
		return 0, false
	}
	bad := total - good
	if eb <= 0 {
		if bad > 0 {
			return math.Inf(1), true
		}
		return 0, true
	}
	return (bad / total) / eb, true
}

// budgetRemaining returns 1 - bad/(eb×total).
func budgetRemaining(good, total, eb float64) (float64, bool) {
	if total == 0 {
		return 0, false
	}
	bad := total - good
	if eb <= 0 {
		if bad > 0 {
			return 0, true
		}
		return 1, true
	}
	return 1 - bad/(eb*total), true
}

// ptr returns a pointer to v when ok and v is finite, else nil.
func ptr(v float64, ok bool) *float64 {
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// coverage returns the share of [start, now] after since.
func coverage(start, now, since time.Time) float64 {
	span := now.Sub(start)
	if span <= 0 {
		if !since.After(start) {
			return 1
		}
		return 0
	}
	if !since.After(start) {
		return 1
	}
	c := float64(now.Sub(since)) / float64(span)
	return max(0, min(1, c))
}

// measure holds the numbers of one series at an instant.
type measure struct {
	win       []counted // aligned with sloState.windows
	whole     counted
	wholeFrom time.Time
	wholeTo   time.Time
	length    time.Duration // the SLO window's length (current period)
}

type counted struct {
	good, total float64
	coverage    float64
}

// measureSeries computes every window of a series at now. m is now's
// minute; cur and live are the engine's open minute and the series' open
// counts.
func (st *sloState) measureSeries(s *series, now time.Time, cur units.Minute, live cnt, out *measure) {
	m := units.MinuteOf(now)
	if cap(out.win) < len(st.windows) {
		out.win = make([]counted, len(st.windows))
	}
	out.win = out.win[:len(st.windows)]
	for i, w := range st.windows {
		a := m - units.Minute(w)
		g, t := st.counts(s, a, m, cur, live)
		out.win[i] = counted{g, t, coverage(a.Time(), now, s.since)}
	}
	a, end := st.per.bounds(now)
	g, t := st.counts(s, a, m, cur, live)
	out.whole = counted{g, t, coverage(a.Time(), now, s.since)}
	out.wholeFrom, out.wholeTo = a.Time(), end
	out.length = st.per.length(now)
}

// timeToExhaustion returns how long the remaining budget lasts at a burn
// rate: a burn rate of 1 spends the whole budget over one window length.
func timeToExhaustion(remaining float64, burn float64, length time.Duration) (time.Duration, bool) {
	if remaining <= 0 {
		return 0, true
	}
	if !(burn > 0) || math.IsInf(burn, 1) {
		if math.IsInf(burn, 1) {
			return 0, true
		}
		return 0, false
	}
	d := remaining / burn * float64(length)
	if d > float64(math.MaxInt64) {
		return 0, false
	}
	return time.Duration(d), true
}

// fill writes the numbers of a measure into a Status.
func (st *sloState) fill(ms *measure, out *Status) {
	eb := st.eb
	out.Good, out.Total = ms.whole.good, ms.whole.total
	out.SLI = ptr(ratio(ms.whole.good, ms.whole.total))
	rem, ok := budgetRemaining(ms.whole.good, ms.whole.total, eb)
	out.BudgetRemaining = ptr(rem, ok)
	out.BudgetExhausted = ok && rem <= 0
	bad := ms.whole.total - ms.whole.good
	out.Budget = Budget{Total: eb * ms.whole.total, Consumed: bad, Remaining: eb*ms.whole.total - bad}
	out.Budget.ConsumedRatio = ptr(1-rem, ok && eb > 0)
	out.Coverage = ms.whole.coverage
	out.WindowStart, out.WindowEnd = ms.wholeFrom, ms.wholeTo
	out.WindowSeconds = ms.length.Seconds()
	out.BurnRates = make(map[string]*float64, len(statusWindows)+1)
	out.Windows = out.Windows[:0]
	for i, w := range statusWindows {
		c := ms.win[st.statusIdx[i]]
		out.Windows = append(out.Windows, windowStatus(w.label, c, eb))
		out.BurnRates[w.label] = out.Windows[len(out.Windows)-1].BurnRate
	}
	whole := windowStatus(st.per.label, ms.whole, eb)
	if _, dup := out.BurnRates[st.per.label]; !dup {
		out.Windows = append(out.Windows, whole)
		out.BurnRates[st.per.label] = whole.BurnRate
	}
	out.TimeToExhaustion, out.TimeToExhaustionText = nil, ""
	if ok {
		b1, ok1 := burnRate(ms.win[st.oneHour].good, ms.win[st.oneHour].total, eb)
		if ok1 {
			if d, ok := timeToExhaustion(rem, b1, ms.length); ok {
				sec := d.Seconds()
				out.TimeToExhaustion = &sec
				out.TimeToExhaustionText = units.FormatDuration(d.Round(time.Minute))
			}
		}
	}
}

func windowStatus(label string, c counted, eb float64) WindowStatus {
	w := WindowStatus{Window: label, Good: c.good, Total: c.total, Coverage: c.coverage}
	w.SLI = ptr(ratio(c.good, c.total))
	w.ErrorRatio = ptr(ratio(c.total-c.good, c.total))
	w.BurnRate = ptr(burnRate(c.good, c.total, eb))
	return w
}

// summary is an alert's one-line explanation.
func (r *rule) summary(st *sloState, v *AlertValues) string {
	f := func(p *float64) string {
		if p == nil {
			return "no data"
		}
		return fmt.Sprintf("%.3g", *p)
	}
	switch r.kind {
	case BudgetExhaustedAlert:
		return fmt.Sprintf("%s: error budget exhausted (remaining %s)", st.spec.Name, f(v.BudgetRemaining))
	case BudgetLowAlert:
		return fmt.Sprintf("%s: error budget remaining %s is under %.3g", st.spec.Name, f(v.BudgetRemaining), r.below)
	case NoDataAlert:
		return fmt.Sprintf("%s: no requests for %s", st.spec.Name, windowLabel(r.long))
	}
	return fmt.Sprintf("%s: burn rate %s over %s and %s over %s, threshold %.3g", st.spec.Name,
		f(v.BurnRateLong), v.LongWindow, f(v.BurnRateShort), v.ShortWindow, r.burn)
}

// Status returns an SLO's state at now.
func (e *Engine) Status(name string, now time.Time) (Status, bool) {
	st := e.byName[name]
	if st == nil {
		return Status{}, false
	}
	e.syncTo(now)
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.statusLocked(st, now), true
}

// List returns every SLO's state at now, in configuration order.
func (e *Engine) List(now time.Time) []Status {
	e.syncTo(now)
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]Status, 0, len(e.slos))
	for _, st := range e.slos {
		out = append(out, e.statusLocked(st, now))
	}
	return out
}

// ServiceStatus returns the states at now of the SLOs of one service (what
// the release gate reads), in configuration order.
func (e *Engine) ServiceStatus(service string, now time.Time) []Status {
	plan := e.byService[service]
	if plan == nil {
		return nil
	}
	slos := plan.slos
	e.syncTo(now)
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]Status, 0, len(slos))
	for _, st := range slos {
		out = append(out, e.statusLocked(st, now))
	}
	return out
}

// Specs returns the specs the engine runs.
func (e *Engine) Specs() []Spec {
	out := make([]Spec, len(e.slos))
	for i, st := range e.slos {
		out[i] = st.spec
	}
	return out
}

func (e *Engine) statusLocked(st *sloState, now time.Time) Status {
	cur := e.openMinute()
	out := Status{
		Name: st.spec.Name, Service: st.spec.Service, Description: st.spec.Description, Objective: st.spec.Objective,
		Window: st.per.label, BudgetingMethod: st.method.String(), SLIKind: st.kind.String(),
		TrackedSince: st.since, EvaluatedAt: now, AlertsEvaluatedAt: e.lastEval,
	}
	if st.kind == Latency {
		out.Threshold = st.spec.SLI.Threshold.String()
	}
	var ms measure
	st.measureSeries(st.agg, now, cur, unpack(st.agg.live.Load()), &ms)
	st.fill(&ms, &out)
	out.Alerts = st.activeAlerts([]Alert{})
	if t, ok := lastEvent(st.agg, cur); ok {
		out.LastEventAt = &t
	}
	if st.groupBy != nil {
		for _, s := range st.groups.Load().list {
			var gm measure
			st.measureSeries(s, now, cur, unpack(s.live.Load()), &gm)
			var gs Status
			st.fill(&gm, &gs)
			out.Groups = append(out.Groups, GroupStatus{Group: s.group, Good: gs.Good, Total: gs.Total, SLI: gs.SLI,
				BudgetRemaining: gs.BudgetRemaining, BurnRates: gs.BurnRates, Coverage: gs.Coverage})
		}
	}
	a := units.MinuteOf(out.WindowStart)
	m := units.MinuteOf(now)
	for _, c := range st.corrections {
		var ex cnt
		c.Occurrences(out.WindowStart, now, func(s, e time.Time) {
			em := units.MinuteOf(e)
			if !em.Time().Equal(e) {
				em++
			}
			x := st.agg.raw(max(a, units.MinuteOf(s)), min(m+1, em), cur, unpack(st.agg.live.Load()))
			ex.good += x.good
			ex.total += x.total
		})
		hit := false
		c.Occurrences(out.WindowStart, now.Add(24*time.Hour), func(time.Time, time.Time) { hit = true })
		if hit {
			out.Corrections = append(out.Corrections, CorrectionSummary{Correction: c, ExcludedGood: ex.good, ExcludedTotal: ex.total})
		}
	}
	if st.method == Occurrences && st.eb > 0 && out.Total > 0 && st.eb*out.Total < 10 {
		out.Warnings = append(out.Warnings, fmt.Sprintf(
			"low traffic: %.0f requests in the window allow %.2f bad ones, so one failure spends %.0f%% of the error budget",
			out.Total, st.eb*out.Total, 100/(st.eb*out.Total)))
	}
	return out
}

func lastEvent(s *series, cur units.Minute) (time.Time, bool) {
	if unpack(s.live.Load()).total > 0 {
		return cur.Time(), true
	}
	if k, ok := s.ev.last(); ok {
		return k.Time(), true
	}
	return time.Time{}, false
}

// Alerts returns every pending or firing alert at now.
func (e *Engine) Alerts() []Alert {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := []Alert{}
	for _, st := range e.slos {
		out = st.activeAlerts(out)
	}
	return out
}

// Transitions returns the most recent alert transitions kept in memory,
// newest first, of one SLO when slo is not empty.
func (e *Engine) Transitions(slo string, limit int) []Transition {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := []Transition{}
	for i := len(e.recent) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if slo == "" || e.recent[i].SLO == slo {
			out = append(out, e.recent[i])
		}
	}
	return out
}

// maxHistoryPoints bounds a history query.
const maxHistoryPoints = 11000

// History returns an SLO's SLI, budget remaining and burn rates from from
// to to every step (at least a minute), as they were at each instant.
func (e *Engine) History(name string, from, to time.Time, step time.Duration, now time.Time) ([]HistoryPoint, error) {
	st := e.byName[name]
	if st == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownSLO, name)
	}
	if step < time.Minute {
		return nil, fmt.Errorf("%w: step must be at least 1m, got %s", ErrInvalid, step)
	}
	if to.After(now) {
		to = now
	}
	if to.Before(from) {
		return nil, fmt.Errorf("%w: from must not be after to", ErrInvalid)
	}
	if n := to.Sub(from) / step; n >= maxHistoryPoints {
		return nil, fmt.Errorf("%w: %d points exceed the limit of %d; raise step", ErrInvalid, n+1, maxHistoryPoints)
	}
	e.syncTo(now)
	e.mu.RLock()
	defer e.mu.RUnlock()
	cur := e.openMinute()
	live := unpack(st.agg.live.Load())
	var ms measure
	out := []HistoryPoint{}
	for t := from; !t.After(to); t = t.Add(step) {
		st.measureSeries(st.agg, t, cur, live, &ms)
		var s Status
		st.fill(&ms, &s)
		out = append(out, HistoryPoint{Time: t, Good: s.Good, Total: s.Total, SLI: s.SLI, BudgetRemaining: s.BudgetRemaining, BurnRates: s.BurnRates})
	}
	return out, nil
}
