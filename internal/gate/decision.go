package gate

import (
	"math"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// CheckRequest asks whether a change may ship.
type CheckRequest struct {
	Service     string      `json:"service"`
	ChangeClass ChangeClass `json:"change_class"`
	Version     string      `json:"version,omitempty"`
	Environment string      `json:"environment,omitempty"`
	// RequestedBy is who or what asks (a pipeline, a person), as the
	// caller says.
	RequestedBy string `json:"requested_by,omitempty"`
	// Principal is the authenticated identity (the token's name), set by
	// the API, never by the caller.
	Principal string `json:"-"`
	// Source names the adapter that asked: api, cli, argo, flagger.
	Source string `json:"-"`
}

// Decision is the gate's answer to a CheckRequest, with everything needed
// to explain it. It is also the audit log's record.
type Decision struct {
	ID          string      `json:"id"`
	Service     string      `json:"service"`
	ChangeClass ChangeClass `json:"change_class"`
	Version     string      `json:"version,omitempty"`
	Environment string      `json:"environment,omitempty"`
	RequestedBy string      `json:"requested_by,omitempty"`
	Principal   string      `json:"principal,omitempty"`
	Source      string      `json:"source,omitempty"`

	Verdict Verdict `json:"decision"`
	// CanaryWeight is the suggested canary traffic share in percent when
	// the verdict is canary.
	CanaryWeight float64 `json:"canary_weight,omitempty"`
	// Reasons explain the verdict, the deciding one first.
	Reasons []string `json:"reasons"`
	// PolicyRule is the rule that decided: a rule's name, within-budget
	// (no rule matched), stale-data or override.
	PolicyRule string `json:"policy_rule"`
	// Policy is the service whose policy decided, or "default".
	Policy string `json:"policy"`
	// StaleData says some SLO data was stale or missing.
	StaleData bool         `json:"stale_data"`
	SLOs      []SLOSummary `json:"slos"`
	// Override is the override that turned the verdict to allow, if any;
	// WithoutOverride is what the verdict would have been.
	Override        *Override `json:"override"`
	WithoutOverride *Verdict  `json:"without_override,omitempty"`
	EvaluatedAt     time.Time `json:"evaluated_at"`
	// TTLSeconds is how long the caller may reuse this decision.
	TTLSeconds int `json:"ttl_seconds"`
}

// SLOSummary is one SLO's state as a decision saw it.
type SLOSummary struct {
	Name                  string              `json:"name"`
	Objective             float64             `json:"objective"`
	Window                string              `json:"window"`
	BudgetRemaining       *float64            `json:"budget_remaining"`
	BudgetRemainingEvents *float64            `json:"budget_remaining_events"`
	BurnRates             map[string]*float64 `json:"burn_rates"`
	AlertsFiring          []FiringAlert       `json:"alerts_firing"`
	Coverage              float64             `json:"coverage"`
	// TimeToExhaustionSeconds at the current burn; null when not burning.
	TimeToExhaustionSeconds *float64  `json:"time_to_exhaustion_seconds"`
	Good                    float64   `json:"good"`
	Total                   float64   `json:"total"`
	Stale                   bool      `json:"stale"`
	UpdatedAt               time.Time `json:"updated_at"`
	Exemptions              []string  `json:"exemptions,omitempty"`
}

// summarize copies what a decision shows of a state, dropping values JSON
// cannot carry (NaN, infinities) as "no data".
func summarize(st SLOState, stale bool) SLOSummary {
	s := SLOSummary{
		Name:                  st.Name,
		Objective:             st.Objective,
		Window:                units.FormatDuration(st.Window),
		BudgetRemaining:       finite(st.BudgetRemaining),
		BudgetRemainingEvents: finite(st.BudgetRemainingEvents),
		BurnRates:             make(map[string]*float64, len(st.BurnRates)),
		AlertsFiring:          append([]FiringAlert{}, st.AlertsFiring...),
		Coverage:              st.Coverage,
		Good:                  st.Good,
		Total:                 st.Total,
		Stale:                 stale,
		UpdatedAt:             st.UpdatedAt,
		Exemptions:            append([]string(nil), st.Exemptions...),
	}
	for w, r := range st.BurnRates {
		s.BurnRates[w] = finite(r)
	}
	if st.TimeToExhaustion != nil {
		v := st.TimeToExhaustion.Seconds()
		s.TimeToExhaustionSeconds = &v
	}
	return s
}

func finite(p *float64) *float64 {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return nil
	}
	v := *p
	return &v
}
