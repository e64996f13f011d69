package gate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// PolicySpec is one error-budget policy: an entry of the top-level
// `policies:` list. A policy without a service is the default policy, used
// for every service that has none of its own; without any, the built-in
// default (DefaultRules) applies.
type PolicySpec struct {
	// Service this policy governs; empty for the default policy.
	Service string `yaml:"service,omitempty" json:"service,omitempty"`
	// Rules are evaluated in order over the service's SLO states; the first
	// rule whose conditions hold for one SLO and whose scope covers the
	// change decides. Empty means DefaultRules. No matching rule allows.
	Rules []RuleSpec `yaml:"rules,omitempty" json:"rules,omitempty"`
	// ChangeClasses declares classes beyond the built-in feature, fix,
	// security, rollback and config.
	ChangeClasses []ChangeClass `yaml:"change_classes,omitempty" json:"change_classes,omitempty"`
	// OnStale says, per change class, whether stale or missing SLO data
	// fails open or closed. Classes not listed use the default: open for
	// rollback, fix and security, closed for everything else.
	OnStale map[ChangeClass]FailMode `yaml:"on_stale,omitempty" json:"on_stale,omitempty"`
	// StaleAfter is the age past which an SLO state counts as stale.
	// Default 5m.
	StaleAfter units.Duration `yaml:"stale_after,omitempty" json:"stale_after,omitempty"`
	// CanaryWeight is the traffic share (percent) suggested for a canary
	// verdict when its rule names none. Default 1.
	CanaryWeight float64 `yaml:"canary_weight,omitempty" json:"canary_weight,omitempty"`
	// DecisionTTL is how long a caller may reuse a decision. Default 1m.
	DecisionTTL units.Duration `yaml:"decision_ttl,omitempty" json:"decision_ttl,omitempty"`
	// MaxOverride caps how long an override may last. Default 7d.
	MaxOverride units.Duration `yaml:"max_override,omitempty" json:"max_override,omitempty"`
	// ReleaseWindow is how long after a deploy marker the budget consumed
	// is charged to that release in the risk report. Default 1h.
	ReleaseWindow units.Duration `yaml:"release_window,omitempty" json:"release_window,omitempty"`
	// Business holds the inputs of the risk report's money figures.
	Business Business `yaml:"business,omitempty" json:"business,omitempty"`
	// Canary tunes the canary verdicts of the policy's service (of every
	// service without a policy of its own, on the default policy): the
	// false-positive rate under continuous checks and the worsening a
	// canary may have before it fails (docs/canary.md).
	Canary *canary.Config `yaml:"canary,omitempty" json:"canary,omitempty"`
}

// RuleSpec is one rule of a policy.
type RuleSpec struct {
	// Name identifies the rule in decisions (policy_rule).
	Name string `yaml:"name" json:"name"`
	// When lists conditions that must all hold for the same SLO. A rule
	// without conditions always matches (a release freeze).
	When Conditions `yaml:"when,omitempty" json:"when,omitempty"`
	// ChangeClasses the rule applies to; empty means all but Except.
	ChangeClasses []ChangeClass `yaml:"change_classes,omitempty" json:"change_classes,omitempty"`
	// Except lists classes the rule never applies to.
	Except []ChangeClass `yaml:"except,omitempty" json:"except,omitempty"`
	// Environments the rule applies to; empty means all.
	Environments []string `yaml:"environments,omitempty" json:"environments,omitempty"`
	// SLOs narrows the rule to these SLO names; empty means every SLO of
	// the service.
	SLOs []string `yaml:"slos,omitempty" json:"slos,omitempty"`
	// Decision is the verdict when the rule matches.
	Decision Verdict `yaml:"decision" json:"decision"`
	// CanaryWeight (percent) for a canary decision; 0 uses the policy's.
	CanaryWeight float64 `yaml:"canary_weight,omitempty" json:"canary_weight,omitempty"`
	// Reason is a sentence added to the decision's reasons when the rule
	// decides, e.g. the policy's wording for the release conversation.
	Reason string `yaml:"reason,omitempty" json:"reason,omitempty"`
}

