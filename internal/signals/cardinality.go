package signals

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the attributes in Span and Resource
// (opentelemetry/proto/trace/v1 and resource/v1).
const (
	fieldSpanAttributes     protowire.Number = 9
	fieldResourceAttributes protowire.Number = 1
	fieldKVKey                               = 1
	fieldKVValue                             = 2
)

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

// nextAttr reads the next attribute (field attrTag) of an encoded message:
// it returns the KeyValue's bytes and the rest, skipping other fields; ok is
// false at the end or on anything unexpected (the bytes were validated by
// otlp.Parse, so that ends the scan quietly).
func nextAttr(msg []byte, attrTag byte) (kv, rest []byte, ok bool) {
	for len(msg) > 1 {
		tag := msg[0]
		if tag >= 0x80 {
			// A tag of two bytes or more: a field number above 15.
			num, typ, n := protowire.ConsumeTag(msg)
			if n < 0 {
				return nil, nil, false
			}
			msg = msg[n:]
			if n = protowire.ConsumeFieldValue(num, typ, msg); n < 0 {
				return nil, nil, false
			}
			msg = msg[n:]
			continue
		}
		switch protowire.Type(tag & 7) {
		case protowire.BytesType:
			l, n := uint64(msg[1]), 1
			if l >= 0x80 {
				if l, n = protowire.ConsumeVarint(msg[1:]); n < 0 {
					return nil, nil, false
				}
			}
			msg = msg[1+n:]
			if l > uint64(len(msg)) {
				return nil, nil, false
			}
			if tag == attrTag {
				return msg[:l], msg[l:], true
			}
			msg = msg[l:]
		case protowire.Fixed64Type:
			if len(msg) < 9 {
				return nil, nil, false
			}
			msg = msg[9:]
		case protowire.Fixed32Type:
			if len(msg) < 5 {
				return nil, nil, false
			}
			msg = msg[5:]
		case protowire.VarintType:
			_, n := protowire.ConsumeVarint(msg[1:])
			if n < 0 {
				return nil, nil, false
			}
			msg = msg[1+n:]
		default:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// observeSpanAttrs feeds a span's attributes to its service's key table:
// in full on one span in sampleStride, else only the hot keys.
func (s *Signals) observeSpanAttrs(svc *service, raw, name []byte) {
	// xorshift64: a random choice, so that no periodic pattern of span
	// types in the input can hide from the sample.
	x := s.st.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	s.st.rng = x
	if svc.fullReads > 0 {
		svc.fullReads--
		s.observeAttrs(&svc.spanKeys, raw, fieldSpanAttributes, 1, 1)
		return
	}
	if x%s.stride == 0 {
		s.observeAttrs(&svc.spanKeys, raw, fieldSpanAttributes, 1, s.stride)
		return
	}
	t := &svc.spanKeys
	if len(t.hot) > 0 {
		s.observeHotAttrs(t, raw, nameFingerprint(name))
	}
}

// nameFingerprint is a cheap hash of a span name for the layout cache;
// collisions only cost a rescan.
func nameFingerprint(b []byte) uint64 {
	n := len(b)
	var x uint64
	if n >= 8 {
		x = binary.LittleEndian.Uint64(b) ^ binary.LittleEndian.Uint64(b[n-8:])*wyp1
	} else {
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
	}
	return wymix(x^wyp0, uint64(n)^wyp2) | 1
}

// observeHotAttrs feeds the hot keys of t from a span's attributes. It is
// the loop every span goes through, and walking protobuf is a chain of
// dependent loads (each length says where the next field starts), so it
// does as little per attribute as it can. The layout learned for the span's
// name says which positions hold hot keys: the others are skipped after
// reading their length. If the span does not fit the layout (another
// attribute count, or a predicted position without a hot key), the
// positions not yet checked are checked on a second pass and the layout is
// learned again. A span whose attribute count and hot positions match its
// name's layout while a skipped position holds a hot key would lose that
// value: a key that comes and goes at one position while another comes and
// goes to keep the count, which instrumentation does not do.
func (s *Signals) observeHotAttrs(t *keyTable, b []byte, name uint64) {
	if t.layouts == nil {
		t.layouts = new([64]layout)
	}
	e := &t.layouts[name&63]
	if e.name == name && e.gen == t.hotGen {
		checked, hot, count := s.scanHot(t, b, ^e.hot)
		if count == e.count && hot == checked {
			return
		}
		_, hot2, _ := s.scanHot(t, b, checked)
		e.hot, e.count = hot|hot2, count
		return
	}
	_, hot, count := s.scanHot(t, b, 0)
	*e = layout{name: name, gen: t.hotGen, count: count, hot: hot}
}

// scanHot walks the attributes of an encoded span and checks those whose
// position (below 64) is not in skip against the hot keys, counting the
// values of the hot ones. It returns the positions it checked and those
// that held a hot key, and the number of attributes. It stops at the end of
// the run of attributes: encoders write a repeated field's entries
// together (attributes after another field would be seen on sampled spans
// only).
func (s *Signals) scanHot(t *keyTable, b []byte, skip uint64) (checked, hot uint64, count int) {
	const attrTag = byte(fieldSpanAttributes)<<3 | byte(protowire.BytesType)
	n := len(b)
	i := 0
	// Fields before the attributes (pdata writes the status first, SDKs the
	// IDs, name, kind and times).
	for i+1 < n && b[i] != attrTag {
		if b[i] < 0x80 && b[i]&7 == byte(protowire.BytesType) && b[i+1] < 0x80 {
			i += 2 + int(b[i+1])
			continue
		}
		kv, rest, ok := nextAttr(b[i:], attrTag)
		if !ok {
			return
		}
		// Back to the start of the attribute nextAttr found.
		i = n - len(rest) - len(kv) - 2
		if i < 0 || b[i] != attrTag || int(b[i+1]) != len(kv) {
			// Its length took more than a byte: rare, take it all slowly.
			return s.scanHotSlow(t, b, skip)
		}
	}
	// The run of attributes. Indexes and a moving position bit rather than
	// reslicing: this loop runs for every attribute of every span.
	bit := uint64(1)
	for {
		// Skip what the layout says holds no hot key; no calls in this
		// loop, so its variables stay in registers.
		for skip&bit != 0 && i+1 < len(b) {
			tag, l := b[i], b[i+1]
			if tag != attrTag || l >= 0x80 {
				break
			}
			i += 2 + int(l)
			count++
			bit <<= 1
		}
		if i+1 >= n || b[i] != attrTag {
			return checked, hot, count
		}
		l := int(b[i+1])
		if l >= 0x80 {
			c2, h2, n2 := s.scanHotSlow(t, b[i:], skip>>count)
			return checked | c2<<count, hot | h2<<count, count + n2
		}
		start, end := i+2, i+2+l
		i = end
		count++
		checked |= bit
		if end <= n && s.hotAttr(t, b[start:end]) {
			hot |= bit
		}
		bit <<= 1
	}
}

// scanHotSlow is scanHot for any encoding, one attribute at a time.
func (s *Signals) scanHotSlow(t *keyTable, b []byte, skip uint64) (checked, hot uint64, count int) {
	const attrTag = byte(fieldSpanAttributes)<<3 | byte(protowire.BytesType)
	bit := uint64(1)
	for inRun := false; len(b) > 1; {
		if inRun && b[0] != attrTag {
			break
		}
		kv, rest, ok := nextAttr(b, attrTag)
		if !ok {
			break
		}
		b, inRun = rest, true
		count++
		if skip&bit == 0 {
			checked |= bit
			if s.hotAttr(t, kv) {
				hot |= bit
			}
		}
		bit <<= 1
	}
	return checked, hot, count
}

// hotAttr counts the value of an encoded KeyValue if its key is hot, and
// reports whether it was. The two usual layouts with one-byte lengths are
// read inline and most keys are turned away by the filter; anything else
// takes splitKV.
func (s *Signals) hotAttr(t *keyTable, kv []byte) bool {
	const (
		keyTag = fieldKVKey<<3 | byte(protowire.BytesType)
		valTag = fieldKVValue<<3 | byte(protowire.BytesType)
	)
	var key, val []byte
	if n := len(kv); n >= 4 {
		l1 := int(kv[1])
		switch kv[0] {
		case valTag: // pdata: value, then key
			if o := 2 + l1; o+2 <= n && kv[o] == keyTag && o+2+int(kv[o+1]) == n {
				val, key = kv[2:o], kv[o+2:]
			}
		case keyTag: // SDKs: key, then value
			if o := 2 + l1; o+2 <= n && kv[o] == valTag && o+2+int(kv[o+1]) == n {
				key, val = kv[2:o], kv[o+2:]
			}
		}
	}
	if len(key) == 0 {
		var ok bool
		if key, val, ok = splitKV(kv); !ok {
			return false
		}
	}
	bit := keyBit(key)
	if t.hotBits[bit>>6]&(1<<(bit&63)) == 0 {
		return false
	}
	var k *keyStat
	if j := t.hotIdx[bit]; j >= 0 {
		if k = t.hot[j]; k.name != string(key) {
			return false
		}
	} else if k = t.findHot(key); k == nil {
		return false
	}
	k.spans++
	s.addValue(t, k, val)
	return true
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

// observeAttrs reads every attribute (field number field) of an encoded
// Span or Resource into t. weight is the number of spans the attributes
// stand for; settled keys count stride times that (sampled spans).
func (s *Signals) observeAttrs(t *keyTable, msg []byte, field protowire.Number, weight, stride uint64) {
	attrTag := byte(field)<<3 | byte(protowire.BytesType)
	for pos := 0; ; pos++ {
		kv, rest, ok := nextAttr(msg, attrTag)
		if !ok {
			return
		}
		msg = rest
		key, val, ok := splitKV(kv)
		if !ok {
			continue
		}
		var k *keyStat
		if pos < maxPredicted {
			if p := t.pred[pos]; p != nil && p.name == string(key) {
				k = p
			} else {
				k = t.lookup(key, s.cfg.Cardinality.MaxKeysPerService)
				t.pred[pos] = k
			}
		} else {
			k = t.lookup(key, s.cfg.Cardinality.MaxKeysPerService)
		}
		if k == nil {
			s.st.c.untrackedKeys += weight * stride
			continue
		}
		if k.settled {
			k.spans += weight * stride
		} else {
			k.spans += weight
		}
		s.addValue(t, k, val)
	}
}

// addValue counts one value of k and settles or unsettles it.
func (s *Signals) addValue(t *keyTable, k *keyStat, val []byte) {
	h := hashBytes(val)
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

// splitKV returns the key and the encoded AnyValue of a KeyValue message.
// SDKs write the key first, pdata (the Collector) the value first; both
// take the fast path when the lengths fit in one byte.
func splitKV(b []byte) (key, val []byte, ok bool) {
	const keyTag, valTag = fieldKVKey<<3 | byte(protowire.BytesType), fieldKVValue<<3 | byte(protowire.BytesType)
	if len(b) >= 4 && b[1] < 0x80 {
		l1 := int(b[1])
		if 2+l1+2 <= len(b) && b[2+l1+1] < 0x80 {
			l2 := int(b[2+l1+1])
			if 2+l1+2+l2 == len(b) {
				first, second := b[2:2+l1], b[2+l1+2:]
				switch {
				case b[0] == keyTag && b[2+l1] == valTag:
					return first, second, true
				case b[0] == valTag && b[2+l1] == keyTag:
					return second, first, true
				}
			}
		}
	}
	return splitKVSlow(b)
}

// splitKVSlow is splitKV for any field order and lengths.
func splitKVSlow(b []byte) (key, val []byte, ok bool) {
	for len(b) > 0 {
		tag := b[0]
		if tag != fieldKVKey<<3|byte(protowire.BytesType) && tag != fieldKVValue<<3|byte(protowire.BytesType) {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return nil, nil, false
			}
			n2 := protowire.ConsumeFieldValue(num, typ, b[n:])
			if n2 < 0 {
				return nil, nil, false
			}
			b = b[n+n2:]
			continue
		}
		l, n := protowire.ConsumeVarint(b[1:])
		if n < 0 {
			return nil, nil, false
		}
		b = b[1+n:]
		if l > uint64(len(b)) {
			return nil, nil, false
		}
		if tag>>3 == fieldKVKey {
			key = b[:l]
		} else {
			val = b[:l]
		}
		b = b[l:]
	}
	return key, val, key != nil
}

// rotateCardinality starts a new cardinality window when the current one is
// over: every key's figures move to its previous-window stats, sketches are
// freed, and keys, operations, services and metric series not seen during
// the window are forgotten, so memory follows what is live.
func (s *Signals) rotateCardinality(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.st
	if st.cardSince.IsZero() || now.Sub(st.cardSince) < s.cfg.Cardinality.Window.Std() {
		return
	}
	since := st.cardSince.UnixNano()
	rotate := func(t *keyTable) {
		kept := t.keys[:0]
		for _, k := range t.keys {
			if k.values.regs != nil {
				st.denseLeft++
			}
			if k.spans == 0 {
				continue
			}
			d, atLeast := k.values.estimate()
			k.prev = windowStat{distinct: d, atLeast: atLeast, spans: k.spans}
			k.spans = 0
			k.values = distinctCounter{}
			k.stable, k.settled = 0, false
			kept = append(kept, k)
		}
		clear(t.keys[len(kept):])
		t.keys = kept
		t.untracked = distinctCounter{}
		t.rebuild(16)
		t.hot = append(t.hot[:0], t.keys...)
		t.setHot()
	}
	idle := func(svc *service) bool {
		if svc.spans > 0 || svc.lastSeen >= since {
			return false
		}
		for _, op := range svc.ops {
			if len(op.aggs) > 0 {
				return false
			}
		}
		return svc.other == nil || len(svc.other.aggs) == 0
	}
	for name, svc := range st.services {
		if idle(svc) {
			delete(st.services, name)
			continue
		}
		s.rotateService(svc, since, rotate)
	}
	if st.other != nil {
		if idle(st.other) {
			st.other = nil
		} else {
			s.rotateService(st.other, since, rotate)
		}
	}
	st.series.purge(since)
	st.prevSince, st.cardSince = st.cardSince, now
}

func (s *Signals) rotateService(svc *service, since int64, rotate func(*keyTable)) {
	rotate(&svc.spanKeys)
	rotate(&svc.resKeys)
	svc.prevSpans, svc.spans = svc.spans, 0
	svc.fullReads = fullReadsPerWindow
	clear(svc.opCache)
	svc.opFast = [len(svc.opFast)]opFastEntry{}
	for name, op := range svc.ops {
		if op.lastSeen < since && len(op.aggs) == 0 {
			delete(svc.ops, name)
		}
	}
	if svc.other != nil && svc.other.lastSeen < since && len(svc.other.aggs) == 0 {
		svc.other = nil
	}
}

// CardinalityReport names, per service, the attribute keys with the most
// distinct values and what they would cost as metric labels.
type CardinalityReport struct {
	// WindowStart is when the current window began; counts are over it.
	WindowStart time.Time `json:"window_start"`
	// PreviousWindowStart is when the previous window began, if any.
	PreviousWindowStart *time.Time `json:"previous_window_start,omitempty"`
	FlagThreshold       int        `json:"flag_threshold"`
	// SeriesLimit and Series are the label-set limit and count of the RED
	// metrics; Overflowing is set once new label sets were folded.
	SeriesLimit int                  `json:"series_limit"`
	Series      int                  `json:"series"`
	Overflowing bool                 `json:"overflowing"`
	Services    []ServiceCardinality `json:"services"`
}

// ServiceCardinality is the report of one service.
type ServiceCardinality struct {
	Service string `json:"service"`
	// Spans counts the service's spans in the current window.
	Spans uint64 `json:"spans"`
	// Series counts the service's label sets in the RED metrics.
	Series int `json:"series"`
	// KeysTracked counts the keys tracked (span and resource); Flagged those
	// over the threshold; UntrackedKeys is a lower bound of the keys beyond
	// max_keys_per_service.
	KeysTracked   int              `json:"keys_tracked"`
	Flagged       int              `json:"flagged"`
	UntrackedKeys uint64           `json:"untracked_keys"`
	Keys          []KeyCardinality `json:"keys"`
}

// KeyCardinality is the report of one attribute key of a service.
type KeyCardinality struct {
	Key string `json:"key"`
	// Source is "span" or "resource".
	Source string `json:"source"`
	// Distinct is the estimated number of distinct values (HyperLogLog,
	// ~0.8% standard error) over the current window, or the previous one
	// when that was larger.
	Distinct uint64 `json:"distinct"`
	// DistinctIsLowerBound is set when the sketch memory budget ran out
	// before this key got a sketch.
	DistinctIsLowerBound   bool   `json:"distinct_is_lower_bound,omitempty"`
	CurrentWindowDistinct  uint64 `json:"current_window_distinct"`
	PreviousWindowDistinct uint64 `json:"previous_window_distinct"`
	// Share is the fraction of the service's spans that carry the key.
	Share float64 `json:"share"`
	// SeriesAsLabel estimates the series of one RED metric of the service
	// if the key became a label: distinct values times the service's
	// current series, capped by the spans that carry the key.
	SeriesAsLabel uint64 `json:"series_as_label"`
	// AddedSeries is SeriesAsLabel minus the service's current series.
	AddedSeries uint64 `json:"added_series"`
	// Flagged is set when Distinct reaches the flag threshold.
	Flagged    bool   `json:"flagged"`
	Suggestion string `json:"suggestion,omitempty"`
}

// Cardinality returns the report for one service (all when service is
// empty), with the top keys by distinct values of each (all when top <= 0).
// Services come worst first.
func (s *Signals) Cardinality(only string, top int) CardinalityReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.st
	rep := CardinalityReport{
		WindowStart:   st.cardSince.UTC(),
		FlagThreshold: s.cfg.Cardinality.FlagThreshold,
		SeriesLimit:   s.cfg.SeriesLimit,
		Series:        st.series.len(),
		Overflowing:   st.series.overflow != nil,
		Services:      []ServiceCardinality{},
	}
	if !st.prevSince.IsZero() {
		p := st.prevSince.UTC()
		rep.PreviousWindowStart = &p
	}
	perService := st.series.perService()
	s.forEachService(func(svc *service) {
		if only != "" && svc.name != only {
			return
		}
		rep.Services = append(rep.Services, s.serviceCardinality(svc, perService[svc.name], top))
	})
	worst := func(sc ServiceCardinality) uint64 {
		if len(sc.Keys) == 0 {
			return 0
		}
		return sc.Keys[0].Distinct
	}
	slices.SortFunc(rep.Services, func(a, b ServiceCardinality) int {
		if c := cmp.Compare(worst(b), worst(a)); c != 0 {
			return c
		}
		return strings.Compare(a.Service, b.Service)
	})
	return rep
}

func (s *Signals) serviceCardinality(svc *service, series int, top int) ServiceCardinality {
	sc := ServiceCardinality{
		Service:     svc.name,
		Spans:       svc.spans,
		Series:      series,
		KeysTracked: len(svc.spanKeys.keys) + len(svc.resKeys.keys),
		Keys:        []KeyCardinality{},
	}
	u1, _ := svc.spanKeys.untracked.estimate()
	u2, _ := svc.resKeys.untracked.estimate()
	sc.UntrackedKeys = u1 + u2
	spans := max(svc.spans, 1)
	add := func(t *keyTable, source string) {
		for _, k := range t.keys {
			cur, atLeast := k.values.estimate()
			kc := KeyCardinality{
				Key:                    k.name,
				Source:                 source,
				Distinct:               cur,
				DistinctIsLowerBound:   atLeast,
				CurrentWindowDistinct:  cur,
				PreviousWindowDistinct: k.prev.distinct,
				Share:                  min(float64(k.spans)/float64(spans), 1),
			}
			carriers := k.spans
			if k.prev.distinct > cur {
				kc.Distinct, kc.DistinctIsLowerBound = k.prev.distinct, k.prev.atLeast
				carriers = max(carriers, k.prev.spans)
			}
			if svc.spans == 0 && svc.prevSpans > 0 {
				kc.Share = min(float64(k.prev.spans)/float64(svc.prevSpans), 1)
			}
			base := uint64(max(series, 1))
			kc.SeriesAsLabel = min(satMul(kc.Distinct, base), max(carriers, kc.Distinct))
			if kc.SeriesAsLabel > uint64(series) {
				kc.AddedSeries = kc.SeriesAsLabel - uint64(series)
			}
			if kc.Distinct >= uint64(s.cfg.Cardinality.FlagThreshold) {
				kc.Flagged = true
				kc.Suggestion = suggestion(k.name, source)
				sc.Flagged++
			}
			sc.Keys = append(sc.Keys, kc)
		}
	}
	add(&svc.spanKeys, "span")
	add(&svc.resKeys, "resource")
	slices.SortFunc(sc.Keys, func(a, b KeyCardinality) int {
		if c := cmp.Compare(b.Distinct, a.Distinct); c != 0 {
			return c
		}
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	if top > 0 && len(sc.Keys) > top {
		sc.Keys = sc.Keys[:top]
	}
	return sc
}

func satMul(a, b uint64) uint64 {
	if a != 0 && b > ^uint64(0)/a {
		return ^uint64(0)
	}
	return a * b
}

// suggestion says what to do instead of using a high-cardinality key as a
// label, from the key's name.
func suggestion(key, source string) string {
	k := strings.ToLower(key)
	has := func(parts ...string) bool {
		for _, p := range parts {
			if strings.Contains(k, p) {
				return true
			}
		}
		return false
	}
	switch {
	case has("url", "uri", "http.target", "path"):
		return "a raw URL or path: label by http.route (the templated route, as the operation label does) instead"
	case has("statement", "query", "db.query"):
		return "a query text: label by db.operation.name and db.collection.name, or normalise the statement"
	case source == "resource" && has("instance", "pod", "container", "host.id", "process.pid"):
		return "an instance identifier that changes with every deploy: aggregate by service, version or deployment instead"
	case has("session", "user", "token", "account", "customer", "email") ||
		strings.HasSuffix(k, ".id") || strings.HasSuffix(k, "_id") || strings.HasSuffix(k, "id"):
		return "an identifier: keep it on spans to search traces and use exemplars, never as a metric label"
	case has("address", ".ip", "peer", "host", "port"):
		return "a network address: label by the service or group it belongs to, not per address"
	case has("time", "date"):
		return "a timestamp: never a metric label"
	}
	return "too many values for a label: bucket them into a small set, or keep the key on spans only"
}
