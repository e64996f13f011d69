package canary

import (
	"errors"
	"fmt"
	"math"
)

// Config tunes the statistics.
type Config struct {
	// Alpha bounds the share of good canaries failed, however often they
	// are checked; default 0.05.
	Alpha float64 `yaml:"false_positive_rate" json:"false_positive_rate"`
	// MinRequests is how many canary requests a verdict other than
	// inconclusive needs; default 50.
	MinRequests uint64 `yaml:"min_requests" json:"min_requests"`
	// Tolerance is the largest worsening of the error (or slow) ratio a
	// canary may have and pass, in ratio points; default the larger of
	// 0.002 and half the baseline's ratio.
	Tolerance float64 `yaml:"tolerance" json:"tolerance"`
	// MaxRatio and MaxIncrease are the worsening a canary may have before
	// it fails: it fails when its ratio exceeds the baseline's by more
	// than MaxRatio times and MaxIncrease points (a ratio: 0.001 is 0.1
	// points), with always-valid confidence 1−Alpha. Zero for both fails
	// any worsening the test can tell; MaxRatio ≤ 1 counts as unset.
	MaxRatio    float64 `yaml:"max_ratio" json:"max_ratio"`
	MaxIncrease float64 `yaml:"max_increase" json:"max_increase"`
	// BurnRate is the canary's own burn rate, against the objective,
	// beyond which it fails when its always-valid lower bound is above
	// it; default 1 (the canary alone would exhaust the budget if
	// promoted to all traffic).
	BurnRate float64 `yaml:"burn_rate" json:"burn_rate"`
	// Tau is the mixture's scale, the effect size the test is tuned for;
	// default 0.01.
	Tau float64 `yaml:"-" json:"-"`
	// PerOperation compares each operation of the canary with the same
	// operation of the baseline, the baseline weighted to the canary's
	// mix, so that a canary serving a different mix of operations is not
	// judged on the mix. Post-deploy regressions are always compared so.
	PerOperation bool `yaml:"per_operation" json:"per_operation,omitempty"`
	// VersionAttribute is the resource attribute that tells the service's
	// versions apart (default service.version): e.g.
	// k8s.pod.labels.rollouts-pod-template-hash for Argo Rollouts,
	// k8s.deployment.name for Flagger. Read by the per-version counts, not
	// by the verdict.
	VersionAttribute string `yaml:"version_attribute,omitempty" json:"version_attribute,omitempty"`
}

