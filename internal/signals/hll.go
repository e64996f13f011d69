package signals

import (
	"math"

	"github.com/tailgate-sre/tailgate/internal/hll"
)

// HyperLogLog parameters: precision 14 gives 16384 one-byte registers
// (16KiB) and a standard error of 1.04/sqrt(16384) ≈ 0.81%.
const (
	hllPrecision = 14
	hllRegisters = 1 << hllPrecision
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
		hll.Add(d.regs[:], hllPrecision, h)
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
	return uint64(math.Round(hll.Estimate(d.regs[:]))), false
}
