package daemon

import (
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

// canaryGate tells the gate whether a version failed as a canary.
type canaryGate struct{ c *canary.Checker }

// CanaryFailed implements gate.CanarySource.
func (g canaryGate) CanaryFailed(service, version string) (bool, string) {
	if res, ok := g.c.Failed(service, version); ok {
		return true, res.Reason
	}
	res, err := g.c.Check(canary.CheckRequest{Service: service, Canary: version})
	if err != nil || res.Verdict.Verdict != canary.Fail {
		return false, ""
	}
	return true, res.Reason
}

// newCanary builds the per-version counts and the canary checker: slow
// requests are those over a service's first latency SLO's threshold, and
// the budget rule uses its first availability SLO's objective.
func newCanary(specs []slo.Spec) (*canary.Recorder, *canary.Checker) {
	thresholds := map[string]time.Duration{}
	objectives := map[string]float64{}
	for _, s := range specs {
		switch s.SLI.Kind {
		case slo.Latency:
			if _, ok := thresholds[s.Service]; !ok && s.SLI.Threshold > 0 {
				thresholds[s.Service] = s.SLI.Threshold.Std()
			}
		case slo.Availability:
			if _, ok := objectives[s.Service]; !ok {
				objectives[s.Service] = s.Objective
			}
		}
	}
	rec := canary.NewRecorder(canary.RecorderConfig{Thresholds: thresholds})
	return rec, canary.NewChecker(rec, canary.Config{}, objectives, nil)
}