func (c Config) withDefaults() Config {
	if c.Alpha == 0 {
		c.Alpha = 0.05
	}
	if c.MinRequests == 0 {
		c.MinRequests = 50
	}
	if c.Tau == 0 {
		c.Tau = defaultTau
	}
	if c.BurnRate == 0 {
		c.BurnRate = 1
	}
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error { return errors.Join(c.Problems()...) }

// Problems lists what is wrong with the configuration, one error per
// setting.
func (c Config) Problems() []error {
	var errs []error
	if c.Alpha < 0 || c.Alpha >= 0.5 {
		errs = append(errs, fmt.Errorf("false_positive_rate: must be in (0, 0.5), got %v", c.Alpha))
	}
	if c.MaxIncrease < 0 || c.MaxIncrease >= 1 {
		errs = append(errs, fmt.Errorf("max_increase: must be in [0, 1), got %v", c.MaxIncrease))
	}
	if c.MaxRatio < 0 {
		errs = append(errs, fmt.Errorf("max_ratio: must not be negative, got %v", c.MaxRatio))
	}
	if c.BurnRate < 0 {
		errs = append(errs, fmt.Errorf("burn_rate: must not be negative, got %v", c.BurnRate))
	}
	if c.Tolerance < 0 || c.Tolerance >= 1 {
		errs = append(errs, fmt.Errorf("tolerance: must be in [0, 1), got %v", c.Tolerance))
	}
	return errs
}

// Input is what a verdict is computed from.
type Input struct {
	// Errors counts failed requests (the availability SLI) of each side.
	Canary, Baseline Side
	// Slow counts requests over the latency SLO's threshold; nil without
	// a latency SLO.
	SlowCanary, SlowBaseline *Side
	// Objective is the availability SLO's objective in percent, for the
	// budget rule; 0 leaves the rule out.
	Objective float64
}

// Outcome is what a verdict decides; it marshals as its text.
type Outcome string

// The outcomes: a canary's, and a deploy marker's (Regressed, Clean,
// Inconclusive).
const (
	Pass         Outcome = "pass"
	Fail         Outcome = "fail"
	Inconclusive Outcome = "inconclusive"
	Regressed    Outcome = "regressed"
	Clean        Outcome = "clean"
)

// String returns the outcome's name.
func (o Outcome) String() string { return string(o) }

// Verdict is a judgement with everything that explains it.
type Verdict struct {
	Verdict Outcome `json:"verdict"`
	// Rule names what decided: error_ratio, latency, budget, min_requests,
	// no_canary_traffic, no_baseline_traffic, within_tolerance, or
	// undecided.
	Rule   string `json:"rule"`
	Reason string `json:"reason"`

	Canary   SideStats `json:"canary"`
	Baseline SideStats `json:"baseline"`
	// ErrorRatio and Latency are the tests' states.
	ErrorRatio TestStats  `json:"error_ratio"`
	Latency    *TestStats `json:"latency,omitempty"`
	// Budget is the canary's own burn rate against the objective.
	Budget *BudgetStats `json:"budget,omitempty"`
	// RequestsNeeded estimates the canary requests still needed for a
	// verdict at the current rates (0 when decided, -1 when no amount
	// would decide at these rates).
	RequestsNeeded int64   `json:"requests_needed"`
	Alpha          float64 `json:"false_positive_rate"`
	// Margin is the difference the canary fails beyond (from MaxRatio
	// and MaxIncrease); Tolerance the one it passes below.
	Margin    float64 `json:"margin"`
	Tolerance float64 `json:"tolerance"`
}

// SideStats are one version's counts.
type SideStats struct {
	Requests   uint64   `json:"requests"`
	Errors     uint64   `json:"errors"`
	ErrorRatio float64  `json:"error_ratio"`
	Slow       *uint64  `json:"slow,omitempty"`
	SlowRatio  *float64 `json:"slow_ratio,omitempty"`
}

// TestStats is one test's state: the difference canary − baseline with
// its always-valid confidence interval, and the log likelihood ratio
// against its threshold log(1/α).
type TestStats struct {
	Diff      float64 `json:"diff"`
	Lower     float64 `json:"lower"`
	Upper     float64 `json:"upper"`
	LogLR     float64 `json:"log_likelihood_ratio"`
	Threshold float64 `json:"threshold"`
	// Margin and Tolerance are this test's decision boundaries: the
	// canary fails once Lower is above Margin and passes once Upper is
	// below Tolerance (both follow the baseline's ratio).
	Margin    float64 `json:"margin"`
	Tolerance float64 `json:"tolerance"`
}

// BudgetStats is the canary's burn rate, with an always-valid interval.
type BudgetStats struct {
	Objective float64 `json:"objective"`
	BurnRate  float64 `json:"burn_rate"`
	Lower     float64 `json:"burn_rate_lower"`
	Upper     float64 `json:"burn_rate_upper"`
}

func sideStats(s Side, slow *Side) SideStats {
	st := SideStats{Requests: s.N, Errors: s.Bad, ErrorRatio: s.Ratio()}
	if slow != nil {
		n, r := slow.Bad, slow.Ratio()
		st.Slow, st.SlowRatio = &n, &r
	}
	return st
}

func testStats(r TestResult, alpha, margin, tol float64) TestStats {
	return TestStats{Diff: r.Diff, Lower: r.Lower, Upper: r.Upper, LogLR: r.LogLR, Threshold: math.Log(1 / alpha), Margin: margin, Tolerance: tol}
}

// Judge computes the verdict.
func Judge(in Input, cfg Config) Verdict {
	cfg = cfg.withDefaults()
	margin := func(b Side) float64 {
		m := cfg.MaxIncrease
		if cfg.MaxRatio > 1 {
			m = max(m, (cfg.MaxRatio-1)*b.Ratio())
		}
		return m
	}
	tol := func(b Side) float64 {
		if cfg.Tolerance > 0 {
			return max(cfg.Tolerance, margin(b))
		}
		return max(0.002, b.Ratio()/2, margin(b))
	}
	v := Verdict{Alpha: cfg.Alpha, Canary: sideStats(in.Canary, in.SlowCanary), Baseline: sideStats(in.Baseline, in.SlowBaseline)}
	v.Tolerance, v.Margin = tol(in.Baseline), margin(in.Baseline)
	errT := compare(in.Canary, in.Baseline, cfg.Alpha, cfg.Tau, margin(in.Baseline), tol(in.Baseline))
	v.ErrorRatio = testStats(errT, cfg.Alpha, margin(in.Baseline), tol(in.Baseline))
	var slowT *TestResult
	if in.SlowCanary != nil && in.SlowBaseline != nil {
		r := compare(*in.SlowCanary, *in.SlowBaseline, cfg.Alpha, cfg.Tau, margin(*in.SlowBaseline), tol(*in.SlowBaseline))
		slowT = &r
		ts := testStats(r, cfg.Alpha, margin(*in.SlowBaseline), tol(*in.SlowBaseline))
		v.Latency = &ts
	}
	var budgetLo float64
	if in.Objective > 0 && in.Objective < 100 {
		allowed := 1 - in.Objective/100
		lo, hi := rateBounds(in.Canary, cfg.Alpha, cfg.Tau)
		budgetLo = lo / allowed
		v.Budget = &BudgetStats{Objective: in.Objective, BurnRate: in.Canary.Ratio() / allowed, Lower: max(0, budgetLo), Upper: hi / allowed}
	}
	decide := func(verdict Outcome, rule, reason string) Verdict {
		v.Verdict, v.Rule, v.Reason = verdict, rule, reason
		return v
	}
	switch {
	case in.Canary.N == 0:
		v.RequestsNeeded = int64(cfg.MinRequests)
		return decide(Inconclusive, "no_canary_traffic", "no request of the canary version yet")
	case in.Baseline.N == 0:
		v.RequestsNeeded = -1
		return decide(Inconclusive, "no_baseline_traffic", "no request of the baseline version: nothing to compare the canary with")
	case errT.Worse:
		return decide(Fail, "error_ratio", fmt.Sprintf("the canary fails %.2f%% of requests against the baseline's %.2f%%: worse by %.2f to %.2f points (%.0f%% always-valid confidence)",
			100*in.Canary.Ratio(), 100*in.Baseline.Ratio(), 100*errT.Lower, 100*errT.Upper, 100*(1-cfg.Alpha)))
	case slowT != nil && slowT.Worse:
		return decide(Fail, "latency", fmt.Sprintf("%.2f%% of the canary's requests are over the latency threshold against the baseline's %.2f%%: worse by %.2f to %.2f points",
			100*in.SlowCanary.Ratio(), 100*in.SlowBaseline.Ratio(), 100*slowT.Lower, 100*slowT.Upper))
	case v.Budget != nil && budgetLo > cfg.BurnRate:
		return decide(Fail, "budget", fmt.Sprintf("the canary alone burns the error budget at %.1fx (at least %.1fx, over %.1fx): promoted to all traffic it would exhaust the budget",
			v.Budget.BurnRate, budgetLo, cfg.BurnRate))
	case in.Canary.N < cfg.MinRequests:
		v.RequestsNeeded = int64(cfg.MinRequests - in.Canary.N)
		return decide(Inconclusive, "min_requests", fmt.Sprintf("%d canary requests so far; a verdict needs %d", in.Canary.N, cfg.MinRequests))
	case errT.NotWorse && (slowT == nil || slowT.NotWorse):
		return decide(Pass, "within_tolerance", fmt.Sprintf("the canary's error ratio is at most %.2f points above the baseline's (tolerance %.2f)",
			100*max(errT.Upper, 0), 100*v.Tolerance))
	}
	n := needed(in.Canary, in.Baseline, cfg.Alpha, cfg.Tau, margin(in.Baseline), tol(in.Baseline))
	if slowT != nil && !slowT.NotWorse {
		if m := needed(*in.SlowCanary, *in.SlowBaseline, cfg.Alpha, cfg.Tau, margin(*in.SlowBaseline), tol(*in.SlowBaseline)); m < 0 || m > n && n >= 0 {
			n = m
		}
	}
	v.RequestsNeeded = n
	need := "no amount of traffic decides at the current rates"
	if n >= 0 {
		need = fmt.Sprintf("about %d more canary requests at the current rates", n)
	}
	return decide(Inconclusive, "undecided", "not enough evidence yet either way: "+need)
}
