package signals

// maxKeysLimit is the largest accepted cardinality.max_keys_per_service.
const maxKeysLimit = 4096

// keyTable tracks the attribute keys of one service and source (span or
// resource): an open-addressing table from the key's hash to its stats.
type keyTable struct {
	slots     []int32 // 1 + index into keys; 0 is empty
	keys      []*keyStat
	untracked distinctCounter // hashes of keys beyond the limit (exact, capped)
	// pred is the key seen at each attribute position of the last span
	// read in full: spans of one service mostly list the same keys in the
	// same order, so a comparison usually replaces hashing the key.
	pred [maxPredicted]*keyStat
	// hot lists the keys that are not settled; hotBits is a one-hash Bloom
	// filter of them (keyBit), which lets the scan of a span skip most other
	// attributes after reading three bytes.
	hot     []*keyStat
	hotBits [2]uint64
	// hotIdx maps a filter bit to its hot key's index in hot, -1 when
	// none, -2 when several share the bit.
	hotIdx [128]int8
	// hotGen changes whenever the hot keys do.
	hotGen uint32
	// layouts remembers, per span name, at which attribute positions the
	// hot keys were found, so that the scan of the next span of that name
	// skips the other attributes after reading their length.
	layouts *[64]layout
}

// layout is where a span name's hot keys sit among its attributes.
type layout struct {
	name  uint64 // nameFingerprint; 0 is empty
	gen   uint32 // keyTable.hotGen it was learned under
	count int    // attributes of the span
	hot   uint64 // bit i: attribute i holds a hot key
}

// maxPredicted is how many attribute positions keyTable.pred remembers.
const maxPredicted = 32

// Sampling of span attributes. Every span's attributes are scanned, but
// beyond the first fullReadsPerWindow spans of a service in a cardinality
// window (so that small services are counted exactly) only one span in
// sampleStride (chosen at random) is read in full: the others only feed
// the keys that are still gaining values ("hot"). A key
// settles, and stops being hot, once its exact set of at most
// settleMaxValues values has not grown over settleAfter occurrences; a
// settled key that gains a value is hot again at once. So keys with many
// values (IDs, URLs: the ones the report is for) see every value and their
// distinct counts stay exact up to the HyperLogLog's error, while the
// low-cardinality keys that make up most attributes (method, scheme,
// status) cost a length read per span (see observeHotAttrs); their values
// recur, so a new one is found within a few sampled spans. Span shares of
// settled keys are counted on the sampled spans, weighted by sampleStride.
const (
	fullReadsPerWindow = 1024
	sampleStride       = 32
	settleAfter        = 1024
	settleMaxValues    = 32
)

// keyStat is what the report knows of one attribute key.
type keyStat struct {
	name    string
	hash    uint64
	spans   uint64 // spans carrying the key in the current window
	values  distinctCounter
	stable  uint32 // occurrences read since the last new value
	settled bool
	prev    windowStat // the previous window
}

// windowStat is a key's figures at the end of a window.
type windowStat struct {
	distinct uint64
	atLeast  bool
	spans    uint64
}

// lookup returns the stats of key, adding it (hot) within the limit; nil
// when the table is full.
func (t *keyTable) lookup(key []byte, limit int) *keyStat {
	h := hashBytes(key)
	if len(t.slots) == 0 {
		t.slots = make([]int32, 16)
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		j := t.slots[i]
		if j == 0 {
			if len(t.keys) >= limit {
				t.untracked.add(h)
				return nil
			}
			k := &keyStat{name: string(key), hash: h}
			t.keys = append(t.keys, k)
			t.slots[i] = int32(len(t.keys))
			if 2*len(t.keys) > len(t.slots) {
				t.rebuild(2 * len(t.slots))
			}
			t.hot = append(t.hot, k)
			t.setHot()
			return k
		}
		if k := t.keys[j-1]; k.hash == h && k.name == string(key) {
			return k
		}
	}
}

// keyBit is the Bloom filter bit of a key: from its length and its first
// and last bytes, which tell apart most keys of one service.
func keyBit(key []byte) uint {
	if len(key) == 0 {
		return 0
	}
	return (uint(len(key))*0x9e5 + uint(key[0])*0x3b + uint(key[len(key)-1])) & 127
}

// setHot rebuilds the filter and index of the hot keys.
func (t *keyTable) setHot() {
	t.hotGen++
	t.hotBits = [2]uint64{}
	for i := range t.hotIdx {
		t.hotIdx[i] = -1
	}
	for i, k := range t.hot {
		b := keyBit([]byte(k.name))
		t.hotBits[b>>6] |= 1 << (b & 63)
		if t.hotIdx[b] == -1 && i < 127 {
			t.hotIdx[b] = int8(i)
		} else {
			t.hotIdx[b] = -2
		}
	}
}

// settle moves k out of the hot list.
func (t *keyTable) settle(k *keyStat) {
	k.settled = true
	for i, h := range t.hot {
		if h == k {
			t.hot = append(t.hot[:i], t.hot[i+1:]...)
			t.hot[len(t.hot):cap(t.hot)][0] = nil
			break
		}
	}
	t.setHot()
}

// unsettle makes k hot again.
func (t *keyTable) unsettle(k *keyStat) {
	k.settled, k.stable = false, 0
	t.hot = append(t.hot, k)
	t.setHot()
}

// rebuild re-creates the slots for the current keys.
func (t *keyTable) rebuild(size int) {
	for size < 2*len(t.keys) || size < 16 {
		size *= 2
	}
	t.slots = make([]int32, size)
	mask := uint64(size - 1)
	for j, k := range t.keys {
		i := k.hash & mask
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = int32(j + 1)
	}
	t.pred = [maxPredicted]*keyStat{}
}

// findHot returns the hot key named key, or nil.
func (t *keyTable) findHot(key []byte) *keyStat {
	for _, k := range t.hot {
		if k.name == string(key) {
			return k
		}
	}
	return nil
}

// addValue counts one value of k and settles or unsettles it.
// h is the value's valueHash.
func (s *Signals) addValue(t *keyTable, k *keyStat, h uint64) {
	switch k.values.add(h) {
	case addNew:
		if k.settled {
			t.unsettle(k)
		}
		k.stable = 0
	case addSeen:
		if !k.settled && k.values.regs == nil && k.values.n <= settleMaxValues {
			k.stable++
			if k.stable >= settleAfter {
				t.settle(k)
			}
		}
	case addNoRoom:
		s.needDense(k, h)
	}
}

// needDense gives a key's counter HyperLogLog registers if the memory budget
// allows, or marks its count as a lower bound.
func (s *Signals) needDense(k *keyStat, h uint64) {
	if s.st.denseLeft > 0 {
		s.st.denseLeft--
		k.values.dense()
		k.values.add(h)
		return
	}
	if !k.values.full {
		k.values.full = true
		s.st.c.denseRefused++
	}
}