// Conditions are checked against one SLO state; all that are set must hold.
type Conditions struct {
	// BudgetExhausted holds when the budget remaining is zero or less: the
	// service is outside its SLO over the window.
	BudgetExhausted bool `yaml:"budget_exhausted,omitempty" json:"budget_exhausted,omitempty"`
	// BudgetRemainingBelow holds when the budget remaining is under this
	// fraction ("25%").
	BudgetRemainingBelow *Ratio `yaml:"budget_remaining_below,omitempty" json:"budget_remaining_below,omitempty"`
	// AlertFiring holds when an alert of this severity or worse fires
	// (page, ticket).
	AlertFiring Severity `yaml:"alert_firing,omitempty" json:"alert_firing,omitempty"`
	// BurnRateAbove holds when any listed window burns faster than its
	// rate, e.g. {"1h": 14.4}.
	BurnRateAbove map[string]float64 `yaml:"burn_rate_above,omitempty" json:"burn_rate_above,omitempty"`
	// TimeToExhaustionBelow holds when the budget runs out sooner than this
	// at the current burn.
	TimeToExhaustionBelow units.Duration `yaml:"time_to_exhaustion_below,omitempty" json:"time_to_exhaustion_below,omitempty"`
}

// Business holds what an outage costs, for the risk report.
type Business struct {
	// Currency of the money figures (default USD).
	Currency string `yaml:"currency,omitempty" json:"currency,omitempty"`
	// RevenuePerHour is the revenue at risk per hour of full outage.
	RevenuePerHour float64 `yaml:"revenue_per_hour,omitempty" json:"revenue_per_hour,omitempty"`
	// FailedRelease describes a typical failed release.
	FailedRelease FailedRelease `yaml:"failed_release,omitempty" json:"failed_release,omitempty"`
	// SLA holds the contract's credit terms.
	SLA SLA `yaml:"sla,omitempty" json:"sla,omitempty"`
}

// FailedRelease describes a typical failed release: the share of requests
// it fails and how long until it is rolled back.
type FailedRelease struct {
	// Impact is the share of requests that fail (default 100%).
	Impact Ratio `yaml:"impact,omitempty" json:"impact,omitempty"`
	// Duration until detection and rollback (default 30m).
	Duration units.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
}

// SLA holds a contract's service credits.
type SLA struct {
	// SLO is the SLO whose SLI the contract measures; default the
	// service's first availability-like SLO (the first listed).
	SLO string `yaml:"slo,omitempty" json:"slo,omitempty"`
	// MonthlyFee is the monthly revenue under the contract; credits are a
	// share of it.
	MonthlyFee float64 `yaml:"monthly_fee,omitempty" json:"monthly_fee,omitempty"`
	// Credits are the contract's tiers: when availability (percent) is
	// below a tier's threshold, its credit share of the fee is owed. The
	// deepest tier reached applies.
	Credits []CreditTier `yaml:"credits,omitempty" json:"credits,omitempty"`
}

// CreditTier is one SLA credit tier.
type CreditTier struct {
	Below  float64 `yaml:"below" json:"below"`   // availability, percent
	Credit Ratio   `yaml:"credit" json:"credit"` // share of the monthly fee
}

// Defaults of a policy's settings.
const (
	DefaultStaleAfter    = 5 * time.Minute
	DefaultCanaryWeight  = 1.0
	DefaultDecisionTTL   = time.Minute
	DefaultMaxOverride   = 7 * 24 * time.Hour
	DefaultReleaseWindow = time.Hour
)

// Names of the built-in rules and of the outcomes no rule decides.
const (
	RulePageAlert      = "page-burn-alert"
	RuleBudgetSpent    = "budget-exhausted"
	RuleBudgetLow      = "budget-low"
	RuleWithinBudget   = "within-budget" // no rule matched
	RuleStaleData      = "stale-data"    // stale or missing data decided
	RuleOverride       = "override"      // an override turned the verdict to allow
	DefaultPolicyLabel = "default"
)

