package gate

import "time"

// SLOState is what the gate reads about one SLO at a moment: its budget,
// burn rates and firing alerts, as the SLO engine computed them.
type SLOState struct {
	Name      string
	Service   string
	Objective float64 // percent, e.g. 99.9
	Window    time.Duration
	// BudgetRemaining is the fraction of the window's error budget left (1 =
	// untouched, negative = overspent); nil when the window has no data.
	BudgetRemaining *float64
	// BudgetRemainingEvents is the same in events: allowed bad minus bad.
	BudgetRemainingEvents *float64
	// BurnRates maps a window ("5m", "1h", ...) to its burn rate; nil where
	// the window has no data.
	BurnRates    map[string]*float64
	AlertsFiring []FiringAlert
	// Coverage is the share of the window that has data, 0..1.
	Coverage float64
	// TimeToExhaustion at the current burn; nil when the budget is not
	// burning (or already spent).
	TimeToExhaustion *time.Duration
	Good, Total      float64 // events in the window
	// UpdatedAt is when this state was computed; a state older than the
	// policy's stale_after is stale.
	UpdatedAt time.Time
	// Exemptions describe the active corrections that affected the budget
	// (maintenance windows, load tests, a frozen dependency), for the
	// decision's reasons.
	Exemptions []string
}

// FiringAlert is a burn-rate (or budget) alert that is firing now.
type FiringAlert struct {
	Name     string
	Severity Severity
	Since    time.Time
}

// StateSource gives the current state of every SLO of a service. It must be
// cheap: the gate calls it on every check.
type StateSource interface {
	SLOStates(service string, now time.Time) []SLOState
}

// StateFunc adapts a function to StateSource.
type StateFunc func(service string, now time.Time) []SLOState

// SLOStates implements StateSource.
func (f StateFunc) SLOStates(service string, now time.Time) []SLOState { return f(service, now) }
