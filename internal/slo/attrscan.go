package slo

import (
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// maxSlots bounds the span attribute keys read in one pass per span; the
// SLOs of a service needing more read the rest one by one.
const maxSlots = 16

// Field numbers of the OTLP messages read here (trace.proto, common.proto).
const (
	spanAttributesField = 9
	kvKeyField          = 1
	kvValueField        = 2
	anyString           = 1
	anyBool             = 2
	anyInt              = 3
	anyDouble           = 4
)

// attrValues holds the values of a service's attribute keys for one span:
// found has bit i set when keys[i] was present with a scalar value.
// Strings are views of the span's bytes; numbers and bools are written
// into num (numLen[i] > 0). It holds no pointer into itself, so it stays
// on Observe's stack.
type attrValues struct {
	// scanned is set once the span's attributes were read: the pass runs
	// only when a filter or group needs it.
	scanned bool
	found   uint32
	str     [maxSlots][]byte
	num     [maxSlots][24]byte
	numLen  [maxSlots]uint8
}

// get returns slot i's value as text, scanning the span's attributes for
// the plan's keys on first use.
func (av *attrValues) get(sp *otlp.Span, plan *svcPlan, i int) ([]byte, bool) {
	if !av.scanned {
		scanAttrs(sp.Raw, plan.attrs, av)
		av.scanned = true
	}
	if av.found&(1<<i) == 0 {
		return nil, false
	}
	if av.numLen[i] > 0 {
		return av.num[i][:av.numLen[i]], true
	}
	return av.str[i], true
}

// uvarint reads a varint, with a fast path for the one-byte tags and
// lengths that make up most of a span.
func uvarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

// skipField skips a field's value of wire type typ; -1 when malformed.
func skipField(typ protowire.Type, b []byte) int {
	switch typ {
	case protowire.VarintType:
		_, n := uvarint(b)
		return n
	case protowire.Fixed64Type:
		if len(b) < 8 {
			return -1
		}
		return 8
	case protowire.Fixed32Type:
		if len(b) < 4 {
			return -1
		}
		return 4
	case protowire.BytesType:
		l, n := uvarint(b)
		if n < 0 || uint64(len(b)-n) < l {
			return -1
		}
		return n + int(l)
	}
	return -1
}

// scanAttrs reads the span attributes named by keys from a span's encoding
// in one pass, stopping once all are found. The bytes were validated by
// otlp.Parse; anything unexpected just ends the scan. Values are read as
// text the way otlp.Value.AppendText writes them (strings as they are,
// numbers in decimal, bools as true/false); arrays, maps and bytes count
// as absent, as no filter value could equal them.
func scanAttrs(raw []byte, keys []string, out *attrValues) {
	out.found = 0
	want := uint32(1)<<len(keys) - 1
	const attrTag = spanAttributesField<<3 | uint64(protowire.BytesType)
	for len(raw) > 0 {
		// Span fields have one-byte tags; read them inline.
		var tag uint64
		var n int
		if c := raw[0]; c < 0x80 {
			tag, n = uint64(c), 1
		} else if tag, n = protowire.ConsumeVarint(raw); n < 0 {
			return
		}
		raw = raw[n:]
		if tag != attrTag {
			switch protowire.Type(tag & 7) {
			case protowire.BytesType:
				var l uint64
				if len(raw) > 0 && raw[0] < 0x80 {
					l, n = uint64(raw[0]), 1
				} else if l, n = protowire.ConsumeVarint(raw); n < 0 {
					return
				}
				if uint64(len(raw)-n) < l {
					return
				}
				n += int(l)
			case protowire.Fixed64Type:
				n = 8
			default:
				n = skipField(protowire.Type(tag&7), raw)
			}
			if n < 0 || n > len(raw) {
				return
			}
			raw = raw[n:]
			continue
		}
		l, n := uvarint(raw)
		if n < 0 || uint64(len(raw)-n) < l {
			return
		}
		kv := raw[n : n+int(l)]
		raw = raw[n+int(l):]
		var key, val []byte
		for len(kv) > 0 {
			t, m := uvarint(kv)
			if m < 0 {
				break
			}
			kv = kv[m:]
			if protowire.Type(t&7) != protowire.BytesType {
				if m = skipField(protowire.Type(t&7), kv); m < 0 {
					break
				}
				kv = kv[m:]
				continue
			}
			bl, m := uvarint(kv)
			if m < 0 || uint64(len(kv)-m) < bl {
				break
			}
			switch protowire.Number(t >> 3) {
			case kvKeyField:
				key = kv[m : m+int(bl)]
			case kvValueField:
				val = kv[m : m+int(bl)]
			}
			kv = kv[m+int(bl):]
		}
		for i, k := range keys {
			if out.found&(1<<i) == 0 && string(key) == k {
				out.setAny(i, val)
				break
			}
		}
		if out.found == want {
			return
		}
	}
}

// setAny stores an AnyValue's scalar in slot i.
func (out *attrValues) setAny(i int, b []byte) {
	for len(b) > 0 {
		t, n := uvarint(b)
		if n < 0 {
			return
		}
		b = b[n:]
		f, typ := protowire.Number(t>>3), protowire.Type(t&7)
		var text []byte
		switch {
		case f == anyString && typ == protowire.BytesType:
			l, m := uvarint(b)
			if m < 0 || uint64(len(b)-m) < l {
				return
			}
			out.str[i], out.numLen[i] = b[m:m+int(l)], 0
			out.found |= 1 << i
			return
		case f == anyBool && typ == protowire.VarintType:
			v, m := uvarint(b)
			if m < 0 {
				return
			}
			text = strconv.AppendBool(out.num[i][:0], v != 0)
		case f == anyInt && typ == protowire.VarintType:
			v, m := uvarint(b)
			if m < 0 {
				return
			}
			text = strconv.AppendInt(out.num[i][:0], int64(v), 10)
		case f == anyDouble && typ == protowire.Fixed64Type:
			v, m := protowire.ConsumeFixed64(b)
			if m < 0 {
				return
			}
			text = strconv.AppendFloat(out.num[i][:0], math.Float64frombits(v), 'g', -1, 64)
		default:
			if n = skipField(typ, b); n < 0 {
				return
			}
			b = b[n:]
			continue
		}
		out.numLen[i] = uint8(len(text))
		out.found |= 1 << i
		return
	}
}