// DefaultRules is the Google SRE Workbook's example error budget policy.
func DefaultRules() []RuleSpec {
	low := Ratio(0.25)
	return []RuleSpec{
		{
			Name:   RulePageAlert,
			When:   Conditions{AlertFiring: SeverityPage},
			Except: []ChangeClass{Rollback, Fix},
			// Stop the bleeding first: only what repairs may ship.
			Decision: Deny,
			Reason:   "a page-severity burn-rate alert is firing: only rollbacks and fixes may ship until it resolves",
		},
		{
			Name:     RuleBudgetSpent,
			When:     Conditions{BudgetExhausted: true},
			Except:   []ChangeClass{Fix, Security, Rollback},
			Decision: Deny,
			Reason:   "the error budget over the SLO window is spent: changes other than P0 fixes, security fixes and rollbacks are halted until the service is back within its SLO",
		},
		{
			Name:          RuleBudgetLow,
			When:          Conditions{BudgetRemainingBelow: &low},
			ChangeClasses: []ChangeClass{Feature},
			Decision:      Canary,
			Reason:        "less than 25% of the error budget remains: features ship only as a canary",
		},
	}
}

// ValidatePolicies checks a policies: list and reports every problem at
// once, each naming its key, e.g. "policies[1].rules[0].decision: ...".
func ValidatePolicies(specs []PolicySpec) error {
	var errs []error
	seen := map[string]int{}
	for i, p := range specs {
		key := fmt.Sprintf("policies[%d]", i)
		if j, dup := seen[p.Service]; dup {
			what := fmt.Sprintf("service %q", p.Service)
			if p.Service == "" {
				what = "the default policy (no service)"
			}
			errs = append(errs, fmt.Errorf("%s.service: %s already has a policy at policies[%d]", key, what, j))
		} else {
			seen[p.Service] = i
		}
		errs = append(errs, p.validate(key)...)
	}
	return errors.Join(errs...)
}

func (p *PolicySpec) validate(key string) []error {
	var errs []error
	add := func(k, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{key, k}, args...)...))
	}
	if p.Canary != nil {
		for _, err := range p.Canary.Problems() {
			errs = append(errs, fmt.Errorf("%s.canary.%w", key, err))
		}
	}
	known := map[ChangeClass]bool{}
	for _, c := range BuiltinClasses() {
		known[c] = true
	}
	for i, c := range p.ChangeClasses {
		switch {
		case !validClassName(string(c)):
			add(fmt.Sprintf("change_classes[%d]", i), "must be lower case letters, digits, - or _ (at most 32), got %q", c)
		case known[c]:
			add(fmt.Sprintf("change_classes[%d]", i), "%q is already a change class", c)
		default:
			known[c] = true
		}
	}
	checkClass := func(k string, c ChangeClass) {
		if !known[c] {
			add(k, "unknown change class %q (known: %s; declare more under change_classes)", c, classList(known))
		}
	}
	for _, c := range sortedKeys(p.OnStale) {
		checkClass("on_stale."+string(c), c)
		if m := p.OnStale[c]; m != FailOpen && m != FailClosed {
			add("on_stale."+string(c), "must be open or closed, got %q", m)
		}
	}
	if p.StaleAfter < 0 {
		add("stale_after", "must not be negative, got %s", p.StaleAfter)
	}
	if p.CanaryWeight < 0 || p.CanaryWeight > 100 {
		add("canary_weight", "must be between 0 and 100 (percent), got %v", p.CanaryWeight)
	}
	if p.DecisionTTL < 0 {
		add("decision_ttl", "must not be negative, got %s", p.DecisionTTL)
	}
	if p.MaxOverride < 0 {
		add("max_override", "must not be negative, got %s", p.MaxOverride)
	}
	if p.ReleaseWindow < 0 {
		add("release_window", "must not be negative, got %s", p.ReleaseWindow)
	}
	names := map[string]int{}
	for i, r := range p.Rules {
		rk := fmt.Sprintf("rules[%d]", i)
		switch {
		case r.Name == "":
			add(rk+".name", "must not be empty")
		case r.Name == RuleWithinBudget || r.Name == RuleStaleData || r.Name == RuleOverride:
			add(rk+".name", "%q is reserved for decisions no rule makes", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				add(rk+".name", "%q is already the name of rules[%d]", r.Name, j)
			}
			names[r.Name] = i
		}
		switch r.Decision {
		case Allow, Canary, Deny:
		case 0:
			add(rk+".decision", "must be set to allow, canary or deny")
		default:
			add(rk+".decision", "must be allow, canary or deny, got %s", r.Decision)
		}
		if len(r.ChangeClasses) > 0 && len(r.Except) > 0 {
			add(rk+".except", "cannot be combined with change_classes; list the classes the rule applies to in one of them")
		}
		for j, c := range r.ChangeClasses {
			checkClass(fmt.Sprintf("%s.change_classes[%d]", rk, j), c)
		}
		for j, c := range r.Except {
			checkClass(fmt.Sprintf("%s.except[%d]", rk, j), c)
		}
		if r.CanaryWeight < 0 || r.CanaryWeight > 100 {
			add(rk+".canary_weight", "must be between 0 and 100 (percent), got %v", r.CanaryWeight)
		} else if r.CanaryWeight != 0 && r.Decision != Canary {
			add(rk+".canary_weight", "only applies to decision: canary")
		}
		errs = append(errs, r.When.Validate(key+"."+rk+".when")...)
	}
	b := p.Business
	if b.RevenuePerHour < 0 {
		add("business.revenue_per_hour", "must not be negative, got %v", b.RevenuePerHour)
	}
	if b.FailedRelease.Impact < 0 || b.FailedRelease.Impact > 1 {
		add("business.failed_release.impact", "must be between 0%% and 100%%, got %s", b.FailedRelease.Impact)
	}
	if b.FailedRelease.Duration < 0 {
		add("business.failed_release.duration", "must not be negative, got %s", b.FailedRelease.Duration)
	}
	if b.SLA.MonthlyFee < 0 {
		add("business.sla.monthly_fee", "must not be negative, got %v", b.SLA.MonthlyFee)
	}
	for i, t := range b.SLA.Credits {
		tk := fmt.Sprintf("business.sla.credits[%d]", i)
		if t.Below <= 0 || t.Below > 100 {
			add(tk+".below", "must be an availability percentage in (0, 100], got %v", t.Below)
		}
		if t.Credit < 0 || t.Credit > 1 {
			add(tk+".credit", "must be between 0%% and 100%%, got %s", t.Credit)
		}
	}
	if len(b.SLA.Credits) > 0 && b.SLA.MonthlyFee == 0 {
		add("business.sla.monthly_fee", "must be set when credits are")
	}
	return errs
}

