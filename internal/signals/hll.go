package signals

import (
	"math"
	"math/bits"
)

// HyperLogLog parameters: precision 14 gives 16384 one-byte registers
// (16KiB) and a standard error of 1.04/sqrt(16384) ≈ 0.81%.
const (
	hllPrecision = 14
	hllRegisters = 1 << hllPrecision
	hllQ         = 64 - hllPrecision // hash bits left for the rank
)

// hllSetMax is how many distinct hashes a distinctCounter keeps exactly
// before it switches to HyperLogLog registers. Most attribute keys (method,
// status code, host) never get there and cost a few hundred bytes.
const hllSetMax = 64

// distinctCounter estimates the number of distinct 64-bit hashes added: it
// counts exactly up to hllSetMax in a small open-addressing set, then
// switches to a HyperLogLog of precision 14. The zero value is empty.
type distinctCounter struct {
	set  []uint64 // open addressing, 0 is empty; len is a power of two
	n    int      // entries in set
	regs *[hllRegisters]uint8
	// full is set when the set reached hllSetMax and no memory was left for
	// registers: the count is then a lower bound.
	full bool
}

// addResult says what add did with a hash.
type addResult uint8

const (
	addSeen   addResult = iota // already counted (or counted in registers)
	addNew                     // a new value in the exact set
	addNoRoom                  // the exact set is full: call dense, or accept a lower bound
)

// add records a hash.
func (d *distinctCounter) add(h uint64) addResult {
	if d.regs != nil {
		i := h >> hllQ
		r := uint8(bits.LeadingZeros64(h<<hllPrecision|1<<(hllPrecision-1))) + 1
		if r > d.regs[i] {
			d.regs[i] = r
		}
		return addSeen
	}
	if h == 0 {
		h = 1
	}
	if len(d.set) == 0 {
		d.set = make([]uint64, 8)
	}
	mask := uint64(len(d.set) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch d.set[i] {
		case h:
			return addSeen
		case 0:
			if d.n >= hllSetMax {
				return addNoRoom
			}
			d.set[i] = h
			d.n++
			if d.n*2 > len(d.set) {
				d.rehash(len(d.set) * 2)
			}
			return addNew
		}
	}
}

func (d *distinctCounter) rehash(size int) {
	old := d.set
	d.set = make([]uint64, size)
	mask := uint64(size - 1)
	for _, h := range old {
		if h == 0 {
			continue
		}
		i := h & mask
		for d.set[i] != 0 {
			i = (i + 1) & mask
		}
		d.set[i] = h
	}
}

// dense switches to registers, adding every hash of the exact set.
func (d *distinctCounter) dense() {
	d.regs = new([hllRegisters]uint8)
	set := d.set
	d.set, d.n = nil, 0
	for _, h := range set {
		if h != 0 {
			d.add(h)
		}
	}
}

// memory returns the bytes the counter holds.
func (d *distinctCounter) memory() int {
	if d.regs != nil {
		return hllRegisters
	}
	return 8 * len(d.set)
}

// estimate returns the estimated number of distinct hashes and whether it is
// a lower bound.
func (d *distinctCounter) estimate() (uint64, bool) {
	if d.regs == nil {
		return uint64(d.n), d.full
	}
	return uint64(math.Round(hllEstimate(d.regs))), false
}

// hllEstimate is Ertl's improved raw estimator ("New cardinality estimation
// algorithms for HyperLogLog sketches", 2017, algorithm 6), which is
// unbiased from small to large cardinalities without bias tables or a
// switch to linear counting.
func hllEstimate(regs *[hllRegisters]uint8) float64 {
	var c [hllQ + 2]int
	for _, r := range regs {
		c[r]++
	}
	const m = float64(hllRegisters)
	z := m * hllTau(1-float64(c[hllQ+1])/m)
	for k := hllQ; k >= 1; k-- {
		z = 0.5 * (z + float64(c[k]))
	}
	z += m * hllSigma(float64(c[0])/m)
	const alphaInf = 1 / (2 * math.Ln2)
	return alphaInf * m * m / z
}

func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		zPrev := z
		z += x * y
		y += y
		if z == zPrev {
			return z
		}
	}
}

func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		zPrev := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if z == zPrev {
			return z / 3
		}
	}
}
