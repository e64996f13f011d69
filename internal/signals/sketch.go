package signals

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// SketchRelativeAccuracy is the relative error bound of Sketch quantiles: an
// estimate q̂ of a value x satisfies |q̂ - x| <= 0.01 x.
const SketchRelativeAccuracy = 0.01

// sketchMultiplier is 1/ln(γ) with γ = (1+α)/(1-α) and α =
// SketchRelativeAccuracy (TestSketchConstants recomputes it).
const sketchMultiplier = 49.998333288886784

// maxSketchIndex bounds bucket indexes: values are below 2^64, so their
// approximate log2 is below 64 and their index below 64·sketchMultiplier.
const maxSketchIndex = 3200

// Sketch is a mergeable latency distribution in the manner of DDSketch
// (Masson, Rim and Lee, VLDB 2019): values fall into logarithmic buckets
// whose bounds are at most a factor γ = (1+α)/(1-α) apart, so every
// quantile is answered within relative error α, and two sketches merge by
// adding bucket counts.
//
// The bucket index is computed without a logarithm: log2 is interpolated
// linearly between powers of two (exponent + mantissa - 1), whose slope in
// ln space is never below 1, so buckets of width ln γ in that space are at
// most ln γ wide in ln space and the bound holds (DDSketch's
// LinearlyInterpolatedMapping). Values are durations in nanoseconds; the
// dense store covers only the indexes seen and is at most ~26KB.
//
// The zero value is an empty sketch. A Sketch is not safe for concurrent
// use.
type Sketch struct {
	counts   []uint64 // counts[i] is the bucket of index offset+i
	offset   int32
	zero     uint64 // values below 1ns
	n        uint64
	sum      float64
	min, max uint64
}

// sketchIndex returns the bucket of v >= 1.
func sketchIndex(v uint64) int32 {
	f := float64(v)
	b := math.Float64bits(f)
	exp := float64(int64(b>>52) - 1023)
	frac := float64(b&(1<<52-1)) / (1 << 52)
	return int32((exp + frac) * sketchMultiplier)
}

// sketchBound returns the smallest value of bucket i (the inverse of the
// interpolated log2 at i/multiplier).
func sketchBound(i int32) float64 {
	a := float64(i) / sketchMultiplier
	e := math.Floor(a)
	return math.Ldexp(1+a-e, int(e))
}

// sketchValue returns the value that represents bucket i: the harmonic mean
// of its bounds, whose relative distance to either bound is at most α.
func sketchValue(i int32) float64 {
	lo, hi := sketchBound(i), sketchBound(i+1)
	return 2 * lo * hi / (lo + hi)
}

// Add records one value (a duration in nanoseconds).
func (s *Sketch) Add(v uint64) {
	if s.n == 0 || v < s.min {
		s.min = v
	}
	if v > s.max {
		s.max = v
	}
	s.n++
	s.sum += float64(v)
	if v == 0 {
		s.zero++
		return
	}
	i := sketchIndex(v)
	j := i - s.offset
	if j < 0 || int(j) >= len(s.counts) {
		s.grow(i, i)
		j = i - s.offset
	}
	s.counts[j]++
}

// grow makes the dense store cover indexes lo..hi.
func (s *Sketch) grow(lo, hi int32) {
	if len(s.counts) == 0 {
		// Start with some room around the first value: the latencies of one
		// operation usually span a factor of ten or so (~120 buckets).
		const room = 64
		s.offset = max(lo-room, 0)
		s.counts = make([]uint64, hi+room-s.offset)
		return
	}
	curLo, curHi := s.offset, s.offset+int32(len(s.counts))-1
	newLo, newHi := min(lo, curLo), max(hi, curHi)
	// Grow by at least half again so that a drifting distribution does not
	// reallocate on every new bucket.
	extra := int32(len(s.counts) / 2)
	if newLo < curLo {
		newLo = max(newLo-extra, 0)
	}
	if newHi > curHi {
		newHi = min(newHi+extra, max(int32(maxSketchIndex), newHi))
	}
	counts := make([]uint64, newHi-newLo+1)
	copy(counts[curLo-newLo:], s.counts)
	s.counts, s.offset = counts, newLo
}

// Merge adds the values of o to s.
func (s *Sketch) Merge(o *Sketch) {
	if o.n == 0 {
		return
	}
	if s.n == 0 || o.min < s.min {
		s.min = o.min
	}
	s.max = max(s.max, o.max)
	s.n += o.n
	s.sum += o.sum
	s.zero += o.zero
	lo, hi := int32(-1), int32(-1)
	for j, c := range o.counts {
		if c != 0 {
			if lo < 0 {
				lo = o.offset + int32(j)
			}
			hi = o.offset + int32(j)
		}
	}
	if lo < 0 {
		return
	}
	if len(s.counts) == 0 || lo < s.offset || hi >= s.offset+int32(len(s.counts)) {
		s.grow(lo, hi)
	}
	for j := lo - o.offset; j <= hi-o.offset; j++ {
		s.counts[o.offset+j-s.offset] += o.counts[j]
	}
}

