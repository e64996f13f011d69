package signals

import (
	"encoding/binary"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// observeSpanAttrs feeds a span's attributes to its service's key table:
// in full on one span in sampleStride, else only the hot keys.
func (s *Signals) observeSpanAttrs(svc *service, attrs otlp.Attrs, name []byte) {
	// xorshift64: a random choice, so that no periodic pattern of span
	// types in the input can hide from the sample.
	x := s.st.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	s.st.rng = x
	if svc.fullReads > 0 {
		svc.fullReads--
		s.observeAttrs(&svc.spanKeys, attrs, 1, 1)
		return
	}
	if x%s.stride == 0 {
		s.observeAttrs(&svc.spanKeys, attrs, 1, s.stride)
		return
	}
	t := &svc.spanKeys
	if len(t.hot) > 0 {
		s.observeHotAttrs(t, attrs, nameFingerprint(name))
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
// the loop every span goes through, so it does as little per attribute as
// it can: the layout learned for the span's name says which positions hold
// hot keys, and the others are skipped without hashing their keys. If the
// span does not fit the layout (another attribute count, or a predicted
// position without a hot key), the positions not yet checked are checked
// on a second pass and the layout is learned again. A span whose attribute
// count and hot positions match its name's layout while a skipped position
// holds a hot key would lose that value: a key that comes and goes at one
// position while another comes and goes to keep the count, which
// instrumentation does not do.
func (s *Signals) observeHotAttrs(t *keyTable, attrs otlp.Attrs, name uint64) {
	if t.layouts == nil {
		t.layouts = new([64]layout)
	}
	e := &t.layouts[name&63]
	if e.name == name && e.gen == t.hotGen {
		checked, hot := s.scanHot(t, attrs, ^e.hot)
		if len(attrs) == e.count && hot == checked {
			return
		}
		_, hot2 := s.scanHot(t, attrs, checked)
		e.hot, e.count = hot|hot2, len(attrs)
		return
	}
	_, hot := s.scanHot(t, attrs, 0)
	*e = layout{name: name, gen: t.hotGen, count: len(attrs), hot: hot}
}

// scanHot checks the attributes whose position (below 64) is not in skip
// against the hot keys, counting the values of the hot ones. It returns
// the positions it checked and those that held a hot key. Positions from
// 64 on are always checked and never recorded.
func (s *Signals) scanHot(t *keyTable, attrs otlp.Attrs, skip uint64) (checked, hot uint64) {
	for i := range attrs {
		if i >= 64 {
			s.hotAttr(t, &attrs[i])
			continue
		}
		bit := uint64(1) << i
		if skip&bit != 0 {
			continue
		}
		checked |= bit
		if s.hotAttr(t, &attrs[i]) {
			hot |= bit
		}
	}
	return checked, hot
}

// hotAttr counts the value of an attribute if its key is hot, and reports
// whether it was. Most keys are turned away by the filter.
func (s *Signals) hotAttr(t *keyTable, a *otlp.Attr) bool {
	key := a.Key
	if len(key) == 0 {
		return false
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
	s.addValue(t, k, valueHash(&a.Value))
	return true
}

// observeAttrs reads every attribute of a span or resource into t. weight
// is the number of spans the attributes stand for; settled keys count
// stride times that (sampled spans).
func (s *Signals) observeAttrs(t *keyTable, attrs otlp.Attrs, weight, stride uint64) {
	for pos := range attrs {
		a := &attrs[pos]
		if len(a.Key) == 0 {
			continue
		}
		var k *keyStat
		if pos < maxPredicted {
			if p := t.pred[pos]; p != nil && p.name == string(a.Key) {
				k = p
			} else {
				k = t.lookup(a.Key, s.cfg.Cardinality.MaxKeysPerService)
				t.pred[pos] = k
			}
		} else {
			k = t.lookup(a.Key, s.cfg.Cardinality.MaxKeysPerService)
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
		s.addValue(t, k, valueHash(&a.Value))
	}
}

// valueHash hashes an attribute value for the distinct-value counters:
// values of different kinds (the string "1" and the int 1) count apart.
func valueHash(v *otlp.Value) uint64 {
	kind := uint64(v.Kind) * wyp1
	switch v.Kind {
	case otlp.ValueInt, otlp.ValueDouble, otlp.ValueBool:
		return wymix(v.Bits()^wyp0, kind^wyp2)
	}
	return hashBytes(v.Bytes()) ^ kind
}
