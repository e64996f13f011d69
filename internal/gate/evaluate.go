package gate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Policy is a validated, compiled PolicySpec. Its Evaluate is the pure
// decision core: no I/O, no clock.
type Policy struct {
	label         string
	spec          PolicySpec
	rules         []rule
	classes       map[ChangeClass]bool
	onStale       map[ChangeClass]FailMode
	staleAfter    time.Duration
	canaryWeight  float64
	ttl           time.Duration
	maxOverride   time.Duration
	releaseWindow time.Duration
	business      Business
}

type rule struct {
	RuleSpec
	classes map[ChangeClass]bool // nil: all classes
	except  map[ChangeClass]bool
	envs    map[string]bool // nil: all environments
	slos    map[string]bool // nil: all SLOs
}

// CompilePolicy validates spec and prepares it for evaluation. Rules left
// empty become DefaultRules; zero settings take their defaults.
func CompilePolicy(spec PolicySpec) (*Policy, error) {
	if errs := spec.validate("policy"); len(errs) > 0 {
		return nil, fmt.Errorf("invalid policy: %w", errors.Join(errs...))
	}
	p := &Policy{
		label:         spec.Service,
		spec:          spec,
		classes:       map[ChangeClass]bool{},
		onStale:       map[ChangeClass]FailMode{},
		staleAfter:    orDuration(spec.StaleAfter.Std(), DefaultStaleAfter),
		canaryWeight:  spec.CanaryWeight,
		ttl:           orDuration(spec.DecisionTTL.Std(), DefaultDecisionTTL),
		maxOverride:   orDuration(spec.MaxOverride.Std(), DefaultMaxOverride),
		releaseWindow: orDuration(spec.ReleaseWindow.Std(), DefaultReleaseWindow),
		business:      spec.Business,
	}
	if p.label == "" {
		p.label = DefaultPolicyLabel
	}
	if p.canaryWeight == 0 {
		p.canaryWeight = DefaultCanaryWeight
	}
	if p.business.Currency == "" {
		p.business.Currency = "USD"
	}
	if p.business.FailedRelease.Impact == 0 {
		p.business.FailedRelease.Impact = 1
	}
	if p.business.FailedRelease.Duration == 0 {
		p.business.FailedRelease.Duration = units.Duration(30 * time.Minute)
	}
	for _, c := range append(BuiltinClasses(), spec.ChangeClasses...) {
		p.classes[c] = true
		p.onStale[c] = defaultFailMode(c)
	}
	for c, m := range spec.OnStale {
		p.onStale[c] = m
	}
	specs := spec.Rules
	if len(specs) == 0 {
		specs = DefaultRules()
	}
	for _, rs := range specs {
		r := rule{RuleSpec: rs, classes: set(rs.ChangeClasses), except: set(rs.Except), envs: set(rs.Environments), slos: set(rs.SLOs)}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

func set[T comparable](xs []T) map[T]bool {
	if len(xs) == 0 {
		return nil
	}
	m := make(map[T]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Label is the service the policy governs, or "default".
func (p *Policy) Label() string { return p.label }

// Knows reports whether c is a change class of this policy.
func (p *Policy) Knows(c ChangeClass) bool { return p.classes[c] }

// Classes returns the policy's change classes, sorted.
func (p *Policy) Classes() []ChangeClass { return sortedKeys(p.classes) }

// FailMode returns what class c gets on stale or missing data.
func (p *Policy) FailMode(c ChangeClass) FailMode {
	if m, ok := p.onStale[c]; ok {
		return m
	}
	return defaultFailMode(c)
}

// MaxOverride is the longest override the policy accepts.
func (p *Policy) MaxOverride() time.Duration { return p.maxOverride }

// appliesTo reports whether the rule's scope covers a change.
func (r *rule) appliesTo(class ChangeClass, env string) bool {
	if r.classes != nil && !r.classes[class] {
		return false
	}
	if r.except[class] {
		return false
	}
	if r.envs != nil && !r.envs[env] {
		return false
	}
	return true
}

// holds checks the rule's conditions against one fresh SLO state and, when
// they all hold, returns the facts that made them hold.
func (r *rule) holds(st *SLOState) ([]string, bool) {
	if r.slos != nil && !r.slos[st.Name] {
		return nil, false
	}
	return r.When.Holds(st)
}

// Holds checks the conditions against one SLO state and, when they all
// hold, returns the facts that made them hold, as sentences with the
// numbers. Conditions with nothing set always hold. Kill switches share
// this vocabulary with the gate's rules.
func (w Conditions) Holds(st *SLOState) ([]string, bool) {
	var facts []string
	budget := finite(st.BudgetRemaining)
	if w.BudgetExhausted {
		if budget == nil || *budget > 0 {
			return nil, false
		}
		facts = append(facts, fmt.Sprintf("%s: error budget exhausted, %s of the %s budget remains%s",
			st.Name, pct(*budget), units.FormatDuration(st.Window), eventsNote(st)))
	}
	if w.BudgetRemainingBelow != nil {
		if budget == nil || *budget >= float64(*w.BudgetRemainingBelow) {
			return nil, false
		}
		facts = append(facts, fmt.Sprintf("%s: %s of the %s error budget remains, under %s",
			st.Name, pct(*budget), units.FormatDuration(st.Window), pct(float64(*w.BudgetRemainingBelow))))
	}
	if w.AlertFiring != "" {
		var firing []string
		for _, a := range st.AlertsFiring {
			if a.Severity.rank() >= w.AlertFiring.rank() {
				f := fmt.Sprintf("%s (%s)", a.Name, a.Severity)
				if !a.Since.IsZero() {
					f += " since " + a.Since.UTC().Format(time.RFC3339)
				}
				firing = append(firing, f)
			}
		}
		if len(firing) == 0 {
			return nil, false
		}
		facts = append(facts, fmt.Sprintf("%s: alert firing: %s", st.Name, strings.Join(firing, ", ")))
	}
	if len(w.BurnRateAbove) > 0 {
		var over []string
		for _, win := range sortedKeys(w.BurnRateAbove) {
			if rate := finite(st.BurnRates[win]); rate != nil && *rate > w.BurnRateAbove[win] {
				over = append(over, fmt.Sprintf("%s over %s (above %s)", num(*rate), win, num(w.BurnRateAbove[win])))
			}
		}
		if len(over) == 0 {
			return nil, false
		}
		facts = append(facts, fmt.Sprintf("%s: burn rate %s", st.Name, strings.Join(over, ", ")))
	}
	if w.TimeToExhaustionBelow > 0 {
		if st.TimeToExhaustion == nil || *st.TimeToExhaustion >= w.TimeToExhaustionBelow.Std() {
			return nil, false
		}
		facts = append(facts, fmt.Sprintf("%s: the budget runs out in %s at the current burn, sooner than %s",
			st.Name, units.HumanDuration(*st.TimeToExhaustion), w.TimeToExhaustionBelow))
	}
	if len(facts) == 0 {
		facts = append(facts, "the rule has no conditions: it applies whatever the budget")
	}
	return facts, true
}

// Evaluate decides req over the service's SLO states and overrides at now.
// It is deterministic and does no I/O; the returned Decision has no ID.
func (p *Policy) Evaluate(req CheckRequest, states []SLOState, overrides []Override, now time.Time) Decision {
	d := Decision{
		Service:     req.Service,
		ChangeClass: req.ChangeClass,
		Version:     req.Version,
		Environment: req.Environment,
		RequestedBy: req.RequestedBy,
		Principal:   req.Principal,
		Source:      req.Source,
		Policy:      p.label,
		EvaluatedAt: now,
		SLOs:        []SLOSummary{},
		Reasons:     []string{},
		TTLSeconds:  ceilSeconds(p.ttl),
	}
	sorted := slices.Clone(states)
	slices.SortStableFunc(sorted, func(a, b SLOState) int { return strings.Compare(a.Name, b.Name) })

	// Partition the states: only fresh data with a budget can trigger a
	// rule; the rest is stale or missing and handled by the fail mode.
	var fresh []*SLOState
	var notes, gaps []string
	for i := range sorted {
		st := &sorted[i]
		stale := st.UpdatedAt.IsZero() || now.Sub(st.UpdatedAt) > p.staleAfter
		d.SLOs = append(d.SLOs, summarize(*st, stale))
		switch {
		case stale && st.UpdatedAt.IsZero():
			gaps = append(gaps, fmt.Sprintf("%s: no evaluation of this SLO yet", st.Name))
		case stale:
			gaps = append(gaps, fmt.Sprintf("%s: data is stale, last updated %s ago (stale after %s)",
				st.Name, units.HumanDuration(now.Sub(st.UpdatedAt)), units.HumanDuration(p.staleAfter)))
		case finite(st.BudgetRemaining) == nil:
			gaps = append(gaps, fmt.Sprintf("%s: no data in its %s window", st.Name, units.FormatDuration(st.Window)))
		default:
			fresh = append(fresh, st)
		}
		for _, e := range st.Exemptions {
			notes = append(notes, fmt.Sprintf("%s: exempt from the budget: %s", st.Name, e))
		}
	}
	if len(sorted) == 0 {
		gaps = append(gaps, fmt.Sprintf("no SLO is defined for service %q: the gate cannot see its error budget", req.Service))
	}

	verdict, ruleName := Allow, RuleWithinBudget
	var lead []string
	for i := range p.rules {
		r := &p.rules[i]
		if !r.appliesTo(req.ChangeClass, req.Environment) {
			continue
		}
		var facts []string
		for _, st := range fresh {
			if f, ok := r.holds(st); ok {
				facts = f
				break
			}
		}
		if facts == nil {
			continue
		}
		verdict, ruleName = r.Decision, r.Name
		head := r.Reason
		if head == "" {
			head = fmt.Sprintf("rule %s of the %s policy: %s", r.Name, p.label, verdict)
		}
		lead = append(append(lead, head), facts...)
		if verdict == Canary {
			d.CanaryWeight = r.CanaryWeight
			if d.CanaryWeight == 0 {
				d.CanaryWeight = p.canaryWeight
			}
		}
		break
	}
	if ruleName == RuleWithinBudget && len(fresh) > 0 {
		lead = append(lead, fmt.Sprintf("no rule of the %s policy stops a %s change: the error budget allows it", p.label, req.ChangeClass))
		for _, st := range fresh {
			lead = append(lead, budgetLine(st))
		}
	}

	if len(gaps) > 0 {
		d.StaleData = true
		mode := p.FailMode(req.ChangeClass)
		switch {
		case mode == FailClosed && verdict != Deny:
			verdict, ruleName = Deny, RuleStaleData
			d.CanaryWeight = 0
			lead = append([]string{fmt.Sprintf("SLO data of %s is stale or missing and the %s policy fails closed for %s changes", req.Service, p.label, req.ChangeClass)}, lead...)
		case mode == FailClosed:
			lead = append(lead, fmt.Sprintf("SLO data of %s is also stale or missing (the policy fails closed for %s changes)", req.Service, req.ChangeClass))
		default:
			msg := fmt.Sprintf("SLO data of %s is stale or missing and the %s policy fails open for %s changes", req.Service, p.label, req.ChangeClass)
			if len(fresh) > 0 {
				msg += "; the decision rests on the fresh SLOs only"
			}
			if ruleName == RuleWithinBudget && len(fresh) == 0 {
				ruleName = RuleStaleData
				lead = append([]string{msg}, lead...)
			} else {
				lead = append(lead, msg)
			}
		}
		lead = append(lead, gaps...)
	}

	d.Verdict, d.PolicyRule = verdict, ruleName
	if verdict != Allow {
		if o := pickOverride(overrides, req, now); o != nil {
			was := verdict
			oc := *o
			oc.Status = OverrideActive
			d.Override, d.WithoutOverride = &oc, &was
			d.Verdict, d.PolicyRule, d.CanaryWeight = Allow, RuleOverride, 0
			by := o.ApprovedBy
			if o.CreatedBy != "" && o.CreatedBy != o.ApprovedBy {
				by += " (created by " + o.CreatedBy + ")"
			}
			lead = append([]string{fmt.Sprintf("override %s approved by %s until %s: %s; without it the decision would be %s by rule %s",
				o.ID, by, o.ExpiresAt.UTC().Format(time.RFC3339), o.Reason, was, ruleName)}, lead...)
			if left := o.ExpiresAt.Sub(now); left < p.ttl {
				d.TTLSeconds = ceilSeconds(left)
			}
		}
	}
	d.Reasons = append(append(d.Reasons, lead...), notes...)
	return d
}

// pickOverride returns the active override covering the change that lasts
// longest (ties: the lowest ID, so the choice is deterministic).
func pickOverride(overrides []Override, req CheckRequest, now time.Time) *Override {
	var best *Override
	for i := range overrides {
		o := &overrides[i]
		if !o.ActiveAt(now) || !o.covers(req.Service, req.ChangeClass) {
			continue
		}
		if best == nil || o.ExpiresAt.After(best.ExpiresAt) || (o.ExpiresAt.Equal(best.ExpiresAt) && o.ID < best.ID) {
			best = o
		}
	}
	return best
}

func budgetLine(st *SLOState) string {
	s := fmt.Sprintf("%s: %s of the %s error budget remains", st.Name, pct(*finite(st.BudgetRemaining)), units.FormatDuration(st.Window))
	if r := finite(st.BurnRates["1h"]); r != nil {
		s += ", burn rate " + num(*r) + " over 1h"
	}
	return s
}

func eventsNote(st *SLOState) string {
	if st.Total <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%s bad of %s events)", num(st.Total-st.Good), num(st.Total))
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// pct formats a fraction as a percentage with one decimal ("-12.5%").
func pct(f float64) string {
	return strconv.FormatFloat(math.Round(f*1000)/10, 'f', 1, 64) + "%"
}

// num formats a number compactly: integers without decimals, others with
// up to two.
func num(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}
