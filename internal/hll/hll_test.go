package hll

import (
	"math"
	"testing"
)

// splitmix64 is the test's own hash of the integers it counts, independent
// of the hashes of the packages that use hll.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// TestEstimateAccuracy checks the estimate against the true count at both
// precisions tailgate uses, from a few values to many times the number of
// registers: within 3 standard errors (1.04/√m), or one for tiny counts.
func TestEstimateAccuracy(t *testing.T) {
	for _, p := range []uint{10, 14} {
		m := 1 << p
		stdErr := 1.04 / math.Sqrt(float64(m))
		for _, n := range []uint64{1, 7, 65, 1000, 5000, 20000, 80000, 1000000} {
			regs := make([]uint8, m)
			for i := range n {
				h := splitmix64(i + n*1000003)
				Add(regs, p, h)
				Add(regs, p, h) // a value seen twice counts once
			}
			got := Estimate(regs)
			tol := math.Max(1, 3*stdErr*float64(n))
			if math.Abs(got-float64(n)) > tol {
				t.Errorf("p=%d n=%d: estimate %.1f, off by more than %.1f", p, n, got, tol)
			}
		}
	}
}

func TestEstimateOfEmptyRegisters(t *testing.T) {
	if got := Estimate(make([]uint8, 1<<10)); got != 0 {
		t.Errorf("estimate of empty registers = %v, want 0", got)
	}
}

// TestAddRanks checks the register and rank Add derives from a hash, by
// hand: at precision 10 the first 10 bits pick the register and the rank
// is one plus the leading zeros of the 54 bits after them.
func TestAddRanks(t *testing.T) {
	regs := make([]uint8, 1<<10)
	Add(regs, 10, 3<<54|1<<53) // register 3, next bit set: rank 1
	Add(regs, 10, 5<<54|1<<40) // register 5, 13 zeros: rank 14
	Add(regs, 10, 5<<54|1<<50) // register 5 again, rank 4 < 14: kept 14
	Add(regs, 10, 1023<<54)    // register 1023, all 54 bits zero: rank 55
	want := map[int]uint8{3: 1, 5: 14, 1023: 55}
	for i, r := range regs {
		if r != want[i] {
			t.Errorf("register %d = %d, want %d", i, r, want[i])
		}
	}
}

// TestMergeIsAUnion: two sketches of overlapping sets merge into the
// sketch of their union, exactly (the registers of the union), and merging
// again changes nothing.
func TestMergeIsAUnion(t *testing.T) {
	a, b, union := make([]uint8, 1<<10), make([]uint8, 1<<10), make([]uint8, 1<<10)
	for i := range uint64(6000) {
		Add(a, 10, splitmix64(i))
		Add(b, 10, splitmix64(i+4000))
		Add(union, 10, splitmix64(i))
		Add(union, 10, splitmix64(i+4000))
	}
	Merge(a, b)
	if string(a) != string(union) {
		t.Fatal("merged registers differ from the union's")
	}
	Merge(a, b)
	if string(a) != string(union) {
		t.Error("merging the same sketch twice changed it")
	}
	if got := Estimate(a); math.Abs(got-10000) > 3*1.04/32*10000 {
		t.Errorf("union of 10000 values estimated at %.0f", got)
	}
}
