package demo

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// canaryAt is how far into the recovery the hotfix's canary starts: after
// the rollback has stopped the bleeding.
const canaryAt = 0.1

// canaryStep is how long each step of the canary but the last lasts, as a
// share of the recovery (an Argo Rollout's pause between setWeight steps).
// A step passes while tailgate's verdict is not fail: inconclusive for
// want of requests is the expected answer at 1%. The last step lasts
// until the verdict.
const canaryStep = 0.1

// canaryCheckEvery is how often the demo asks tailgate for the canary's
// verdict, as Argo Rollouts' background analysis would.
const canaryCheckEvery = time.Second

// CanaryRecord is the story of the recovery's canary: the payments
// hotfix takes a share of the charges, tailgate judges it against the
// stable release, and its verdict (not a timer) rolls it back.
type CanaryRecord struct {
	Version, Baseline string
	// Steps are the shares of charges the canary took, in order; Share
	// is the last one.
	Steps []float64
	Share float64
	// Started is when the canary took traffic, from the demo's start.
	Started time.Duration
	// Verdict is tailgate's last verdict (pass, fail, inconclusive), with
	// its rule and reason; Decided is when it was first pass or fail.
	Verdict, Rule, Reason string
	Decided               time.Duration
	// Requests and Errors are the canary's counts at the verdict.
	Requests, Errors uint64
	// Checks is how many times the demo asked.
	Checks int
	// RolledBack is set once the fail verdict rolled the canary back.
	RolledBack bool
	// Gate is the gate's answer for releasing the canary's version after
	// the verdict: denied, naming the verdict.
	Gate *GateAnswer
}

// GateAnswer is one gate decision as the demo saw it.
type GateAnswer struct {
	Decision, Rule, Reason string
}

// Took returns how long the canary ran before its verdict.
func (c *CanaryRecord) Took() time.Duration { return c.Decided - c.Started }

// Shares returns the canary's steps as text: "1% then 10%".
func (c *CanaryRecord) Shares() string {
	parts := make([]string, len(c.Steps))
	for i, s := range c.Steps {
		parts[i] = percent(s)
	}
	return strings.Join(parts, " then ")
}

// percent formats a share of charges: 1%, 10%, 2.5%.
func percent(share float64) string {
	return fmt.Sprintf("%.3g%%", 100*share)
}

// canaryRun is the canary's state in a run; shareBits (the share of
// charges it serves now, 0 when not live) is read by the traffic.
type canaryRun struct {
	shareBits   atomic.Uint64
	rec         *CanaryRecord
	lastCheck   time.Time
	step        int
	stepStarted time.Time
	// last is tailgate's last verdict, shown when the canary steps up.
	last apiCanaryVerdict
}

// share returns the share of charges the canary serves now.
func (c *canaryRun) share() float64 { return math.Float64frombits(c.shareBits.Load()) }

// live reports whether the canary takes traffic.
func (c *canaryRun) live() bool { return c.share() > 0 }

func (c *canaryRun) setShare(s float64) { c.shareBits.Store(math.Float64bits(s)) }

// apiCanaryVerdict is the part of a canary check the demo shows.
type apiCanaryVerdict struct {
	Verdict string `json:"verdict"`
	Rule    string `json:"rule"`
	Reason  string `json:"reason"`
	// RequestsNeeded is the estimate of the canary requests still needed
	// for a verdict, -1 when none is in sight at these rates.
	RequestsNeeded int64 `json:"requests_needed"`
	Canary         struct {
		Requests uint64 `json:"requests"`
		Errors   uint64 `json:"errors"`
	} `json:"canary"`
}

// startCanary sends the hotfix to the first step's share of the charges.
func (r *run) startCanary(ctx context.Context) {
	m := r.o.Model
	first := m.CanarySteps[0]
	r.can.rec = &CanaryRecord{Version: m.Hotfix.Version, Baseline: m.Stable.Version, Steps: []float64{first}, Share: first, Started: r.elapsed()}
	r.deploy(ctx, m.Hotfix.Version, "feature", fmt.Sprintf("payments %s: fix the charge query (canary, %s of charges)", m.Hotfix.Version, percent(first)))
	r.can.step, r.can.stepStarted = 0, r.now()
	r.can.setShare(first)
	r.event(fmt.Sprintf("canary: payments %s (a hotfix) takes %s of charges; tailgate judges it against %s every %s",
		m.Hotfix.Version, percent(first), m.Stable.Version, short(canaryCheckEvery)))
}

// stepCanary moves a canary whose verdict is not fail to its next share.
func (r *run) stepCanary(context.Context) {
	c, v := r.can.rec, r.can.last
	r.can.step++
	next := r.o.Model.CanarySteps[r.can.step]
	c.Steps, c.Share = append(c.Steps, next), next
	r.can.stepStarted = r.now()
	r.can.setShare(next)
	so := "no verdict yet"
	if v.Verdict != "" {
		so = fmt.Sprintf("%s after %d canary requests", v.Verdict, v.Canary.Requests)
		if v.RequestsNeeded > 0 {
			so += fmt.Sprintf(", about %d more needed", v.RequestsNeeded)
		}
	}
	r.event(fmt.Sprintf("canary: payments %s steps up to %s of charges (verdict so far: %s)", c.Version, percent(next), so))
}

// checkCanary asks tailgate for the canary's verdict and rolls the canary
// back on fail.
func (r *run) checkCanary(ctx context.Context) {
	c := r.can.rec
	r.can.lastCheck = r.now()
	var v apiCanaryVerdict
	err := r.api.do(ctx, http.MethodPost, "/api/v1/canary/check", map[string]string{
		"service": Payments, "canary": c.Version, "baseline": c.Baseline,
	}, &v)
	if err != nil {
		if !isGone(err) {
			r.event("could not check the canary: " + err.Error())
		}
		return
	}
	c.Checks++
	r.can.last = v
	c.Verdict, c.Rule, c.Reason = v.Verdict, v.Rule, v.Reason
	c.Requests, c.Errors = v.Canary.Requests, v.Canary.Errors
	if v.Verdict != "fail" {
		return
	}
	c.Decided = r.elapsed()
	r.can.setShare(0)
	c.RolledBack = true
	r.event(fmt.Sprintf("canary payments %s FAILED at %s after %d canary requests (%s): %s; rolled back to %s",
		c.Version, percent(c.Share), c.Requests, short(c.Took()), v.Reason, c.Baseline))
	r.deploy(ctx, c.Baseline, "rollback", fmt.Sprintf("roll back the payments %s canary: tailgate's verdict is fail", c.Version))
	var d apiDecision
	q := map[string]string{"service": Payments, "version": c.Version, "change_class": "feature",
		"environment": "production", "requested_by": "tailgate-demo"}
	if err := r.api.do(ctx, http.MethodPost, "/api/v1/gate/check", q, &d); err != nil {
		if !isGone(err) {
			r.event("could not ask the gate about the canary's version: " + err.Error())
		}
		return
	}
	c.Gate = &GateAnswer{Decision: d.Decision, Rule: d.PolicyRule, Reason: d.reason()}
	r.event(fmt.Sprintf("GATE payments %s feature: %s (%s): %s", c.Version, d.Decision, d.PolicyRule, d.reason()))
}
