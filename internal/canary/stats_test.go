package canary

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// binomial draws Binomial(n, p) exactly, by skipping geometric gaps
// between successes: about n·p draws, cheap for the small rates here.
func binomial(r *rand.Rand, n uint64, p float64) uint64 {
	if p <= 0 || n == 0 {
		return 0
	}
	if p >= 1 {
		return n
	}
	lq := math.Log1p(-p)
	var k, i uint64
	for {
		// The gap before the next success is Geometric(p).
		gap := uint64(math.Floor(math.Log(1-r.Float64()) / lq))
		i += gap + 1
		if i > n {
			return k
		}
		k++
	}
}

func TestBinomialSampler(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, p, runs = 10000, 0.005, 2000
	var sum, sq float64
	for range runs {
		x := float64(binomial(r, n, p))
		sum += x
		sq += x * x
	}
	mean := sum / runs
	variance := sq/runs - mean*mean
	// Mean n·p = 50 (standard error sqrt(49.75/2000) = 0.16), variance
	// n·p·(1−p) = 49.75.
	if math.Abs(mean-50) > 0.8 || math.Abs(variance-49.75) > 6 {
		t.Errorf("Binomial(10000, 0.005): mean %.2f, variance %.2f; want 50 and 49.75", mean, variance)
	}
}

// TestAAEveryRequest: canaries identical to their baseline at high
// ratios (a latency SLI's share over the threshold can be large), checked
// after every single canary request up to 1,000, where the normal
// approximation is at its weakest: the share ever failed must stay at
// most the configured 5%, for a canary of 50%, 10% and 1% of traffic.
func TestAAEveryRequest(t *testing.T) {
	const canaries, limit = 400, 1000
	r := rand.New(rand.NewPCG(3, 5))
	cfg := Config{}.withDefaults()
	for _, per := range []uint64{1, 9, 99} {
		for _, p := range []float64{0.3, 0.5, 0.7, 0.9} {
			failed := 0
			for range canaries {
				var c, b Side
				for c.N < limit {
					c.N++
					c.Bad += binomial(r, 1, p)
					b.N += per
					b.Bad += binomial(r, per, p)
					if Judge(Input{Canary: c, Baseline: b}, cfg).Verdict == Fail {
						failed++
						break
					}
				}
			}
			rate := float64(failed) / canaries
			t.Logf("A/A at %.0f%%, %d baseline requests per canary request, checked after every request: %d of %d failed (%.1f%%)", 100*p, per, failed, canaries, 100*rate)
			if rate > cfg.Alpha {
				t.Errorf("A/A at %.0f%% with %d:1: %.1f%% of identical canaries failed, over the configured %.0f%%", 100*p, per, 100*rate, 100*cfg.Alpha)
			}
		}
	}
}

// TestAAFalsePositives: 1,000 canaries identical to their baseline (0.5%
// errors; 1% of traffic, so the baseline has 99 requests per canary
// request), each checked after every 100 canary requests up to 20,000.
// The share ever failed must be at most the configured rate, 5%.
func TestAAFalsePositives(t *testing.T) {
	const step, limit = 100, 20000
	r := rand.New(rand.NewPCG(7, 11))
	cfg := Config{}.withDefaults()
	// The case, then a higher error ratio and a 10% canary.
	for _, tc := range []struct {
		canaries  int
		p         float64
		perCanary uint64 // baseline requests per canary request
	}{{1000, 0.005, 99}, {500, 0.02, 99}, {500, 0.005, 9}} {
		failed := 0
		for range tc.canaries {
			var c, b Side
			for c.N < limit {
				c.N += step
				c.Bad += binomial(r, step, tc.p)
				b.N += tc.perCanary * step
				b.Bad += binomial(r, tc.perCanary*step, tc.p)
				if Judge(Input{Canary: c, Baseline: b}, cfg).Verdict == Fail {
					failed++
					break
				}
			}
		}
		rate := float64(failed) / float64(tc.canaries)
		t.Logf("A/A at %.1f%% errors, %d baseline requests per canary request: %d of %d identical canaries ever failed under continuous checks (%.1f%%; configured %.0f%%)",
			100*tc.p, tc.perCanary, failed, tc.canaries, 100*rate, 100*cfg.Alpha)
		if rate > cfg.Alpha {
			t.Errorf("false-positive rate %.3f over the configured %.2f", rate, cfg.Alpha)
		}
	}
}

