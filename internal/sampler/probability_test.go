package sampler

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

func TestThreshold(t *testing.T) {
	// By hand: T = round((1-p) 2^56) as 14 hex digits.
	// 0.95 = 0.F333... in hex (0.95*16 = 15.2, 0.2*16 = 3.2, ...), so
	// 0.95 * 2^56 = F3333333333333.33 (hex), rounded down.
	// 0.5 * 2^56 = 80000000000000 (hex); 0 for p = 1.
	tests := []struct {
		percent float64
		t       uint64
		hex     string
	}{
		{5, 0xF3333333333333, "f3333333333333"},
		{50, 0x80000000000000, "8"},
		{100, 0, "0"},
		{25, 0xC0000000000000, "c"},
		{6.25, 0xF0000000000000, "f"},
	}
	for _, tt := range tests {
		got := thresholdFor(tt.percent / 100)
		if got != tt.t {
			t.Errorf("thresholdFor(%g%%) = %#x, want %#x", tt.percent, got, tt.t)
		}
		if h := thresholdHex(got); h != tt.hex {
			t.Errorf("thresholdHex(%g%%) = %q, want %q", tt.percent, h, tt.hex)
		}
	}
	if got := thresholdFor(0); got != 1<<56 {
		t.Errorf("thresholdFor(0) = %#x, want 2^56 (nothing is kept)", got)
	}
}

func TestRandomnessIsLow56Bits(t *testing.T) {
	id := otlp.TraceID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7}
	if got := randomness(id); got != 0x01020304050607 {
		t.Errorf("randomness = %#x", got)
	}
	// R >= T keeps: at T = 0x80000000000000 (50%), R = 0x80000000000000 is
	// kept and one less is not.
	keep := otlp.TraceID{8: 0xAA, 9: 0x80}
	drop := otlp.TraceID{8: 0xAA, 9: 0x7f, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}
	if !sampledByThreshold(keep, 1<<55) || sampledByThreshold(drop, 1<<55) {
		t.Error("threshold comparison is not R >= T")
	}
}

func TestSamplePercentShare(t *testing.T) {
	pol, err := newPolicy([]RuleConfig{percent("rest", 5)})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 100_000
	kept := 0
	tr := &Trace{root: -1}
	for range n {
		for i := range tr.id {
			tr.id[i] = byte(rng.Uint32())
		}
		if pol.evaluate(tr, epoch, &scratch{}).decision == Keep {
			kept++
		}
	}
	// Binomial(n, 0.05): mean 5000, sd sqrt(n p (1-p)) = 68.9; allow 4.5 sd.
	mean, sd := n*0.05, math.Sqrt(n*0.05*0.95)
	if math.Abs(float64(kept)-mean) > 4.5*sd {
		t.Errorf("kept %d of %d, want %.0f ± %.0f", kept, n, mean, 4.5*sd)
	}
}

// TestDeterministicAcrossInstances sends the same traces to two
// independent samplers and expects the same traces kept.
func TestDeterministicAcrossInstances(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var specs []spanSpec
	for i := range 2000 {
		specs = append(specs, simpleTrace(traceID(uint64(i), rng.Uint64()), 3, "svc", true)...)
	}
	run := func() map[otlp.TraceID]int {
		cfg := testConfig(percent("rest", 10))
		cfg.Shards = 3
		env := newEnv(t, cfg, Settings{})
		if err := env.consume(t, specs); err != nil {
			t.Fatal(err)
		}
		env.s.processSync()
		env.s.tickSync(time.Now().Add(time.Minute))
		if err := env.s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		return keptTraces(env.exp.kept(t))
	}
	a, b := run(), run()
	if len(a) == 0 || len(a) == 2000 {
		t.Fatalf("kept %d of 2000 traces", len(a))
	}
	for id := range a {
		if b[id] != a[id] {
			t.Errorf("trace %v: %d spans kept by one instance, %d by the other", id, a[id], b[id])
		}
	}
	if len(a) != len(b) {
		t.Errorf("instances kept %d and %d traces", len(a), len(b))
	}
	// Each kept trace is kept by R >= T, checked independently here.
	for id := range a {
		if r := randomness(id); float64(r) < 0.9*(1<<56) {
			t.Errorf("trace %v kept with R = %#x below 0.9 * 2^56", id, r)
		}
	}
}

func TestBloomFalsePositiveRate(t *testing.T) {
	for _, fp := range []float64{0.01, 0.001} {
		var shape bloomShape
		shape.bitsPerID, shape.k = bloomSize(fp)
		const n = 50_000
		b := newBloom(n, shape, 0)
		rng := rand.New(rand.NewPCG(5, 6))
		var id otlp.TraceID
		for range n {
			for i := range id {
				id[i] = byte(rng.Uint32())
			}
			b.add(&id, 0)
			if !b.has(&id) {
				t.Fatal("added ID not found")
			}
		}
		const probes = 200_000
		hits := 0
		for range probes {
			for i := range id {
				id[i] = byte(rng.Uint32())
			}
			if b.has(&id) {
				hits++
			}
		}
		// Allow the design rate plus 4 binomial sd of the measurement.
		limit := fp*probes + 4*math.Sqrt(fp*probes)
		if float64(hits) > limit {
			t.Errorf("fp %g: %d false positives in %d probes, want <= %.0f (%.1f bits/ID, k=%d)",
				fp, hits, probes, limit, shape.bitsPerID, shape.k)
		}
		t.Logf("fp %g: %.2f bits/ID, k=%d, measured %.5f", fp, shape.bitsPerID, shape.k, float64(hits)/probes)
	}
}
