package canary

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// versionMatch returns whether a version is the canary's (baseline
// false) or on the baseline's side: the named baseline, or every version
// but the canary's when baseline is "".
func versionMatch(canary, baseline string) (isCanary, isBaseline func(string) bool) {
	return func(v string) bool { return v == canary },
		func(v string) bool { return v != canary && (baseline == "" || v == baseline) }
}

// compareInput builds the test's input from per-operation counts, with
// the slow requests' test when slow. With weighted, the baseline is
// reweighted to the treated side's mix of operations (see reweight);
// operations only the treated side served are left out of both sides and
// returned.
func compareInput(treated, base map[string]Counts, slow, weighted bool) (Input, []string) {
	var in Input
	if !weighted {
		c, b := sumOps(treated), sumOps(base)
		in.Canary, in.Baseline = Side{N: c.Requests, Bad: c.Errors}, Side{N: b.Requests, Bad: b.Errors}
		if slow {
			in.SlowCanary = &Side{N: c.Requests, Bad: c.Slow}
			in.SlowBaseline = &Side{N: b.Requests, Bad: b.Slow}
		}
		return in, nil
	}
	var shared []string
	var onlyTreated []string
	for op := range treated {
		if base[op].Requests > 0 {
			shared = append(shared, op)
		} else {
			onlyTreated = append(onlyTreated, op)
		}
	}
	slices.Sort(shared)
	slices.Sort(onlyTreated)
	in.Canary, in.Baseline = reweight(treated, base, shared, func(c Counts) uint64 { return c.Errors })
	if slow {
		c, b := reweight(treated, base, shared, func(c Counts) uint64 { return c.Slow })
		in.SlowCanary, in.SlowBaseline = &c, &b
	}
	return in, onlyTreated
}

// reweight returns the treated side's counts over the shared operations,
// and a baseline Side with the rate the baseline would have at the treated
// side's mix: p = Σ w_op·p_op with w_op the treated side's share of the
// operation. Its request count is the effective sample size of that
// weighted estimate, p(1−p)/Σ w_op²·p_op(1−p_op)/n_op, so that the test
// sees the baseline's real precision (fewer requests of an operation the
// canary serves much more of weigh less).
func reweight(treated, base map[string]Counts, shared []string, bad func(Counts) uint64) (Side, Side) {
	var c Side
	for _, op := range shared {
		c.N += treated[op].Requests
		c.Bad += bad(treated[op])
	}
	if c.N == 0 {
		var b Side
		for _, x := range base {
			b.N += x.Requests
			b.Bad += bad(x)
		}
		return c, b
	}
	var p, v float64
	var nb uint64
	for _, op := range shared {
		w := float64(treated[op].Requests) / float64(c.N)
		n := float64(base[op].Requests)
		// The regularized rate, as the test's own variance uses.
		q := (float64(bad(base[op])) + 0.5) / (n + 1)
		p += w * float64(bad(base[op])) / n
		v += w * w * q * (1 - q) / n
		nb += base[op].Requests
	}
	pr := (p*float64(nb) + 0.5) / (float64(nb) + 1)
	neff := pr * (1 - pr) / v
	// The reweighted estimate is never more precise than the baseline's
	// requests allow.
	neff = min(neff, float64(nb))
	n := uint64(math.Round(neff))
	return c, Side{N: n, Bad: uint64(math.Round(p * float64(n)))}
}

// Marker is a deploy of a service: its counts after At are compared with
// those of the Before window preceding it.
type Marker struct {
	Service string    `json:"service"`
	At      time.Time `json:"at"`
	// Before is the window before the deploy to compare with; default 30
	// minutes.
	Before time.Duration `json:"before,omitempty"`
	// RollbackCommand undoes the deploy, e.g. kubectl rollout undo
	// deployment/NAME -n NS.
	RollbackCommand  string        `json:"rollback_command,omitempty"`
	Objective        float64       `json:"objective,omitempty"`
	LatencyThreshold time.Duration `json:"latency_threshold,omitempty"`
}