func classList(known map[ChangeClass]bool) string {
	s := ""
	for i, c := range sortedKeys(known) {
		if i > 0 {
			s += ", "
		}
		s += string(c)
	}
	return s
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Validate checks the conditions; each error starts with key (the
// condition block's place in the config, e.g. policies[0].rules[1].when).
func (w Conditions) Validate(key string) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", key, field, fmt.Sprintf(format, args...)))
	}
	if w.BudgetRemainingBelow != nil && float64(*w.BudgetRemainingBelow) > 1 {
		add("budget_remaining_below", "must be at most 100%%, got %s", *w.BudgetRemainingBelow)
	}
	if w.AlertFiring != "" && w.AlertFiring.rank() == 0 {
		add("alert_firing", "must be page or ticket, got %q", w.AlertFiring)
	}
	for _, win := range sortedKeys(w.BurnRateAbove) {
		if _, err := units.ParseDuration(win); err != nil {
			add("burn_rate_above."+win, "window must be a duration such as 1h: %v", err)
		}
		if v := w.BurnRateAbove[win]; v < 0 || math.IsNaN(v) {
			add("burn_rate_above."+win, "must be a non-negative rate, got %v", v)
		}
	}
	if w.TimeToExhaustionBelow < 0 {
		add("time_to_exhaustion_below", "must not be negative, got %s", w.TimeToExhaustionBelow)
	}
	return errs
}

// IsZero reports whether no condition is set (conditions that always hold).
func (w Conditions) IsZero() bool {
	return !w.BudgetExhausted && w.BudgetRemainingBelow == nil && w.AlertFiring == "" &&
		len(w.BurnRateAbove) == 0 && w.TimeToExhaustionBelow == 0
}
