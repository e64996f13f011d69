package canary

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ErrInvalid marks a check request that names no service or canary.
var ErrInvalid = errors.New("invalid canary check")

// CheckRequest asks for a canary's verdict.
type CheckRequest struct {
	Service string `json:"service"`
	// Canary is the canary's version; Baseline the baseline's, or empty
	// for every other version of the service.
	Canary   string `json:"canary"`
	Baseline string `json:"baseline,omitempty"`
	// Since is where the comparison starts; zero means when the canary
	// version was first seen.
	Since time.Time `json:"since,omitzero"`
}

// CheckResult is a verdict with what it is about.
type CheckResult struct {
	Service         string    `json:"service"`
	CanaryVersion   string    `json:"canary_version"`
	BaselineVersion string    `json:"baseline_version"`
	Since           time.Time `json:"since"`
	At              time.Time `json:"at"`
	// PerOperation says the baseline was reweighted to the canary's mix
	// of operations (Config.PerOperation); CanaryOnlyOperations are the
	// operations the baseline did not serve, left out of both sides then.
	PerOperation         bool     `json:"per_operation,omitempty"`
	CanaryOnlyOperations []string `json:"canary_only_operations,omitempty"`
	// LatencyQuantiles are both sides' p50, p90 and p99 over the same
	// minutes, from this instance's requests; nil until both have some.
	LatencyQuantiles *LatencyQuantiles `json:"latency_quantiles,omitempty"`
	Verdict
}

// Checker answers canary checks from a Recorder's counts.
type Checker struct {
	rec *Recorder
	cfg Config
	// objectives maps a service to its availability SLO's objective.
	objectives map[string]float64
	now        func() time.Time

	// byService overrides cfg for some services (their policies').
	byService map[string]Config

	mu sync.Mutex
	// failed holds the first fail verdict of each service and version: an
	// always-valid test's fail stands, even if later counts alone would
	// be inconclusive (see Failed).
	failed map[[2]string]CheckResult
}

// NewChecker returns a checker; objectives maps each service to its
// availability SLO's objective (percent), for the budget rule.
func NewChecker(rec *Recorder, cfg Config, objectives map[string]float64, now func() time.Time) *Checker {
	if now == nil {
		now = time.Now
	}
	return &Checker{rec: rec, cfg: cfg, objectives: objectives, now: now}
}

// Check judges a canary now.
func (c *Checker) Check(req CheckRequest) (CheckResult, error) {
	req.Service, req.Canary, req.Baseline = strings.TrimSpace(req.Service), strings.TrimSpace(req.Canary), strings.TrimSpace(req.Baseline)
	if req.Service == "" || req.Canary == "" {
		return CheckResult{}, fmt.Errorf("%w: name the service and the canary version", ErrInvalid)
	}
	if req.Baseline == req.Canary {
		return CheckResult{}, fmt.Errorf("%w: the baseline is the canary (%q)", ErrInvalid, req.Canary)
	}
	now := c.now()
	since := req.Since
	if since.IsZero() {
		if first, ok := c.rec.FirstSeen(req.Service, req.Canary); ok {
			since = first
		} else {
			since = now.Add(-time.Hour)
		}
	}
	cfg := c.configFor(req.Service)
	isCanary, isBaseline := versionMatch(req.Canary, req.Baseline)
	baseline := req.Baseline
	if baseline == "" {
		baseline = "every other version"
	}
	in, only := compareInput(c.rec.Operations(req.Service, isCanary, since, now), c.rec.Operations(req.Service, isBaseline, since, now),
		c.rec.Threshold(req.Service) > 0, cfg.PerOperation)
	in.Objective = c.objectives[req.Service]
	res := CheckResult{Service: req.Service, CanaryVersion: req.Canary, BaselineVersion: baseline, Since: since.UTC(), At: now.UTC(),
		PerOperation: cfg.PerOperation, CanaryOnlyOperations: only, Verdict: Judge(in, cfg)}
	cq, okc := c.rec.Quantiles(req.Service, isCanary, since, now)
	bq, okb := c.rec.Quantiles(req.Service, isBaseline, since, now)
	if okc && okb {
		res.LatencyQuantiles = &LatencyQuantiles{Canary: cq, Baseline: bq, Scope: "this instance's requests"}
	}
	if res.Verdict.Verdict == Fail {
		c.mu.Lock()
		if _, ok := c.failed[[2]string{req.Service, req.Canary}]; !ok {
			if c.failed == nil {
				c.failed = map[[2]string]CheckResult{}
			}
			c.failed[[2]string{req.Service, req.Canary}] = res
		}
		c.mu.Unlock()
	}
	return res, nil
}

// WithServiceConfigs makes the checker judge the named services with
// their own configuration, the others with its default; it returns c.
func (c *Checker) WithServiceConfigs(byService map[string]Config) *Checker {
	c.byService = byService
	return c
}

func (c *Checker) configFor(service string) Config {
	if cfg, ok := c.byService[service]; ok {
		return cfg
	}
	return c.cfg
}

// Failed returns the first fail verdict given for the service's version,
// if any. The gate denies such a version whatever later counts say: the
// verdict was wrong with probability at most the false-positive rate when
// it was given, and checking again must not undo it. Verdicts are kept in
// this process only.
func (c *Checker) Failed(service, version string) (CheckResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.failed[[2]string{service, version}]
	return r, ok
}

// Regression judges the deploy of m with the counts of every version of
// the service (this instance's and, with a store, the fleet's): the
// minutes after the deploy against the window before it (m.Before,
// default 30 minutes), the deploy's own minute on neither side, operation
// by operation and weighted by the traffic after (Marker.Judge).
func (c *Checker) Regression(m Marker) Regression {
	now := c.now()
	at := m.At.Truncate(time.Minute)
	all := func(string) bool { return true }
	before := c.rec.Operations(m.Service, all, at.Add(-m.before()), at.Add(-time.Minute))
	after := c.rec.Operations(m.Service, all, at.Add(time.Minute), now)
	if len(before) == 0 {
		reason := fmt.Sprintf("no request of %s in the %s before the deploy: nothing to compare with", m.Service, m.before())
		return Regression{Verdict: Inconclusive, Detail: Verdict{Verdict: Inconclusive, Rule: "no_baseline_traffic", Reason: reason, RequestsNeeded: -1}}
	}
	m.LatencyThreshold = c.rec.Threshold(m.Service)
	if m.Objective == 0 {
		m.Objective = c.objectives[m.Service]
	}
	return m.Judge(before, after, c.configFor(m.Service))
}
