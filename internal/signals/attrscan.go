package signals

import (
	"encoding/binary"

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