// Reset empties s, keeping its memory.
func (s *Sketch) Reset() {
	clear(s.counts)
	s.zero, s.n, s.sum, s.min, s.max = 0, 0, 0, 0, 0
}

// Count returns the number of values.
func (s *Sketch) Count() uint64 { return s.n }

// Sum returns the sum of the values.
func (s *Sketch) Sum() float64 { return s.sum }

// Min returns the smallest value (exact), 0 when empty.
func (s *Sketch) Min() uint64 { return s.min }

// Max returns the largest value (exact), 0 when empty.
func (s *Sketch) Max() uint64 { return s.max }

// Quantile returns the value at rank floor(q·(n-1)) of the sorted values,
// within relative error SketchRelativeAccuracy, clamped to [Min, Max]. It
// returns 0 for an empty sketch.
func (s *Sketch) Quantile(q float64) float64 {
	if s.n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(q * float64(s.n-1))
	if rank < s.zero {
		return 0
	}
	seen := s.zero
	for j, c := range s.counts {
		seen += c
		if seen > rank {
			v := sketchValue(s.offset + int32(j))
			return min(max(v, float64(s.min)), float64(s.max))
		}
	}
	return float64(s.max)
}

const sketchEncodingVersion = 1

// errSketchEncoding marks bytes that are not a sketch encoding.
var errSketchEncoding = errors.New("invalid sketch encoding")

// MarshalBinary encodes s compactly: its totals and the non-empty buckets as
// (index delta, count) varint pairs.
func (s *Sketch) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// AppendBinary appends the encoding of s to b.
func (s *Sketch) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, sketchEncodingVersion)
	b = binary.AppendUvarint(b, s.n)
	b = binary.AppendUvarint(b, s.zero)
	b = binary.AppendUvarint(b, s.min)
	b = binary.AppendUvarint(b, s.max)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.sum))
	nonEmpty := 0
	for _, c := range s.counts {
		if c != 0 {
			nonEmpty++
		}
	}
	b = binary.AppendUvarint(b, uint64(nonEmpty))
	prev := int32(0)
	for j, c := range s.counts {
		if c == 0 {
			continue
		}
		i := s.offset + int32(j)
		b = binary.AppendUvarint(b, uint64(i-prev))
		b = binary.AppendUvarint(b, c)
		prev = i
	}
	return b, nil
}

// UnmarshalBinary replaces s with the sketch encoded in b.
func (s *Sketch) UnmarshalBinary(b []byte) error {
	var o Sketch
	if err := o.decode(b); err != nil {
		return fmt.Errorf("decode latency sketch: %w", err)
	}
	*s = o
	return nil
}

func (s *Sketch) decode(b []byte) error {
	if len(b) == 0 || b[0] != sketchEncodingVersion {
		return errSketchEncoding
	}
	b = b[1:]
	var vals [4]uint64
	for k := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return errSketchEncoding
		}
		vals[k], b = v, b[n:]
	}
	s.n, s.zero, s.min, s.max = vals[0], vals[1], vals[2], vals[3]
	if len(b) < 8 {
		return errSketchEncoding
	}
	s.sum = math.Float64frombits(binary.LittleEndian.Uint64(b))
	b = b[8:]
	buckets, n := binary.Uvarint(b)
	if n <= 0 || buckets > maxSketchIndex+1 {
		return errSketchEncoding
	}
	b = b[n:]
	idx := make([]int32, 0, buckets)
	cnt := make([]uint64, 0, buckets)
	i := uint64(0)
	total := s.zero
	for k := uint64(0); k < buckets; k++ {
		d, n := binary.Uvarint(b)
		if n <= 0 {
			return errSketchEncoding
		}
		b = b[n:]
		c, n := binary.Uvarint(b)
		if n <= 0 || c == 0 {
			return errSketchEncoding
		}
		b = b[n:]
		i += d
		if i > maxSketchIndex || (k > 0 && d == 0) {
			return errSketchEncoding
		}
		idx = append(idx, int32(i))
		cnt = append(cnt, c)
		total += c
	}
	if len(b) != 0 || total != s.n {
		return errSketchEncoding
	}
	if len(idx) > 0 {
		s.offset = idx[0]
		s.counts = make([]uint64, idx[len(idx)-1]-idx[0]+1)
		for k, i := range idx {
			s.counts[i-s.offset] = cnt[k]
		}
	}
	return nil
}