// TestPower: at 200 requests/s with 1% on the canary (2 canary requests a
// second), a canary failing 2% of requests against a baseline's 0.5% is
// failed; the test prints the median canary requests and seconds it took.
func TestPower(t *testing.T) {
	const runs, perSecond = 200, 2
	r := rand.New(rand.NewPCG(3, 5))
	cfg := Config{}.withDefaults()
	var took []float64
	for range runs {
		var c, b Side
		for sec := 1; sec <= 3600; sec++ {
			c.N += perSecond
			c.Bad += binomial(r, perSecond, 0.02)
			b.N += 198
			b.Bad += binomial(r, 198, 0.005)
			if sec%10 != 0 { // checked every 10 seconds
				continue
			}
			if v := Judge(Input{Canary: c, Baseline: b}, cfg); v.Verdict == Fail {
				took = append(took, float64(c.N))
				break
			} else if v.Verdict == Pass {
				t.Fatalf("a 2%% canary against a 0.5%% baseline passed at %d requests: %s", c.N, v.Reason)
			}
		}
	}
	if len(took) < runs*95/100 {
		t.Errorf("only %d of %d bad canaries failed within an hour", len(took), runs)
	}
	slices.Sort(took)
	med := took[len(took)/2]
	t.Logf("power: a 2%% canary (baseline 0.5%%) fails after a median %.0f canary requests, %.0f s at 2 canary requests/s; %d of %d failed within an hour",
		med, med/perSecond, len(took), runs)
}

// TestPowerLatency: a +100 ms shift at p90. Baseline durations are
// lognormal with median 80 ms and p90 200 ms; the latency SLI counts
// requests over 200 ms (the baseline's p90, so 10% of its requests).
// The canary is the same distribution shifted by 100 ms.
func TestPowerLatency(t *testing.T) {
	const runs, perSecond = 200, 2
	r := rand.New(rand.NewPCG(9, 13))
	mu := math.Log(0.080)
	sigma := (math.Log(0.200) - mu) / 1.2815515655446004 // z of the 90th percentile
	slow := func(shift float64) bool { return math.Exp(mu+sigma*r.NormFloat64())+shift > 0.200 }
	cfg := Config{}.withDefaults()
	var took []float64
	for range runs {
		var c, b, cs, bs Side
		for sec := 1; sec <= 3600; sec++ {
			for range perSecond {
				c.N++
				cs.N++
				if slow(0.100) {
					cs.Bad++
				}
			}
			b.N += 198
			bs.N += 198
			bs.Bad += binomial(r, 198, 0.10)
			if sec%10 != 0 {
				continue
			}
			if v := Judge(Input{Canary: c, Baseline: b, SlowCanary: &cs, SlowBaseline: &bs}, cfg); v.Verdict == Fail {
				if v.Rule != "latency" {
					t.Fatalf("failed by %s, want latency", v.Rule)
				}
				took = append(took, float64(c.N))
				break
			}
		}
	}
	if len(took) < runs*95/100 {
		t.Fatalf("only %d of %d slow canaries failed within an hour", len(took), runs)
	}
	slices.Sort(took)
	t.Logf("power: a +100 ms shift at p90 fails after a median %.0f canary requests (%.0f s at 2/s)", took[len(took)/2], took[len(took)/2]/perSecond)
}

func TestVerdictRules(t *testing.T) {
	cfg := Config{}
	for _, tc := range []struct {
		name        string
		in          Input
		verdict     Outcome
		rule        string
		wantNeedPos bool
	}{
		{"no data", Input{}, Inconclusive, "no_canary_traffic", true},
		{"no baseline", Input{Canary: Side{N: 500, Bad: 1}}, Inconclusive, "no_baseline_traffic", false},
		{"too few", Input{Canary: Side{N: 10}, Baseline: Side{N: 1000, Bad: 5}}, Inconclusive, "min_requests", true},
		{"much worse", Input{Canary: Side{N: 2000, Bad: 200}, Baseline: Side{N: 200000, Bad: 1000}}, Fail, "error_ratio", false},
		{"same, plenty", Input{Canary: Side{N: 200000, Bad: 1000}, Baseline: Side{N: 2000000, Bad: 10000}}, Pass, "within_tolerance", false},
		{"same, little", Input{Canary: Side{N: 200, Bad: 1}, Baseline: Side{N: 20000, Bad: 100}}, Inconclusive, "undecided", true},
		{"burns its budget", Input{Canary: Side{N: 5000, Bad: 100}, Baseline: Side{N: 500000, Bad: 9000}, Objective: 99.5}, Fail, "budget", false},
	} {
		v := Judge(tc.in, cfg)
		if v.Verdict != tc.verdict || v.Rule != tc.rule {
			t.Errorf("%s: %s by %s (%s), want %s by %s", tc.name, v.Verdict, v.Rule, v.Reason, tc.verdict, tc.rule)
		}
		if tc.wantNeedPos && v.RequestsNeeded <= 0 {
			t.Errorf("%s: requests needed %d, want a positive estimate", tc.name, v.RequestsNeeded)
		}
		if v.Reason == "" {
			t.Errorf("%s: no reason", tc.name)
		}
	}
}

