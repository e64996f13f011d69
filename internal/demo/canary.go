package demo

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// canaryAt is how far into the recovery the hotfix's canary starts: after
// the rollback has stopped the bleeding.
const canaryAt = 0.1

// canaryCheckEvery is how often the demo asks tailgate for the canary's
// verdict, as Argo Rollouts' background analysis would.
const canaryCheckEvery = time.Second

// CanaryRecord is the story of the recovery's canary: the payments
// hotfix takes a share of the charges, tailgate judges it against the
// stable release, and its verdict (not a timer) rolls it back.
type CanaryRecord struct {
	Version, Baseline string
	Share             float64
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

// canaryRun is the canary's state in a run; live is read by the traffic.
type canaryRun struct {
	live      atomic.Bool
	rec       *CanaryRecord
	lastCheck time.Time
}

// apiCanaryVerdict is the part of a canary check the demo shows.
type apiCanaryVerdict struct {
	Verdict string `json:"verdict"`
	Rule    string `json:"rule"`
	Reason  string `json:"reason"`
	Canary  struct {
		Requests uint64 `json:"requests"`
		Errors   uint64 `json:"errors"`
	} `json:"canary"`
}

// startCanary sends the hotfix to a share of the charges.
func (r *run) startCanary(ctx context.Context) {
	m := r.o.Model
	r.can.rec = &CanaryRecord{Version: m.Hotfix.Version, Baseline: m.Stable.Version, Share: m.CanaryShare, Started: r.elapsed()}
	r.deploy(ctx, m.Hotfix.Version, "feature", fmt.Sprintf("payments %s: fix the charge query (canary, %.0f%% of charges)", m.Hotfix.Version, 100*m.CanaryShare))
	r.can.live.Store(true)
	r.event(fmt.Sprintf("canary: payments %s (a hotfix) takes %.0f%% of charges; tailgate judges it against %s every %s",
		m.Hotfix.Version, 100*m.CanaryShare, m.Stable.Version, short(canaryCheckEvery)))
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
	c.Verdict, c.Rule, c.Reason = v.Verdict, v.Rule, v.Reason
	c.Requests, c.Errors = v.Canary.Requests, v.Canary.Errors
	if v.Verdict != "fail" {
		return
	}
	c.Decided = r.elapsed()
	r.can.live.Store(false)
	c.RolledBack = true
	r.event(fmt.Sprintf("canary payments %s FAILED after %d canary requests (%s): %s; rolled back to %s",
		c.Version, c.Requests, short(c.Took()), v.Reason, c.Baseline))
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
