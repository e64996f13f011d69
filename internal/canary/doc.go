// Package canary judges a canary against its baseline from per-request
// counts, with statistics that stay valid when checked continuously (Argo
// Rollouts and Flagger ask every minute).
//
// # The test
//
// Each request of a version is a Bernoulli trial: failed or not (the
// availability SLI), slow or not (over the latency SLO's threshold). For
// the difference θ = p_canary − p_baseline the package runs a mixture
// sequential probability ratio test (mSPRT; Johari, Pekelis and Walsh,
// "Always valid inference", 2017) with a normal mixture N(0, τ²) over θ
// and the normal approximation of θ̂:
//
//	Λ = sqrt(V/(V+τ²)) · exp(τ²·θ̂² / (2V(V+τ²)))
//
// where V = max(p̃_c(1−p̃_c), p̃_b(1−p̃_b))/n_c + p̃_b(1−p̃_b)/n_b with
// p̃ = (x+½)/(n+1): the canary's variance is at least the baseline's, so
// that a small canary that by chance failed no request (or every one)
// does not look precise.
// Λ is a nonnegative supermartingale under θ = 0, so rejecting when
// Λ ≥ 1/α is wrong with probability at most α however often it is
// checked (Ville's inequality). Two such tests run side by side, with
// τ = 0.01 (most powerful for regressions of about a point) and 10τ (for
// a canary that fails or slows most of its requests, which the first
// would take hundreds of requests to tell), each at level α/2: by the
// union bound the pair is wrong with probability at most α. Each mixture
// gives an always-valid confidence sequence for θ, and the narrower of
// the two is the test's: a canary fails when its lower end is above
// the margin (Config.MaxRatio, Config.MaxIncrease; 0 by default), which
// for any true difference within the margin happens with probability at
// most α; it passes when the upper end is below the tolerance, and is
// inconclusive until then, with an estimate of the requests still needed.
// The canary's own burn rate is bounded the same way (the budget rule).
//
// # The counts
//
// A Recorder counts entry spans per service, version, operation and
// minute, and a Checker judges a canary (Check) or a deploy (Regression)
// from them: the daemon's API, CLI and gate use these. The same
// judgements take counts from any source (Judge on an Input, Marker.Judge),
// such as a fleet's rows summed in the store. docs/canary.md describes
// the statistics at length.
//
// The test's false-positive rate under continuous monitoring is measured
// by TestAAFalsePositives (1,000 identical canaries checked every 100
// requests), and its power by TestPower.
package canary