func BenchmarkJudge(b *testing.B) {
	in := Input{Canary: Side{N: 2000, Bad: 15}, Baseline: Side{N: 200000, Bad: 1000},
		SlowCanary: &Side{N: 2000, Bad: 230}, SlowBaseline: &Side{N: 200000, Bad: 20000}, Objective: 99.5}
	b.ReportAllocs()
	for b.Loop() {
		Judge(in, Config{})
	}
}

// TestMargin: with the tolerances (1.5x and 0.1 points) a canary
// at 0.6% against 0.5% is within them and passes once the traffic shows
// it; without them the same counts fail, the difference being clear.
// By hand: V ≈ 0.006·0.994/1e6 + 0.005·0.995/1e7 = 6.46e-9, the interval
// half-width sqrt(V·(2·ln 20 + ln((V+τ²)/V))) ≈ 3.2e-4 around 0.001, so
// [0.00068, 0.00132]: above 0, below the margin max(0.5·0.005, 0.001).
func TestMargin(t *testing.T) {
	in := Input{Canary: Side{N: 1_000_000, Bad: 6000}, Baseline: Side{N: 10_000_000, Bad: 50000}}
	if v := Judge(in, Config{}); v.Verdict != Fail {
		t.Errorf("without a margin: %s by %s", v.Verdict, v.Rule)
	}
	v := Judge(in, Config{MaxRatio: 1.5, MaxIncrease: 0.001})
	if v.Verdict != Pass || math.Abs(v.Margin-0.0025) > 1e-9 {
		t.Errorf("within 1.5x and 0.1 points: %s by %s, margin %v (%s)", v.Verdict, v.Rule, v.Margin, v.Reason)
	}
	if math.Abs(v.ErrorRatio.Lower-0.00068) > 0.00003 || math.Abs(v.ErrorRatio.Upper-0.00132) > 0.00003 {
		t.Errorf("interval [%.5f, %.5f], want about [0.00068, 0.00132]", v.ErrorRatio.Lower, v.ErrorRatio.Upper)
	}
	// 3x the baseline is beyond the margin.
	in.Canary.Bad = 15000
	if v := Judge(in, Config{MaxRatio: 1.5, MaxIncrease: 0.001}); v.Verdict != Fail {
		t.Errorf("1.5%% against 0.5%%: %s by %s", v.Verdict, v.Rule)
	}
}

// TestRequestsNeeded checks the estimate by simulation: from counts at
// the true rates (2% against 0.5%, 1% of traffic), adding the estimated
// number of canary requests (and 99 baseline requests each) decides the
// test about four times in five, as the 80% power it aims at says; half
// as many decide it clearly less often.
func TestRequestsNeeded(t *testing.T) {
	c, b := Side{N: 200, Bad: 4}, Side{N: 19800, Bad: 99}
	v := Judge(Input{Canary: c, Baseline: b}, Config{})
	if v.Verdict != Inconclusive || v.RequestsNeeded <= 0 {
		t.Fatalf("%s by %s, needed %d: want inconclusive with an estimate", v.Verdict, v.Rule, v.RequestsNeeded)
	}
	r := rand.New(rand.NewPCG(21, 22))
	share := func(n uint64) float64 {
		const runs = 1000
		failed := 0
		for range runs {
			cc, bb := c, b
			cc.N += n
			cc.Bad += binomial(r, n, 0.02)
			bb.N += 99 * n
			bb.Bad += binomial(r, 99*n, 0.005)
			if Judge(Input{Canary: cc, Baseline: bb}, Config{}).Verdict == Fail {
				failed++
			}
		}
		return float64(failed) / runs
	}
	full, half := share(uint64(v.RequestsNeeded)), share(uint64(v.RequestsNeeded)/2)
	t.Logf("estimate %d more canary requests: %.0f%% of simulated canaries fail after them, %.0f%% after half as many", v.RequestsNeeded, 100*full, 100*half)
	if full < 0.7 || full > 0.95 || half >= full-0.1 {
		t.Errorf("share failed %.2f after the estimate (want about 0.8), %.2f after half", full, half)
	}
}

// TestIntervalsStayInRange checks that the reported intervals are cut to
// what a difference of ratios (or a ratio) can be: a small canary's wide
// interval must not read "worse by 10 to 170 points".
func TestIntervalsStayInRange(t *testing.T) {
	c, b := Side{N: 20, Bad: 19}, Side{N: 500, Bad: 10}
	r := compare(c, b, 0.05, defaultTau, 0, 0.002)
	if r.Upper > 1-0.02+1e-12 || r.Lower < -0.02-1e-12 {
		t.Errorf("difference interval [%v, %v], want within [-0.02, 0.98]", r.Lower, r.Upper)
	}
	if !r.Worse {
		t.Errorf("95%% against 2%% is not worse: %+v", r)
	}
	lo, hi := rateBounds(Side{N: 5, Bad: 0}, 0.05, defaultTau)
	if lo < 0 || hi > 1 {
		t.Errorf("rate bounds [%v, %v], want within [0, 1]", lo, hi)
	}
}
