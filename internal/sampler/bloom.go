package sampler

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// blockWords is the size of a Bloom block in 64-bit words: 512 bits, one
// cache line, so a lookup touches one line.
const blockWords = 8

// bloom is a blocked Bloom filter of trace IDs: every ID sets k bits within
// one 512-bit block. Its hashing is fixed (no seed) because filters are
// saved and loaded.
type bloom struct {
	words   []uint64
	nblocks uint64
	k       uint32

	count    int   // IDs added
	capacity int   // IDs it was sized for
	newest   int64 // unix nanos of the latest add (or of creation)

	// A snapshot copy (snapshotCopy) has no words but the non-zero ones,
	// at the word indices sparseIdx; it is only encoded, never probed.
	sparseIdx   []uint32
	sparseWords []uint64
}

// bloomSize returns the bits per ID and probes per ID of a blocked Bloom
// filter whose false-positive rate at capacity is at most fp. The rate of a
// blocked filter is the average, over the Poisson-distributed load j of a
// block, of (1 - (1 - 1/512)^(j k))^k; it is higher than that of a classic
// filter of the same size, so the size is searched rather than taken from
// the classic formula.
func bloomSize(fp float64) (bitsPerID float64, k uint32) {
	for c := 2.0; c < 64; c += 0.25 {
		// The best k is near c ln 2 (a little below, for blocked filters).
		opt := int(math.Round(c * math.Ln2))
		for kk := max(opt-2, 1); kk <= min(opt+1, 24); kk++ {
			if blockedFP(c, uint32(kk)) <= fp {
				return c, uint32(kk)
			}
		}
	}
	return 64, 24
}

// blockedFP is the false-positive rate of a blocked filter with c bits per
// ID and k probes when it holds its capacity.
func blockedFP(c float64, k uint32) float64 {
	const blockBits = blockWords * 64
	lambda := blockBits / c
	hi := int(lambda + 12*math.Sqrt(lambda) + 20)
	fp := 0.0
	for j := 0; j <= hi; j++ {
		lg, _ := math.Lgamma(float64(j + 1))
		pj := math.Exp(float64(j)*math.Log(lambda) - lambda - lg)
		inBlock := 1 - math.Pow(1-1.0/blockBits, float64(j)*float64(k))
		fp += pj * math.Pow(inBlock, float64(k))
	}
	return fp
}

// bloomShape is a filter's bits per ID and probes per ID.
type bloomShape struct {
	bitsPerID float64
	k         uint32
}

func newBloom(capacity int, shape bloomShape, now int64) *bloom {
	c, k := shape.bitsPerID, shape.k
	nblocks := uint64(math.Ceil(float64(max(capacity, 1)) * c / (blockWords * 64)))
	return &bloom{
		words:    make([]uint64, nblocks*blockWords),
		nblocks:  nblocks,
		k:        k,
		capacity: capacity,
		newest:   now,
	}
}

// splitmix64's finalizer: a fast, well-mixed 64-bit hash step.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// probe returns the block index and the bit-position source of id. Trace
// IDs are hashed rather than used as they are because not every producer
// makes all 16 bytes random.
func (b *bloom) probe(id *otlp.TraceID) (block uint64, h uint64) {
	lo := binary.LittleEndian.Uint64(id[0:8])
	hi := binary.LittleEndian.Uint64(id[8:16])
	a := mix64(lo ^ 0x9e3779b97f4a7c15)
	h = mix64(hi ^ a)
	block, _ = bits.Mul64(a, b.nblocks)
	return block, h
}

func (b *bloom) add(id *otlp.TraceID, now int64) {
	block, h := b.probe(id)
	w := b.words[block*blockWords : block*blockWords+blockWords]
	seed := h
	for i := uint32(0); i < b.k; i++ {
		if i > 0 && i%7 == 0 {
			// 7 probes use 63 bits; derive fresh bits for the next ones.
			seed = mix64(seed + uint64(i))
			h = seed
		}
		pos := h & 511
		w[pos>>6] |= 1 << (pos & 63)
		h >>= 9
	}
	b.count++
	b.newest = max(b.newest, now)
}

func (b *bloom) has(id *otlp.TraceID) bool {
	block, h := b.probe(id)
	w := b.words[block*blockWords : block*blockWords+blockWords]
	seed := h
	for i := uint32(0); i < b.k; i++ {
		if i > 0 && i%7 == 0 {
			// 7 probes use 63 bits; derive fresh bits for the next ones.
			seed = mix64(seed + uint64(i))
			h = seed
		}
		pos := h & 511
		if w[pos>>6]&(1<<(pos&63)) == 0 {
			return false
		}
		h >>= 9
	}
	return true
}

// snapshotCopy returns a copy of b for a snapshot to encode: its non-zero
// words only. A filter is sized for a full TTL of dropped traces and
// mostly zero after a short run, so this costs a scan of b, not a copy of
// its size (a full clone, tens of megabytes allocated and copied at every
// snapshot, was a tenth of the daemon's CPU under load).
func (b *bloom) snapshotCopy() *bloom {
	c := *b
	c.words = nil
	// One pass, a block at a time (an ID sets bits in one block, so most
	// blocks of a filter that is not full are all zero), into slices that
	// never grow: an ID sets at most min(k, blockWords) words.
	n := min(len(b.words), b.count*int(min(b.k, blockWords)))
	c.sparseIdx, c.sparseWords = make([]uint32, 0, n), make([]uint64, 0, n)
	words := b.words
	for at := 0; at+blockWords <= len(words); at += blockWords {
		w := words[at : at+blockWords : at+blockWords]
		if w[0]|w[1]|w[2]|w[3]|w[4]|w[5]|w[6]|w[7] == 0 {
			continue
		}
		for j, x := range w {
			if x != 0 {
				c.sparseIdx = append(c.sparseIdx, uint32(at+j))
				c.sparseWords = append(c.sparseWords, x)
			}
		}
	}
	return &c
}

// nonzero returns how many of b's words are not zero.
func (b *bloom) nonzero() int {
	if b.words == nil {
		return len(b.sparseWords)
	}
	n := 0
	for _, w := range b.words {
		if w != 0 {
			n++
		}
	}
	return n
}

// eachNonzero calls f with the index and value of each non-zero word, in
// order, until f returns false.
func (b *bloom) eachNonzero(f func(i int, w uint64) bool) {
	if b.words == nil {
		for j, i := range b.sparseIdx {
			if !f(int(i), b.sparseWords[j]) {
				return
			}
		}
		return
	}
	for i, w := range b.words {
		if w != 0 && !f(i, w) {
			return
		}
	}
}

func (b *bloom) full() bool { return b.count >= b.capacity }

func (b *bloom) memBytes() int { return len(b.words) * 8 }
