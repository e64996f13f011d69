package signals

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSketchConstants(t *testing.T) {
	const a = SketchRelativeAccuracy
	gamma := (1 + a) / (1 - a)
	if got, want := sketchMultiplier, 1/math.Log(gamma); math.Abs(got-want) > 1e-9 {
		t.Errorf("sketchMultiplier = %v, want 1/ln(γ) = %v", got, want)
	}
	if got := sketchIndex(math.MaxUint64); got > maxSketchIndex {
		t.Errorf("index of the largest value = %d, above maxSketchIndex %d", got, maxSketchIndex)
	}
}

// TestSketchBucketBounds checks the mapping itself: every value lies within
// its bucket's bounds, and the bounds are at most γ apart.
func TestSketchBucketBounds(t *testing.T) {
	gamma := (1 + SketchRelativeAccuracy) / (1 - SketchRelativeAccuracy)
	r := rand.New(rand.NewPCG(1, 2))
	values := []uint64{1, 2, 3, 7, 8, 9, 1000, 1 << 20, 1<<20 + 1, 1<<40 - 1, math.MaxUint64}
	for range 100000 {
		values = append(values, uint64(math.Exp(r.Float64()*44)))
	}
	for _, v := range values {
		if v == 0 {
			continue
		}
		i := sketchIndex(v)
		lo, hi := sketchBound(i), sketchBound(i+1)
		f := float64(v)
		if f < lo*(1-1e-12) || f > hi*(1+1e-12) {
			t.Fatalf("value %d in bucket %d outside [%v, %v]", v, i, lo, hi)
		}
		if hi/lo > gamma*(1+1e-12) {
			t.Fatalf("bucket %d spans a factor %v > γ %v", i, hi/lo, gamma)
		}
	}
}

// exactQuantile is the definition the sketch answers: the value at rank
// floor(q·(n-1)) of the sorted values.
func exactQuantile(sorted []uint64, q float64) float64 {
	return float64(sorted[int(q*float64(len(sorted)-1))])
}

func TestSketchQuantilesWithinRelativeError(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dists := []struct {
		name string
		gen  func() uint64
		n    int
	}{
		{"lognormal latency", func() uint64 { return uint64(math.Exp(r.NormFloat64()*1.2 + math.Log(20e6))) }, 200000},
		{"uniform 1ms-2s", func() uint64 { return 1e6 + uint64(r.Float64()*2e9) }, 100000},
		{"bimodal cache hit/miss", func() uint64 {
			if r.IntN(10) < 8 {
				return 200e3 + uint64(r.IntN(100e3))
			}
			return 80e6 + uint64(r.IntN(40e6))
		}, 100000},
		{"pareto tail", func() uint64 { return uint64(1e6 / math.Pow(1-r.Float64(), 1/1.5)) }, 100000},
		{"with zeros", func() uint64 {
			if r.IntN(4) == 0 {
				return 0
			}
			return uint64(r.IntN(1e6))
		}, 50000},
		{"few values", func() uint64 { return []uint64{5e6, 7e6, 11e6}[r.IntN(3)] }, 1000},
		{"single", func() uint64 { return 42 }, 1},
	}
	qs := []float64{0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			var sk Sketch
			vals := make([]uint64, d.n)
			for i := range vals {
				vals[i] = d.gen()
				sk.Add(vals[i])
			}
			slices.Sort(vals)
			for _, q := range qs {
				want, got := exactQuantile(vals, q), sk.Quantile(q)
				if math.Abs(got-want) > SketchRelativeAccuracy*want*(1+1e-9) {
					t.Errorf("q%v = %v, exact %v: relative error %.4f > %v", q, got, want, math.Abs(got-want)/want, SketchRelativeAccuracy)
				}
			}
			if sk.Count() != uint64(d.n) || sk.Min() != vals[0] || sk.Max() != vals[len(vals)-1] {
				t.Errorf("count/min/max = %d/%d/%d, want %d/%d/%d", sk.Count(), sk.Min(), sk.Max(), d.n, vals[0], vals[len(vals)-1])
			}
			var sum float64
			for _, v := range vals {
				sum += float64(v)
			}
			if math.Abs(sk.Sum()-sum) > 1e-9*sum {
				t.Errorf("sum = %v, want %v", sk.Sum(), sum)
			}
		})
	}
}

func TestSketchMergeEqualsOneSketch(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var whole Sketch
	parts := make([]Sketch, 7)
	for i := range 50000 {
		// Each part sees a different range so that merging must grow.
		v := uint64(math.Exp(r.Float64()*10+float64(i%7)*3)) + uint64(i%3)
		whole.Add(v)
		parts[i%7].Add(v)
	}
	var merged Sketch
	for i := range parts {
		merged.Merge(&parts[i])
	}
	merged.Merge(&Sketch{}) // merging an empty sketch changes nothing
	for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 1} {
		if a, b := whole.Quantile(q), merged.Quantile(q); a != b {
			t.Errorf("q%v: one sketch %v, merged %v", q, a, b)
		}
	}
	if whole.Count() != merged.Count() || whole.Min() != merged.Min() || whole.Max() != merged.Max() {
		t.Errorf("totals differ: %+v vs %+v", whole, merged)
	}
}

func TestSketchEncodingRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var sk Sketch
	for range 10000 {
		sk.Add(uint64(r.ExpFloat64() * 5e7))
	}
	sk.Add(0)
	b, err := sk.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Sketch
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for _, q := range []float64{0, 0.3, 0.5, 0.99, 1} {
		if a, b := sk.Quantile(q), got.Quantile(q); a != b {
			t.Errorf("q%v: %v before encoding, %v after", q, a, b)
		}
	}
	if diff := cmp.Diff([]any{sk.Count(), sk.Sum(), sk.Min(), sk.Max()}, []any{got.Count(), got.Sum(), got.Min(), got.Max()}); diff != "" {
		t.Errorf("totals (-before +after):\n%s", diff)
	}
	if len(b) > 1200 {
		t.Errorf("encoding is %d bytes; expected a compact sparse form", len(b))
	}

	var empty Sketch
	eb, _ := empty.MarshalBinary()
	if err := got.UnmarshalBinary(eb); err != nil || got.Count() != 0 || got.Quantile(0.5) != 0 {
		t.Errorf("empty round trip: err %v, count %d", err, got.Count())
	}
}

func TestSketchDecodeRejectsGarbage(t *testing.T) {
	var sk Sketch
	valid, _ := (&Sketch{}).MarshalBinary()
	one := Sketch{}
	one.Add(1000)
	oneB, _ := one.MarshalBinary()
	for name, b := range map[string][]byte{
		"empty":         nil,
		"wrong version": {9},
		"truncated":     oneB[:len(oneB)-1],
		"trailing":      append(append([]byte{}, valid...), 0),
		"huge count":    append(append([]byte{}, oneB[:len(oneB)-3]...), 0xff, 0xff, 0xff, 0xff, 0x7f),
	} {
		if err := sk.UnmarshalBinary(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func FuzzSketchDecode(f *testing.F) {
	var sk Sketch
	sk.Add(5)
	sk.Add(5e9)
	b, _ := sk.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Sketch
		if s.UnmarshalBinary(b) == nil {
			_ = s.Quantile(0.5)
			_, _ = s.MarshalBinary()
		}
	})
}
