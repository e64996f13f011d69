package slo

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// AlertState is where an alert is in its life.
type AlertState uint8

// Alert states. An alert goes inactive → pending (its condition holds, for
// less than its for duration) → firing → resolved (its condition has been
// false for keep_firing_for); resolved behaves as inactive for the next
// evaluation.
const (
	Inactive AlertState = iota
	Pending
	Firing
	Resolved
)

// String returns the state's name.
func (s AlertState) String() string {
	switch s {
	case Pending:
		return "pending"
	case Firing:
		return "firing"
	case Resolved:
		return "resolved"
	}
	return "inactive"
}

// MarshalText implements encoding.TextMarshaler.
func (s AlertState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *AlertState) UnmarshalText(b []byte) error {
	switch string(b) {
	case "inactive":
		*s = Inactive
	case "pending":
		*s = Pending
	case "firing":
		*s = Firing
	case "resolved":
		*s = Resolved
	default:
		return fmt.Errorf("unknown alert state %q", b)
	}
	return nil
}

// AlertKind is what an alert watches.
type AlertKind uint8

// Alert kinds.
const (
	BurnRateAlert AlertKind = iota
	BudgetExhaustedAlert
	BudgetLowAlert
	NoDataAlert
)

// String returns the kind's name.
func (k AlertKind) String() string {
	switch k {
	case BudgetExhaustedAlert:
		return "budget_exhausted"
	case BudgetLowAlert:
		return "budget_low"
	case NoDataAlert:
		return "no_data"
	}
	return "burn_rate"
}

