package gate

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/units"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

// state builds a 99.9%/30d SLO state of service checkout updated 10s
// before t0.
func state(name string, budget float64, mods ...func(*SLOState)) SLOState {
	st := SLOState{
		Name:            name,
		Service:         "checkout",
		Objective:       99.9,
		Window:          30 * 24 * time.Hour,
		BudgetRemaining: f(budget),
		BurnRates:       map[string]*float64{"5m": f(0.5), "1h": f(0.5), "6h": nil},
		Coverage:        1,
		Good:            999_500,
		Total:           1_000_000,
		UpdatedAt:       t0.Add(-10 * time.Second),
	}
	for _, m := range mods {
		m(&st)
	}
	return st
}

func paging(st *SLOState) {
	st.AlertsFiring = []FiringAlert{{Name: "checkout-availability-page-1h", Severity: SeverityPage, Since: t0.Add(-3 * time.Minute)}}
}

func staleBy(d time.Duration) func(*SLOState) {
	return func(st *SLOState) { st.UpdatedAt = t0.Add(-d) }
}

type outcome struct {
	Verdict Verdict
	Rule    string
}

// TestDefaultPolicyMatrix is the Workbook policy over every change class,
// budget situation and override state. The expected verdicts are the
// policy's text read by hand, not the code's output.
func TestDefaultPolicyMatrix(t *testing.T) {
	situations := []struct {
		name  string
		state SLOState
	}{
		{"healthy", state("checkout-availability", 0.80)},
		{"under25", state("checkout-availability", 0.20)},
		{"exhausted", state("checkout-availability", -0.05)},
		{"page", state("checkout-availability", 0.60, paging)},
		{"stale", state("checkout-availability", 0.80, staleBy(10*time.Minute))},
	}
	within, low, spent, page, stale := RuleWithinBudget, RuleBudgetLow, RuleBudgetSpent, RulePageAlert, RuleStaleData
	want := map[ChangeClass]map[string]outcome{
		Feature:  {"healthy": {Allow, within}, "under25": {Canary, low}, "exhausted": {Deny, spent}, "page": {Deny, page}, "stale": {Deny, stale}},
		Fix:      {"healthy": {Allow, within}, "under25": {Allow, within}, "exhausted": {Allow, within}, "page": {Allow, within}, "stale": {Allow, stale}},
		Security: {"healthy": {Allow, within}, "under25": {Allow, within}, "exhausted": {Allow, within}, "page": {Deny, page}, "stale": {Allow, stale}},
		Rollback: {"healthy": {Allow, within}, "under25": {Allow, within}, "exhausted": {Allow, within}, "page": {Allow, within}, "stale": {Allow, stale}},
		Config:   {"healthy": {Allow, within}, "under25": {Allow, within}, "exhausted": {Deny, spent}, "page": {Deny, page}, "stale": {Deny, stale}},
	}
	all := BuiltinClasses()
	revokedAt := t0.Add(-time.Minute)
	overrides := []struct {
		name   string
		list   []Override
		active bool
	}{
		{"no-override", nil, false},
		{"active", []Override{{ID: "ovr_a", Service: "checkout", ChangeClasses: all, Reason: "hotfix for the launch", ApprovedBy: "vp-eng", CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(30 * time.Minute)}}, true},
		{"expired", []Override{{ID: "ovr_e", Service: "checkout", ChangeClasses: all, Reason: "old", ApprovedBy: "vp-eng", CreatedAt: t0.Add(-2 * time.Hour), ExpiresAt: t0.Add(-time.Second)}}, false},
		{"revoked", []Override{{ID: "ovr_r", Service: "checkout", ChangeClasses: all, Reason: "x", ApprovedBy: "vp-eng", CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour), RevokedAt: &revokedAt, RevokedBy: "sre"}}, false},
		{"other-service", []Override{{ID: "ovr_o", Service: "search", ChangeClasses: all, Reason: "x", ApprovedBy: "vp-eng", CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour)}}, false},
	}
	p, err := CompilePolicy(PolicySpec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range all {
		for _, s := range situations {
			for _, o := range overrides {
				t.Run(fmt.Sprintf("%s/%s/%s", class, s.name, o.name), func(t *testing.T) {
					req := CheckRequest{Service: "checkout", ChangeClass: class, Environment: "production"}
					d := p.Evaluate(req, []SLOState{s.state}, o.list, t0)
					exp := want[class][s.name]
					if o.active && exp.Verdict != Allow {
						if d.Override == nil || d.Override.ID != o.list[0].ID || d.WithoutOverride == nil || *d.WithoutOverride != exp.Verdict {
							t.Errorf("override not shown: override=%+v without=%v", d.Override, d.WithoutOverride)
						}
						exp = outcome{Allow, RuleOverride}
					} else if d.Override != nil {
						t.Errorf("override %s shown but not needed or not applicable", d.Override.ID)
					}
					if diff := cmp.Diff(exp, outcome{d.Verdict, d.PolicyRule}); diff != "" {
						t.Errorf("(-want +got)\n%s\nreasons: %q", diff, d.Reasons)
					}
					if got, want := d.StaleData, s.name == "stale"; got != want {
						t.Errorf("StaleData = %v, want %v", got, want)
					}
					if s.name == "stale" && !strings.Contains(strings.Join(d.Reasons, "\n"), "stale") {
						t.Errorf("reasons do not say the data was stale: %q", d.Reasons)
					}
					if wantW := 0.0; d.Verdict == Canary {
						if d.CanaryWeight != 1 {
							t.Errorf("CanaryWeight = %v, want 1", d.CanaryWeight)
						}
					} else if d.CanaryWeight != wantW {
						t.Errorf("CanaryWeight = %v on a %s", d.CanaryWeight, d.Verdict)
					}
					if len(d.Reasons) == 0 || d.PolicyRule == "" {
						t.Errorf("decision without reasons or rule: %+v", d)
					}
				})
			}
		}
	}
}