// Regression is a post-deploy verdict: the service after the deploy
// judged against itself before, operation by operation and weighted by
// the traffic after, with the same sequential test as a canary.
type Regression struct {
	// Verdict is regressed, clean or inconclusive.
	Verdict Outcome `json:"verdict"`
	Detail  Verdict `json:"detail"`
	// RollbackCommand is the marker's, on regressed only.
	RollbackCommand string `json:"rollback_command,omitempty"`
	// RequestsBefore and RequestsAfter are the service's requests in the
	// window before the deploy and since it (every operation).
	RequestsBefore uint64 `json:"requests_before"`
	RequestsAfter  uint64 `json:"requests_after"`
	// NewOperations served after the deploy and not in the window before
	// are left out of the comparison.
	NewOperations []string `json:"new_operations,omitempty"`
	// Operations are the (up to five) operations with the most failed
	// requests beyond what their ratio before the deploy predicts: where
	// a regression is.
	Operations []OperationStats `json:"operations,omitempty"`
}

// OperationStats compares one operation after a deploy with before it.
type OperationStats struct {
	Operation   string  `json:"operation"`
	Requests    uint64  `json:"requests"`
	Errors      uint64  `json:"errors"`
	ErrorRatio  float64 `json:"error_ratio"`
	BeforeRatio float64 `json:"before_error_ratio"`
	// Excess is Errors less Requests times BeforeRatio.
	Excess float64 `json:"excess_errors"`
}

// worstOperations returns the operations served on both sides with the
// largest excess of failed requests after, at most n, positive only.
func worstOperations(before, after map[string]Counts, n int) []OperationStats {
	var out []OperationStats
	for op, a := range after {
		b := before[op]
		if b.Requests == 0 || a.Requests == 0 {
			continue
		}
		pb := float64(b.Errors) / float64(b.Requests)
		x := OperationStats{Operation: op, Requests: a.Requests, Errors: a.Errors,
			ErrorRatio: float64(a.Errors) / float64(a.Requests), BeforeRatio: pb,
			Excess: float64(a.Errors) - float64(a.Requests)*pb}
		if x.Excess > 0 {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(x, y OperationStats) int {
		if x.Excess != y.Excess {
			return cmp.Compare(y.Excess, x.Excess)
		}
		return strings.Compare(x.Operation, y.Operation)
	})
	return out[:min(len(out), n)]
}

// BeforeWindow is the window before the deploy its counts are compared
// with: Before, default 30 minutes.
func (m Marker) BeforeWindow() time.Duration { return m.before() }

func (m Marker) before() time.Duration {
	if m.Before <= 0 {
		return 30 * time.Minute
	}
	return m.Before
}

// Judge judges the deploy from counts per operation before and after it
// (all versions); their Slow counts are over m.LatencyThreshold, and
// judged when it is set.
func (m Marker) Judge(before, after map[string]Counts, cfg Config) Regression {
	in, newOps := compareInput(after, before, m.LatencyThreshold > 0, true)
	in.Objective = m.Objective
	v := Judge(in, cfg)
	reg := Regression{Detail: v, NewOperations: newOps, Operations: worstOperations(before, after, 5)}
	for _, x := range before {
		reg.RequestsBefore += x.Requests
	}
	for _, x := range after {
		reg.RequestsAfter += x.Requests
	}
	switch v.Verdict {
	case Fail:
		reg.Verdict, reg.RollbackCommand = Regressed, m.RollbackCommand
	case Pass:
		reg.Verdict = Clean
	default:
		reg.Verdict = Inconclusive
	}
	switch v.Rule {
	case "no_canary_traffic":
		reg.Detail.Reason = fmt.Sprintf("no request of %s since the deploy yet", m.Service)
	case "no_baseline_traffic":
		reg.Detail.Reason = fmt.Sprintf("no request of %s in the %s before the deploy: nothing to compare with", m.Service, m.before())
	}
	return reg
}
