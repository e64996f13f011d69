package canary

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// MaxThresholds bounds the latency thresholds an OpCounts holds.
const MaxThresholds = 2

// OpCounts are one operation's (or one side's) entry spans.
type OpCounts struct {
	Requests uint64 `json:"requests"`
	// Bad failed per DESIGN.md (status ERROR, HTTP 5xx, gRPC server fault).
	Bad uint64 `json:"bad"`
	// Slow counts the requests over each latency threshold, in the order
	// given with the counts.
	Slow [MaxThresholds]uint64 `json:"slow"`
}

func (c *OpCounts) add(o OpCounts) {
	c.Requests += o.Requests
	c.Bad += o.Bad
	for i := range c.Slow {
		c.Slow[i] += o.Slow[i]
	}
}

// Analysis names a canary to judge: a service, its canary version and the
// baseline version it is compared with.
type Analysis struct {
	Service string `json:"service"`
	Canary  string `json:"canary"`
	// Baseline is the baseline version; "" compares with every other
	// version of the service.
	Baseline string `json:"baseline,omitempty"`
	// Since is when the analysis began; counts before it are ignored.
	Since time.Time `json:"since"`
	// Objective is the availability SLO's objective in percent, for the
	// budget rule; 0 leaves it out.
	Objective float64 `json:"objective,omitempty"`
	// LatencyThreshold is the latency SLO's threshold, one of those the
	// service is tracked with; 0 leaves latency out.
	LatencyThreshold time.Duration `json:"latency_threshold,omitempty"`
	// PerOperation compares each operation with the same operation of the
	// baseline, weighted by the canary's traffic, so that a canary serving
	// a different mix of operations is not judged on the mix.
	PerOperation bool `json:"per_operation,omitempty"`
}

// isBaseline reports whether version v is on the baseline's side.
func (a Analysis) isBaseline(v string) bool {
	return v != a.Canary && (a.Baseline == "" || v == a.Baseline)
}

// Judge judges the analysis from counts per operation of the canary and
// of the baseline (e.g. summed from the store's minute rows of a fleet),
// whose Slow counts follow thresholds.
func (a Analysis) Judge(canary, baseline map[string]OpCounts, thresholds []time.Duration, cfg Config) Verdict {
	in, _ := compareInput(canary, baseline, thresholdIndex(thresholds, a.LatencyThreshold), a.PerOperation)
	in.Objective = a.Objective
	return Judge(in, cfg)
}

// thresholdIndex returns the index of t among thresholds, -1 when t is 0
// or not among them.
func thresholdIndex(thresholds []time.Duration, t time.Duration) int {
	if t <= 0 {
		return -1
	}
	return slices.Index(thresholds, t)
}

// compareInput builds the test's input from per-operation counts. With
// weighted, the baseline is reweighted to the treated side's mix of
// operations (see reweight); operations only the treated side served are
// left out of both sides and returned.
func compareInput(treated, base map[string]OpCounts, slow int, weighted bool) (Input, []string) {
	var in Input
	if !weighted {
		var c, b OpCounts
		for _, x := range treated {
			c.add(x)
		}
		for _, x := range base {
			b.add(x)
		}
		in.Canary, in.Baseline = Side{N: c.Requests, Bad: c.Bad}, Side{N: b.Requests, Bad: b.Bad}
		if slow >= 0 {
			in.SlowCanary = &Side{N: c.Requests, Bad: c.Slow[slow]}
			in.SlowBaseline = &Side{N: b.Requests, Bad: b.Slow[slow]}
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
	in.Canary, in.Baseline = reweight(treated, base, shared, func(c OpCounts) uint64 { return c.Bad })
	if slow >= 0 {
		c, b := reweight(treated, base, shared, func(c OpCounts) uint64 { return c.Slow[slow] })
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
func reweight(treated, base map[string]OpCounts, shared []string, bad func(OpCounts) uint64) (Side, Side) {
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
func worstOperations(before, after map[string]OpCounts, n int) []OperationStats {
	var out []OperationStats
	for op, a := range after {
		b := before[op]
		if b.Requests == 0 || a.Requests == 0 {
			continue
		}
		pb := float64(b.Bad) / float64(b.Requests)
		x := OperationStats{Operation: op, Requests: a.Requests, Errors: a.Bad,
			ErrorRatio: float64(a.Bad) / float64(a.Requests), BeforeRatio: pb,
			Excess: float64(a.Bad) - float64(a.Requests)*pb}
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
// (all versions), whose Slow counts follow thresholds.
func (m Marker) Judge(before, after map[string]OpCounts, thresholds []time.Duration, cfg Config) Regression {
	in, newOps := compareInput(after, before, thresholdIndex(thresholds, m.LatencyThreshold), true)
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