func TestEvaluateCases(t *testing.T) {
	custom, err := CompilePolicy(PolicySpec{
		Service:       "checkout",
		ChangeClasses: []ChangeClass{"schema-migration"},
		OnStale:       map[ChangeClass]FailMode{"schema-migration": FailClosed, Rollback: FailClosed},
		StaleAfter:    units.Duration(time.Minute),
		CanaryWeight:  5,
		Rules: []RuleSpec{
			{Name: "fast-burn", When: Conditions{BurnRateAbove: map[string]float64{"1h": 10}}, Decision: Deny},
			{Name: "prod-migrations-need-budget", When: Conditions{TimeToExhaustionBelow: units.Duration(72 * time.Hour)}, ChangeClasses: []ChangeClass{"schema-migration"}, Environments: []string{"production"}, Decision: Deny},
			{Name: "latency-canary", SLOs: []string{"checkout-latency"}, When: Conditions{BudgetRemainingBelow: ptr(Ratio(0.5))}, ChangeClasses: []ChangeClass{Feature}, Decision: Canary, CanaryWeight: 10},
			{Name: "slow-features", When: Conditions{BudgetRemainingBelow: ptr(Ratio(0.5))}, ChangeClasses: []ChangeClass{Feature}, Decision: Canary},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := CompilePolicy(PolicySpec{})
	tte := func(d time.Duration) func(*SLOState) { return func(st *SLOState) { st.TimeToExhaustion = &d } }
	burn1h := func(v float64) func(*SLOState) { return func(st *SLOState) { st.BurnRates["1h"] = f(v) } }
	type want struct {
		Verdict Verdict
		Rule    string
		Weight  float64
		Stale   bool
	}
	cases := []struct {
		name     string
		p        *Policy
		req      CheckRequest
		states   []SLOState
		want     want
		contains []string
	}{
		{
			name:     "exhausted and paging: security is stopped by the page rule",
			p:        def,
			req:      CheckRequest{Service: "checkout", ChangeClass: Security},
			states:   []SLOState{state("a", -0.3, paging)},
			want:     want{Deny, RulePageAlert, 0, false},
			contains: []string{"a: alert firing: checkout-availability-page-1h (page)"},
		},
		{
			name:     "ticket alerts do not stop anything by default",
			p:        def,
			req:      CheckRequest{Service: "checkout", ChangeClass: Feature},
			states:   []SLOState{state("a", 0.9, func(st *SLOState) { st.AlertsFiring = []FiringAlert{{Name: "slow-burn", Severity: SeverityTicket}} })},
			want:     want{Allow, RuleWithinBudget, 0, false},
			contains: []string{"a: 90.0% of the 30d error budget remains, burn rate 0.5 over 1h"},
		},
		{
			name:     "the worst SLO decides",
			p:        def,
			req:      CheckRequest{Service: "checkout", ChangeClass: Feature},
			states:   []SLOState{state("a", 0.9), state("b", 0.1)},
			want:     want{Canary, RuleBudgetLow, 1, false},
			contains: []string{"b: 10.0% of the 30d error budget remains, under 25.0%"},
		},
		{
			name:     "budget at exactly zero is spent",
			p:        def,
			req:      CheckRequest{Service: "checkout", ChangeClass: Config},
			states:   []SLOState{state("a", 0)},
			want:     want{Deny, RuleBudgetSpent, 0, false},
			contains: []string{"a: error budget exhausted, 0.0% of the 30d budget remains (500 bad of 1000000 events)"},
		},
		{
			name:     "no SLO at all fails closed for features",
			p:        def,
			req:      CheckRequest{Service: "unknown", ChangeClass: Feature},
			want:     want{Deny, RuleStaleData, 0, true},
			contains: []string{`no SLO is defined for service "unknown"`},
		},
		{
			name:     "no SLO at all fails open for rollbacks",
			p:        def,
			req:      CheckRequest{Service: "unknown", ChangeClass: Rollback},
			want:     want{Allow, RuleStaleData, 0, true},
			contains: []string{"fails open for rollback changes"},
		},
		{
			name:     "a window without data is missing data",
			p:        def,
			req:      CheckRequest{Service: "checkout", ChangeClass: Feature},
			states:   []SLOState{state("a", 0, func(st *SLOState) { st.BudgetRemaining = nil })},
			want:     want{Deny, RuleStaleData, 0, true},
			contains: []string{"a: no data in its 30d window"},
		},
		{
			name:     "never evaluated is missing data",
			p:        def,
			req:      CheckRequest{Service: "checkout", ChangeClass: Fix},
			states:   []SLOState{state("a", 0.5, func(st *SLOState) { st.UpdatedAt = time.Time{} })},
			want:     want{Allow, RuleStaleData, 0, true},
			contains: []string{"a: no evaluation of this SLO yet"},
		},
		{
			name:     "one stale SLO closes features even when the fresh one is healthy",
			p:        def,
			req:      CheckRequest{Service: "checkout", ChangeClass: Feature},
			states:   []SLOState{state("a", 0.9), state("b", 0.9, staleBy(6*time.Minute))},
			want:     want{Deny, RuleStaleData, 0, true},
			contains: []string{"b: data is stale, last updated 6m ago (stale after 5m)"},
		},
		{
			name:     "fail-open rests on the fresh SLOs: a fresh page still stops security",
			p:        def,
			req:      CheckRequest{Service: "checkout", ChangeClass: Security},
			states:   []SLOState{state("a", 0.9, paging), state("b", 0.9, staleBy(time.Hour))},
			want:     want{Deny, RulePageAlert, 0, true},
			contains: []string{"fails open for security changes; the decision rests on the fresh SLOs only"},
		},
		{
			name:     "fresh deny keeps its rule when stale data would also close",
			p:        def,
			req:      CheckRequest{Service: "checkout", ChangeClass: Feature},
			states:   []SLOState{state("a", -1), state("b", 0.9, staleBy(time.Hour))},
			want:     want{Deny, RuleBudgetSpent, 0, true},
			contains: []string{"also stale or missing"},
		},
		{
			name: "exemptions are visible",
			p:    def,
			req:  CheckRequest{Service: "checkout", ChangeClass: Feature},
			states: []SLOState{state("a", 0.7, func(st *SLOState) {
				st.Exemptions = []string{"load test 2026-02-27 02:00-03:00 (added by perf-team: out-of-scope traffic)", "payments-api frozen its releases: dependency burn excluded"}
			})},
			want: want{Allow, RuleWithinBudget, 0, false},
			contains: []string{
				"a: exempt from the budget: load test 2026-02-27 02:00-03:00 (added by perf-team: out-of-scope traffic)",
				"a: exempt from the budget: payments-api frozen its releases: dependency burn excluded",
			},
		},
		{
			name:     "custom: burn rate over a window",
			p:        custom,
			req:      CheckRequest{Service: "checkout", ChangeClass: Rollback},
			states:   []SLOState{state("checkout-availability", 0.9, burn1h(12.5))},
			want:     want{Deny, "fast-burn", 0, false},
			contains: []string{"checkout-availability: burn rate 12.5 over 1h (above 10)", "rule fast-burn of the checkout policy: deny"},
		},
		{
			name:   "custom: environment scope",
			p:      custom,
			req:    CheckRequest{Service: "checkout", ChangeClass: "schema-migration", Environment: "staging"},
			states: []SLOState{state("checkout-availability", 0.9, tte(24*time.Hour))},
			want:   want{Allow, RuleWithinBudget, 0, false},
		},
		{
			name:     "custom: time to exhaustion in production",
			p:        custom,
			req:      CheckRequest{Service: "checkout", ChangeClass: "schema-migration", Environment: "production"},
			states:   []SLOState{state("checkout-availability", 0.9, tte(24*time.Hour))},
			want:     want{Deny, "prod-migrations-need-budget", 0, false},
			contains: []string{"the budget runs out in 1d at the current burn, sooner than 3d"},
		},
		{
			name:   "custom: SLO-scoped rule with its own canary weight",
			p:      custom,
			req:    CheckRequest{Service: "checkout", ChangeClass: Feature},
			states: []SLOState{state("checkout-availability", 0.4), state("checkout-latency", 0.3)},
			want:   want{Canary, "latency-canary", 10, false},
		},
		{
			name:   "custom: policy canary weight",
			p:      custom,
			req:    CheckRequest{Service: "checkout", ChangeClass: Feature},
			states: []SLOState{state("checkout-availability", 0.4), state("checkout-latency", 0.9)},
			want:   want{Canary, "slow-features", 5, false},
		},
		{
			name:   "custom: stale after 1m, rollback fails closed",
			p:      custom,
			req:    CheckRequest{Service: "checkout", ChangeClass: Rollback},
			states: []SLOState{state("checkout-availability", 0.9, staleBy(2*time.Minute))},
			want:   want{Deny, RuleStaleData, 0, true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.p.Evaluate(tc.req, tc.states, nil, t0)
			got := want{d.Verdict, d.PolicyRule, d.CanaryWeight, d.StaleData}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s\nreasons: %q", diff, d.Reasons)
			}
			for _, c := range tc.contains {
				if !containsLine(d.Reasons, c) {
					t.Errorf("no reason contains %q; reasons:\n%s", c, strings.Join(d.Reasons, "\n"))
				}
			}
			if len(d.SLOs) != len(tc.states) {
				t.Errorf("decision shows %d SLOs, want %d", len(d.SLOs), len(tc.states))
			}
		})
	}
}

func containsLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }

func TestEvaluateOverrideDetails(t *testing.T) {
	p, _ := CompilePolicy(PolicySpec{})
	st := []SLOState{state("a", -0.1)}
	mk := func(id string, expires time.Duration, classes ...ChangeClass) Override {
		return Override{ID: id, Service: "checkout", ChangeClasses: classes, Reason: "launch", ApprovedBy: "cto", CreatedBy: "ci-token", CreatedAt: t0.Add(-time.Minute), ExpiresAt: t0.Add(expires)}
	}
	t.Run("class not covered", func(t *testing.T) {
		d := p.Evaluate(CheckRequest{Service: "checkout", ChangeClass: Feature}, st, []Override{mk("ovr_1", time.Hour, Config)}, t0)
		if d.Verdict != Deny || d.Override != nil {
			t.Errorf("got %s override=%v, want deny without override", d.Verdict, d.Override)
		}
	})
	t.Run("longest lasting wins and ttl shrinks to its end", func(t *testing.T) {
		os := []Override{mk("ovr_1", 20*time.Second, Feature), mk("ovr_2", 40*time.Second, Feature, Config)}
		d := p.Evaluate(CheckRequest{Service: "checkout", ChangeClass: Feature}, st, os, t0)
		if d.Verdict != Allow || d.Override == nil || d.Override.ID != "ovr_2" {
			t.Fatalf("got %s with %+v, want allow by ovr_2", d.Verdict, d.Override)
		}
		if d.TTLSeconds != 40 {
			t.Errorf("TTLSeconds = %d, want 40", d.TTLSeconds)
		}
		if want := "override ovr_2 approved by cto (created by ci-token) until 2026-03-01T12:00:40Z: launch; without it the decision would be deny by rule budget-exhausted"; d.Reasons[0] != want {
			t.Errorf("Reasons[0] = %q, want %q", d.Reasons[0], want)
		}
	})
	t.Run("not yet created", func(t *testing.T) {
		o := mk("ovr_1", time.Hour, Feature)
		o.CreatedAt = t0.Add(time.Second)
		d := p.Evaluate(CheckRequest{Service: "checkout", ChangeClass: Feature}, st, []Override{o}, t0)
		if d.Verdict != Deny {
			t.Errorf("an override from the future applied")
		}
	})
	t.Run("expires exactly now", func(t *testing.T) {
		d := p.Evaluate(CheckRequest{Service: "checkout", ChangeClass: Feature}, st, []Override{mk("ovr_1", 0, Feature)}, t0)
		if d.Verdict != Deny {
			t.Errorf("an override applied at its expiry instant")
		}
	})
	t.Run("default ttl", func(t *testing.T) {
		d := p.Evaluate(CheckRequest{Service: "checkout", ChangeClass: Feature}, st, nil, t0)
		if d.TTLSeconds != 60 {
			t.Errorf("TTLSeconds = %d, want 60", d.TTLSeconds)
		}
	})
}

func TestValidatePolicies(t *testing.T) {
	specs := []PolicySpec{
		{Service: "checkout", Rules: []RuleSpec{
			{Name: "", Decision: Deny},
			{Name: "x", Decision: 0, ChangeClasses: []ChangeClass{"nope"}, Except: []ChangeClass{Fix}},
			{Name: "x", Decision: Allow, CanaryWeight: 5, When: Conditions{AlertFiring: "sms", BurnRateAbove: map[string]float64{"1y": 2, "1h": -1}}},
			{Name: RuleOverride, Decision: Canary, CanaryWeight: 101},
		}, OnStale: map[ChangeClass]FailMode{Feature: "ajar", "ghost": FailOpen}, ChangeClasses: []ChangeClass{"Bad Name", Fix},
			CanaryWeight: -1, StaleAfter: units.Duration(-time.Second)},
		{Service: "checkout"},
		{},
		{Business: Business{RevenuePerHour: -1, FailedRelease: FailedRelease{Impact: 2}, SLA: SLA{Credits: []CreditTier{{Below: 120, Credit: 0.1}}}}},
	}
	err := ValidatePolicies(specs)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`policies[0].change_classes[0]: must be lower case letters, digits, - or _ (at most 32), got "Bad Name"`,
		`policies[0].change_classes[1]: "fix" is already a change class`,
		`policies[0].on_stale.feature: must be open or closed, got "ajar"`,
		`policies[0].on_stale.ghost: unknown change class "ghost" (known: config, feature, fix, rollback, security; declare more under change_classes)`,
		`policies[0].stale_after: must not be negative, got -1s`,
		`policies[0].canary_weight: must be between 0 and 100 (percent), got -1`,
		`policies[0].rules[0].name: must not be empty`,
		`policies[0].rules[1].decision: must be set to allow, canary or deny`,
		`policies[0].rules[1].except: cannot be combined with change_classes; list the classes the rule applies to in one of them`,
		`policies[0].rules[1].change_classes[0]: unknown change class "nope" (known: config, feature, fix, rollback, security; declare more under change_classes)`,
		`policies[0].rules[2].name: "x" is already the name of rules[1]`,
		`policies[0].rules[2].canary_weight: only applies to decision: canary`,
		`policies[0].rules[2].when.alert_firing: must be page or ticket, got "sms"`,
		`policies[0].rules[2].when.burn_rate_above.1h: must be a non-negative rate, got -1`,
		`policies[0].rules[2].when.burn_rate_above.1y: window must be a duration such as 1h: invalid duration "1y" (use units like 500ms, 5s, 10m, 1h, 30d)`,
		`policies[0].rules[3].name: "override" is reserved for decisions no rule makes`,
		`policies[0].rules[3].canary_weight: must be between 0 and 100 (percent), got 101`,
		`policies[1].service: service "checkout" already has a policy at policies[0]`,
		`policies[3].service: the default policy (no service) already has a policy at policies[2]`,
		`policies[3].business.revenue_per_hour: must not be negative, got -1`,
		`policies[3].business.failed_release.impact: must be between 0% and 100%, got 200%`,
		`policies[3].business.sla.credits[0].below: must be an availability percentage in (0, 100], got 120`,
		`policies[3].business.sla.monthly_fee: must be set when credits are`,
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if err := ValidatePolicies([]PolicySpec{{}, {Service: "checkout", Rules: DefaultRules()}}); err != nil {
		t.Errorf("valid policies: %v", err)
	}
}

func TestPolicyYAML(t *testing.T) {
	src := `
policies:
  - service: checkout
    stale_after: 2m
    canary_weight: 2.5
    change_classes: [schema-migration]
    on_stale: {feature: closed, schema-migration: closed, fix: open}
    rules:
      - name: page
        when: {alert_firing: page}
        except: [rollback, fix]
        decision: deny
      - name: low
        when: {budget_remaining_below: 25%}
        change_classes: [feature]
        decision: canary
        canary_weight: 1
      - name: fast
        when: {burn_rate_above: {1h: 14.4}, budget_remaining_below: 0.5}
        decision: deny
    business:
      revenue_per_hour: 12000
      currency: EUR
      failed_release: {impact: 20%, duration: 45m}
      sla:
        monthly_fee: 50000
        credits:
          - {below: 99.9, credit: 10%}
          - {below: 99, credit: 25%}
  - {}
`
	var doc struct {
		Policies []PolicySpec `yaml:"policies"`
	}
	if err := yaml.UnmarshalWithOptions([]byte(src), &doc, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if err := ValidatePolicies(doc.Policies); err != nil {
		t.Fatal(err)
	}
	quarter, half := Ratio(0.25), Ratio(0.5)
	want := PolicySpec{
		Service:       "checkout",
		StaleAfter:    units.Duration(2 * time.Minute),
		CanaryWeight:  2.5,
		ChangeClasses: []ChangeClass{"schema-migration"},
		OnStale:       map[ChangeClass]FailMode{Feature: FailClosed, "schema-migration": FailClosed, Fix: FailOpen},
		Rules: []RuleSpec{
			{Name: "page", When: Conditions{AlertFiring: SeverityPage}, Except: []ChangeClass{Rollback, Fix}, Decision: Deny},
			{Name: "low", When: Conditions{BudgetRemainingBelow: &quarter}, ChangeClasses: []ChangeClass{Feature}, Decision: Canary, CanaryWeight: 1},
			{Name: "fast", When: Conditions{BurnRateAbove: map[string]float64{"1h": 14.4}, BudgetRemainingBelow: &half}, Decision: Deny},
		},
		Business: Business{
			RevenuePerHour: 12000, Currency: "EUR",
			FailedRelease: FailedRelease{Impact: 0.2, Duration: units.Duration(45 * time.Minute)},
			SLA:           SLA{MonthlyFee: 50000, Credits: []CreditTier{{Below: 99.9, Credit: 0.1}, {Below: 99, Credit: 0.25}}},
		},
	}
	if diff := cmp.Diff(want, doc.Policies[0]); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}

	for _, bad := range []string{
		"policies: [{service: a, rules: [{name: r, decision: maybe}]}]",
		"policies: [{service: a, unknown_key: 1}]",
		"policies: [{service: a, rules: [{name: r, decision: deny, when: {budget_remaining_below: 25}}]}]",
	} {
		if err := yaml.UnmarshalWithOptions([]byte(bad), &doc, yaml.Strict()); err == nil {
			t.Errorf("%s: decoded without error", bad)
		}
	}
}

func TestVerdictText(t *testing.T) {
	for _, v := range []Verdict{Allow, Canary, Deny} {
		b, err := v.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Verdict
		if err := back.UnmarshalText(b); err != nil || back != v {
			t.Errorf("%s round trip: %v %v", v, back, err)
		}
	}
	if _, err := Verdict(0).MarshalText(); err == nil {
		t.Error("zero verdict marshalled")
	}
	if got := Verdict(9).String(); got != "verdict(9)" {
		t.Errorf("String = %q", got)
	}
}

func FuzzParseRatio(f *testing.F) {
	for _, s := range []string{"25%", "0.25", "-10%", "1", "100%", "1e309", "NaN", "%", " 5 % ", "25"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRatio(s)
		if err != nil {
			return
		}
		if r != r || float64(r) > 1e300 || float64(r) < -1e300 {
			t.Errorf("ParseRatio(%q) = %v", s, r)
		}
		back, err := ParseRatio(r.String())
		if err != nil || (float64(back)-float64(r) > 1e-9*max(1, float64(r)) || float64(r)-float64(back) > 1e-9*max(1, float64(r))) {
			t.Errorf("round trip of %q: %v -> %q -> %v, %v", s, r, r.String(), back, err)
		}
	})
}

// TestValidatePolicyCanary: each bad setting of a policy's canary block is
// its own error, named with the policy's key.
func TestValidatePolicyCanary(t *testing.T) {
	err := ValidatePolicies([]PolicySpec{{Service: "checkout", Canary: &canary.Config{MaxIncrease: 2, BurnRate: -1}}})
	if err == nil {
		t.Fatal("no error for max_increase 2 and burn_rate -1")
	}
	var lines []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		lines = append(lines, e.Error())
	}
	want := []string{"policies[0].canary.max_increase: must be in [0, 1), got 2", "policies[0].canary.burn_rate: must not be negative, got -1"}
	if !slices.Equal(lines, want) {
		t.Errorf("errors %q, want %q", lines, want)
	}
}
