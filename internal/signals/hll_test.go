package signals

import (
	"encoding/binary"
	"math"
	"testing"
)

// hashOf hashes the 8 bytes of i with hashBytes, so the accuracy tests
// also check that the hash spreads sequential inputs well.
func hashOf(i uint64) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], i)
	return hashBytes(b[:])
}

func TestDistinctCounterExactWhileSmall(t *testing.T) {
	var d distinctCounter
	for round := range 3 {
		for i := range uint64(hllSetMax) {
			if d.add(hashOf(i)) == addNoRoom {
				t.Fatalf("round %d: add %d refused below the set limit", round, i)
			}
		}
	}
	if got, lower := d.estimate(); got != hllSetMax || lower {
		t.Errorf("estimate = %d (lower bound %v), want exactly %d", got, lower, hllSetMax)
	}
	if d.add(hashOf(hllSetMax)) != addNoRoom {
		t.Errorf("add beyond the set limit accepted without registers")
	}
	if d.memory() > 8*2*hllSetMax {
		t.Errorf("exact set holds %d bytes", d.memory())
	}
}

// TestHyperLogLogAccuracy checks the estimate against the true count over
// the range where Ertl's estimator replaces linear counting and the raw
// estimate: the error must stay within 3 standard errors (1.04/√m).
func TestHyperLogLogAccuracy(t *testing.T) {
	stdErr := 1.04 / math.Sqrt(hllRegisters)
	for _, n := range []uint64{65, 100, 1000, 5000, 20000, 40000, 80000, 200000, 1000000} {
		var d distinctCounter
		for i := range n {
			h := hashOf(i + n*1000003)
			if d.add(h) == addNoRoom {
				d.dense()
				d.add(h)
			}
			// Every value twice: duplicates must not count.
			d.add(h)
		}
		got, lower := d.estimate()
		relErr := math.Abs(float64(got)-float64(n)) / float64(n)
		t.Logf("n=%d estimate=%d error=%.3f%%", n, got, 100*relErr)
		if lower || relErr > 3*stdErr {
			t.Errorf("n=%d: estimate %d off by %.2f%% (> 3σ = %.2f%%)", n, got, 100*relErr, 300*stdErr)
		}
	}
}
