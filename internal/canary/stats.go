package canary

import (
	"math"
)

// Side is one version's counts of one Bernoulli SLI.
type Side struct {
	// N requests, of which Bad failed (or were slow).
	N, Bad uint64
}

// rate is the regularized rate (x+½)/(n+1): never 0 or 1, so a variance
// is defined from the first request on.
func (s Side) rate() float64 { return (float64(s.Bad) + 0.5) / (float64(s.N) + 1) }

// Ratio is the observed rate Bad/N (0 without requests).
func (s Side) Ratio() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.Bad) / float64(s.N)
}

// TestResult is the mSPRT's state for one SLI.
type TestResult struct {
	// Diff is θ̂ = canary ratio − baseline ratio; Lower and Upper bound θ
	// with always-valid confidence 1−α.
	Diff, Lower, Upper float64
	// LogLR is log Λ; the canary is worse when it reaches log(1/α) with
	// Diff > 0.
	LogLR float64
	// SE is the standard error of Diff.
	SE float64
	// Worse: Lower is above the fail margin (with margin 0: log Λ
	// reached log(1/α) with Diff > 0).
	Worse bool
	// NotWorse: Upper is below the tolerated difference.
	NotWorse bool
}

// defaultTau is τ, the scale of the normal mixture over θ. It is chosen
// for differences of rates around a percent: a mixture is most powerful
// for effects of about its τ.
const defaultTau = 0.01

// wideTau is the scale of the second mixture, as a multiple of τ: tuned
// for differences of tens of points (a canary that fails or slows most of
// its requests), which the τ mixture alone takes hundreds of requests to
// tell, this one a few dozen.
const wideTau = 10

// mixtures is how many mixtures the test runs, each at level α/mixtures:
// by the union bound the chance that any of them ever rejects a true
// difference is at most α.
const mixtures = 2

// mixture returns the half width of a mixture's confidence sequence at level
// a for an estimate of variance v, and logLR the log of its likelihood
// ratio for the difference d.
func mixture(v, tau, a, d float64) (halfWidth, logLR float64) {
	t2 := tau * tau
	halfWidth = math.Sqrt(v * (v + t2) / t2 * (2*math.Log(1/a) + math.Log((v+t2)/v)))
	logLR = 0.5*math.Log(v/(v+t2)) + t2*d*d/(2*v*(v+t2))
	return halfWidth, logLR
}

// bounds returns the half width of the test's confidence sequence, the
// narrower of its two mixtures' at level α/2 each, and the log likelihood
// ratio of d as compared with log(1/α): the larger of the two mixtures',
// less log 2.
func bounds(v, tau, alpha, d float64) (half, logLR float64) {
	half, logLR = math.Inf(1), math.Inf(-1)
	for _, t := range [mixtures]float64{tau, wideTau * tau} {
		h, l := mixture(v, t, alpha/mixtures, d)
		half, logLR = min(half, h), max(logLR, l-math.Log(mixtures))
	}
	return half, logLR
}

// compare runs the two-sample test for canary against baseline at level
// alpha: worse when the difference is above margin, not worse when it is
// below tol (tol ≥ margin). For any true difference θ ≤ margin, the
// chance that Lower ever exceeds margin is at most α, since the
// confidence sequence would then have excluded θ.
func compare(c, b Side, alpha, tau, margin, tol float64) TestResult {
	// The canary's variance is the larger of its own rate's and the
	// baseline's: a small canary that saw no failure by chance must not
	// look precise, nor one that by chance failed nearly every request
	// where the baseline fails most (p(1−p) shrinks towards 1 as towards
	// 0).
	pb, pc := b.rate(), c.rate()
	v := max(pc*(1-pc), pb*(1-pb))/(float64(c.N)+1) + pb*(1-pb)/(float64(b.N)+1)
	diff := c.Ratio() - b.Ratio()
	// The confidence sequence is the set of θ0 the test would not reject.
	half, logLR := bounds(v, tau, alpha, diff)
	// The difference of two ratios lies in [-baseline, 1-baseline]: the
	// interval is cut to it (which changes neither decision, margin being
	// at least 0 and tol below 1).
	r := TestResult{Diff: diff, Lower: max(diff-half, -b.Ratio()), Upper: min(diff+half, 1-b.Ratio()), LogLR: logLR, SE: math.Sqrt(v)}
	r.Worse = r.Lower > margin
	r.NotWorse = r.Upper < tol
	return r
}

// rateBounds are always-valid bounds of one rate: the confidence sequence
// of a single Bernoulli rate, with the same mixture.
func rateBounds(s Side, alpha, tau float64) (lo, hi float64) {
	p := s.rate()
	v := p * (1 - p) / (float64(s.N) + 1)
	half, _ := bounds(v, tau, alpha, 0)
	return max(0, s.Ratio()-half), min(1, s.Ratio()+half)
}

// powerZ is the normal quantile of the power needed's estimate aims at:
// 0.8416 for 80%.
const powerZ = 0.8416

// needed estimates how many more canary requests (the baseline growing in
// proportion) the test needs to decide with 80% power, if the rates stay
// as they are: the smallest growth of both sides, found by doubling and
// bisection, after which the interval clears the margin (or the
// tolerance) by powerZ standard errors more than it must. Projecting the
// observed difference alone would give the sample size that decides half
// of the time; the extra powerZ·SE makes it four times in five, under the
// normal approximation. It returns 0 when it is decided already and -1
// when no growth up to a million times decides it (the observed
// difference sits between margin and tolerance, or on one of them).
func needed(c, b Side, alpha, tau, margin, tol float64) int64 {
	r := compare(c, b, alpha, tau, margin, tol)
	if r.Worse || r.NotWorse {
		return 0
	}
	pc, pb := c.Ratio(), b.Ratio()
	grow := func(k float64) (Side, Side) {
		nc, nb := float64(c.N+1)*k, float64(b.N+1)*k
		return Side{N: uint64(nc), Bad: uint64(math.Round(nc * pc))}, Side{N: uint64(nb), Bad: uint64(math.Round(nb * pb))}
	}
	decided := func(k float64) bool {
		gc, gb := grow(k)
		r := compare(gc, gb, alpha, tau, margin, tol)
		return r.Lower-powerZ*r.SE > margin || r.Upper+powerZ*r.SE < tol
	}
	hi := 2.0
	for !decided(hi) {
		hi *= 2
		if hi > 1e6 {
			return -1
		}
	}
	lo := hi / 2
	for range 30 {
		mid := (lo + hi) / 2
		if decided(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	gc, _ := grow(hi)
	return int64(gc.N) - int64(c.N)
}