// MarshalText implements encoding.TextMarshaler.
func (k AlertKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *AlertKind) UnmarshalText(b []byte) error {
	for _, c := range []AlertKind{BurnRateAlert, BudgetExhaustedAlert, BudgetLowAlert, NoDataAlert} {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("unknown alert kind %q", b)
}

// AlertName returns the Alertmanager alertname of an alert kind.
func (k AlertKind) AlertName() string {
	switch k {
	case BudgetExhaustedAlert:
		return "SLOErrorBudgetExhausted"
	case BudgetLowAlert:
		return "SLOErrorBudgetLow"
	case NoDataAlert:
		return "SLONoData"
	}
	return "SLOBurnRateTooHigh"
}

// defaultTiers are the Google SRE Workbook's multi-window multi-burn-rate
// alerts for a 30-day window (chapter 5, table 5-8). Each spends the same
// share of the budget before firing (2%, 5%, 10%, 10%) whatever the SLO's
// window, since the windows scale with it.
func defaultTiers() []TierSpec {
	d := func(v time.Duration) units.Duration { return units.Duration(v) }
	return []TierSpec{
		{Name: "page-1h", Severity: Page, BurnRate: 14.4, LongWindow: d(time.Hour), ShortWindow: d(5 * time.Minute)},
		{Name: "page-6h", Severity: Page, BurnRate: 6, LongWindow: d(6 * time.Hour), ShortWindow: d(30 * time.Minute)},
		{Name: "ticket-1d", Severity: Ticket, BurnRate: 3, LongWindow: d(24 * time.Hour), ShortWindow: d(2 * time.Hour)},
		{Name: "ticket-3d", Severity: Ticket, BurnRate: 1, LongWindow: d(72 * time.Hour), ShortWindow: d(6 * time.Hour)},
	}
}

// DefaultMinCoverage is the share of a tier's long window that must hold
// data before the tier can fire.
const DefaultMinCoverage = 0.9

// referenceWindow is the SLO window the tier windows are written for.
const referenceWindow = 30 * 24 * time.Hour

// rule is a compiled alert of an SLO.
type rule struct {
	kind     AlertKind
	name     string
	severity Severity
	// Burn-rate tiers: the threshold and the windows in minutes (indexes
	// into the SLO's window list).
	burn        float64
	long, short int64
	longLabel   string
	shortLabel  string
	longIdx     int
	shortIdx    int
	// budgetLow: the remaining fraction under which it fires; noData: the
	// window (minutes) that must be empty, at index longIdx.
	below float64
	// forDur is how long the condition must hold before firing;
	// keepFiringFor how long a firing alert outlives its condition.
	forDur, keepFiringFor time.Duration
}

// scaleWindow scales a window written for 30 days to an SLO window of
// length w, in whole minutes (at least one).
func scaleWindow(d time.Duration, w time.Duration) int64 {
	m := math.Round(float64(d) * (float64(w) / float64(referenceWindow)) / float64(time.Minute))
	return max(1, int64(m))
}

// compileRules turns an SLO's alerting spec into rules. windowLen is the
// SLO window's nominal length (30d for a calendar month, 7d for a week).
func compileRules(a *AlertingSpec, windowLen time.Duration) []rule {
	if a.Disabled {
		return nil
	}
	var out []rule
	tiers := a.Tiers
	if len(tiers) == 0 {
		tiers = defaultTiers()
	}
	for _, t := range tiers {
		if slices.Contains(a.DisableTiers, t.Name) {
			continue
		}
		r := rule{kind: BurnRateAlert, name: t.Name, severity: t.Severity, burn: t.BurnRate, forDur: t.For.Std()}
		if t.Scale == nil || *t.Scale {
			r.long, r.short = scaleWindow(t.LongWindow.Std(), windowLen), scaleWindow(t.ShortWindow.Std(), windowLen)
		} else {
			r.long, r.short = max(1, int64(t.LongWindow.Std()/time.Minute)), max(1, int64(t.ShortWindow.Std()/time.Minute))
		}
		r.keepFiringFor = time.Duration(r.short) * time.Minute
		if t.KeepFiringFor != nil {
			r.keepFiringFor = t.KeepFiringFor.Std()
		}
		out = append(out, r)
	}
	if b := a.BudgetExhausted; b == nil || b.Enabled == nil || *b.Enabled {
		r := rule{kind: BudgetExhaustedAlert, name: "budget-exhausted", severity: Ticket}
		if b != nil {
			r.forDur = b.For.Std()
			if b.Severity != SeverityNone {
				r.severity = b.Severity
			}
		}
		out = append(out, r)
	}
	if b := a.BudgetLow; b != nil && (b.Enabled == nil || *b.Enabled) {
		r := rule{kind: BudgetLowAlert, name: "budget-low", severity: Ticket, below: b.Below / 100, forDur: b.For.Std()}
		if b.Severity != SeverityNone {
			r.severity = b.Severity
		}
		out = append(out, r)
	}
	for i := range out {
		out[i].longLabel, out[i].shortLabel = windowLabel(out[i].long), windowLabel(out[i].short)
	}
	if n := a.NoData; n != nil {
		r := rule{kind: NoDataAlert, name: "no-data", severity: Ticket, long: max(1, int64(n.For.Std()/time.Minute))}
		if n.Severity != SeverityNone {
			r.severity = n.Severity
		}
		out = append(out, r)
	}
	return out
}

// AlertValues are the numbers behind an alert's condition at an evaluation.
type AlertValues struct {
	// Burn-rate tiers.
	Threshold     float64  `json:"threshold,omitempty"`
	LongWindow    string   `json:"long_window,omitempty"`
	ShortWindow   string   `json:"short_window,omitempty"`
	BurnRateLong  *float64 `json:"burn_rate_long,omitempty"`
	BurnRateShort *float64 `json:"burn_rate_short,omitempty"`
	// Coverage of the long window (burn-rate tiers) or the SLO window.
	Coverage        float64  `json:"coverage"`
	BudgetRemaining *float64 `json:"budget_remaining"`
}

// alertInstance is one rule's state on one series.
type alertInstance struct {
	state     AlertState
	activeAt  time.Time // condition first held (pending since)
	firedAt   time.Time
	lastTrue  time.Time // last evaluation at which the condition held
	changedAt time.Time
	values    AlertValues
}

// step advances the state machine with the condition's value at now and
// reports the transition, if any. The rules that keep alerts quiet:
//   - pending becomes firing only after the condition held for forDur;
//     a condition that drops while pending returns to inactive silently;
//   - firing resolves only once the condition has been false for
//     keepFiringFor since it last held, so a burn rate hovering at the
//     threshold does not fire and resolve at every evaluation;
//   - the caller makes the condition false while the long window's
//     coverage is under the threshold (no cold-start pages).
func (a *alertInstance) step(cond bool, now time.Time, r *rule) (from, to AlertState, changed bool) {
	from = a.state
	switch a.state {
	case Inactive, Resolved:
		if !cond {
			if a.state == Resolved {
				a.state = Inactive // quietly: resolved was already reported
			}
			return from, a.state, false
		}
		a.activeAt, a.lastTrue = now, now
		if r.forDur <= 0 {
			a.state, a.firedAt = Firing, now
		} else {
			a.state = Pending
		}
	case Pending:
		if !cond {
			a.state = Inactive
			break
		}
		a.lastTrue = now
		if now.Sub(a.activeAt) < r.forDur {
			return from, a.state, false
		}
		a.state, a.firedAt = Firing, now
	case Firing:
		if cond {
			a.lastTrue = now
			return from, a.state, false
		}
		if now.Sub(a.lastTrue) < r.keepFiringFor {
			return from, a.state, false
		}
		a.state = Resolved
	}
	a.changedAt = now
	return from, a.state, true
}
