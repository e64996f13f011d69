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

	// A filter built by newBloom keeps, as add sets bits, the number of
	// its non-zero words and a bitmap of its non-zero blocks, so that a
	// snapshot copy costs what the filter holds, not what it could hold.
	// A filter loaded from a file has no bitmap (it is never added to).
	nonzeroWords int
	usedBlocks   []uint64

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
		words:      hugeWords(int(nblocks * blockWords)),
		usedBlocks: make([]uint64, (nblocks+63)/64),
		nblocks:    nblocks,
		k:          k,
		capacity:   capacity,
		newest:     now,
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
		x := w[pos>>6]
		if x == 0 {
			b.nonzeroWords++
		}
		w[pos>>6] = x | 1<<(pos&63)
		h >>= 9
	}
	if b.usedBlocks != nil {
		b.usedBlocks[block>>6] |= 1 << (block & 63)
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

// copyBuf is the storage a filter's snapshot copies are built in, kept
// between snapshots: a copy's arrays, allocated at every snapshot, were
// written into pages new to the process, and those first touches cost
// more than the copying.
type copyBuf struct {
	idx   []uint32
	words []uint64
}

func (cb *copyBuf) memBytes() int { return cap(cb.idx)*4 + cap(cb.words)*8 }

// snapshotCopy returns a copy of b for a snapshot to encode, built in
// cb's storage (grown when it is too small): the copy is valid until the
// next call with the same cb. A filter is sized for a full TTL of dropped
// traces and mostly zero after a short run, so the copy holds its non-zero
// words only and reads only the blocks add marked used; once the sparse
// form would be larger than the filter (12 bytes a non-zero word against
// 8 a word), the copy is a plain one. Either way cb never holds more than
// the filter's size and 96 bytes. It grows by doubling, since a filter
// fills steadily between rotations.
func (b *bloom) snapshotCopy(cb *copyBuf) *bloom {
	c := *b
	c.usedBlocks = nil
	n := b.nonzero()
	maxSparse := 2*len(b.words)/3 + blockWords
	if n+blockWords > maxSparse {
		if cap(cb.words) < len(b.words) {
			cb.words = make([]uint64, len(b.words))
		}
		cb.idx = nil
		c.words = cb.words[:len(b.words):len(b.words)]
		copy(c.words, b.words)
		c.sparseIdx, c.sparseWords = nil, nil
		return &c
	}
	c.words = nil
	if need := n + blockWords; cap(cb.idx) < need || cap(cb.words) < need {
		grown := min(2*need, maxSparse)
		cb.idx, cb.words = make([]uint32, grown), make([]uint64, grown)
	}
	idx, words := cb.idx[:n+blockWords], cb.words[:n+blockWords]
	// Every word of a used block is written and the index moves past the
	// non-zero ones only: about half the words of a used block are zero,
	// and a branch on each mispredicts often.
	k := 0
	b.eachUsedBlock(func(at int) bool {
		for j, x := range b.words[at : at+blockWords : at+blockWords] {
			idx[k], words[k] = uint32(at+j), x
			k += int((x | -x) >> 63) // 1 when x != 0
		}
		return k <= n // past n only if the count were wrong; add keeps it right
	})
	k = min(k, n)
	c.sparseIdx, c.sparseWords = idx[:k:k], words[:k:k]
	return &c
}

// eachUsedBlock calls f, in order, with the index of the first word of
// every block that may hold a set bit (the blocks the bitmap marks, or
// every block of a filter without one), until f returns false.
func (b *bloom) eachUsedBlock(f func(at int) bool) {
	if b.usedBlocks == nil {
		for at := 0; at+blockWords <= len(b.words); at += blockWords {
			if !f(at) {
				return
			}
		}
		return
	}
	for i, m := range b.usedBlocks {
		for m != 0 {
			if !f((i*64 + bits.TrailingZeros64(m)) * blockWords) {
				return
			}
			m &= m - 1
		}
	}
}

// reset empties b for reuse.
func (b *bloom) reset(now int64) {
	clear(b.words)
	clear(b.usedBlocks)
	b.count, b.nonzeroWords, b.newest = 0, 0, now
}

// nonzero returns how many of b's words are not zero.
func (b *bloom) nonzero() int {
	switch {
	case b.words == nil:
		return len(b.sparseWords)
	case b.usedBlocks != nil:
		return b.nonzeroWords
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
	b.eachUsedBlock(func(at int) bool {
		for j, x := range b.words[at : at+blockWords : at+blockWords] {
			if x != 0 && !f(at+j, x) {
				return false
			}
		}
		return true
	})
}

func (b *bloom) full() bool { return b.count >= b.capacity }

func (b *bloom) memBytes() int { return (len(b.words) + len(b.usedBlocks)) * 8 }
