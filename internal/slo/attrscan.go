package slo

import "github.com/tailgate-sre/tailgate/internal/otlp"

// maxSlots bounds the span attribute keys read in one pass per span; the
// SLOs of a service needing more read the rest one by one.
const maxSlots = 16

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
	num     [maxSlots][24]byte // the longest float64 in 'g' form is 24 bytes
	numLen  [maxSlots]uint8
}

// get returns slot i's value as text, reading the span's attributes for
// the plan's keys on first use.
func (av *attrValues) get(req *otlp.Request, sp *otlp.Span, plan *svcPlan, i int) ([]byte, bool) {
	if !av.scanned {
		av.scan(req.SpanAttrs(sp), plan.attrs)
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

// scan reads the attributes named by keys in one pass over the span's
// attributes (split by otlp.Parse), stopping once all are found. Values
// are read as text the way otlp.Value.AppendText writes them (strings as
// they are, numbers in decimal, bools as true/false); arrays, maps and
// bytes count as absent, as no filter value could equal them.
func (av *attrValues) scan(attrs otlp.Attrs, keys []string) {
	av.found = 0
	want := uint32(1)<<len(keys) - 1
	for a := range attrs {
		key := attrs[a].Key
		for i, k := range keys {
			if av.found&(1<<i) == 0 && string(key) == k {
				av.set(i, attrs[a].Value)
				break
			}
		}
		if av.found == want {
			return
		}
	}
}

// set stores a scalar value in slot i.
func (av *attrValues) set(i int, v otlp.Value) {
	switch v.Kind {
	case otlp.ValueString:
		av.str[i], av.numLen[i] = v.Str(), 0
	case otlp.ValueBool, otlp.ValueInt, otlp.ValueDouble:
		av.numLen[i] = uint8(len(v.AppendText(av.num[i][:0])))
	default:
		return
	}
	av.found |= 1 << i
}
