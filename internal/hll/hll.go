// Package hll is the HyperLogLog arithmetic that tailgate's distinct counts
// share: the golden signals' attribute cardinality (precision 14) and the
// incidents' users of failed requests (precision 10, stored and merged
// across a fleet). Callers own their registers, their hash and their
// precision; this package adds hashes to registers, merges registers and
// estimates a count from them.
package hll

import (
	"math"
	"math/bits"
)

// Add records the 64-bit hash h in regs, the registers of a HyperLogLog of
// precision p (len(regs) == 1<<p, 1 <= p <= 16): the first p bits of h pick
// the register, which keeps the largest rank (leading zeros plus one) of
// the bits after them.
func Add(regs []uint8, p uint, h uint64) {
	i := h >> (64 - p)
	r := uint8(bits.LeadingZeros64(h<<p|1<<(p-1))) + 1
	if r > regs[i] {
		regs[i] = r
	}
}

// Merge adds the hashes counted in src to dst, two sketches of the same
// precision and hash: each register keeps the larger rank, so merging is
// a union and merging twice changes nothing.
func Merge(dst, src []uint8) {
	for i, v := range src[:len(dst)] {
		dst[i] = max(dst[i], v)
	}
}

// Estimate returns the number of distinct hashes added to regs (whose
// length is a power of two): Ertl's improved raw estimator ("New
// cardinality estimation algorithms for HyperLogLog sketches", 2017,
// algorithm 6), unbiased from small to large counts without bias tables
// or a switch to linear counting.
func Estimate(regs []uint8) float64 {
	p := bits.TrailingZeros(uint(len(regs)))
	q := 64 - p // bits left for the rank; ranks go up to q+1
	var c [66]int
	for _, r := range regs {
		c[min(int(r), q+1)]++
	}
	m := float64(len(regs))
	z := m * tau(1-float64(c[q+1])/m)
	for k := q; k >= 1; k-- {
		z = 0.5 * (z + float64(c[k]))
	}
	z += m * sigma(float64(c[0])/m)
	const alphaInf = 1 / (2 * math.Ln2)
	return alphaInf * m * m / z
}

func sigma(x float64) float64 {
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

func tau(x float64) float64 {
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
