package otlp

import "google.golang.org/protobuf/encoding/protowire"

// Event is a view of one span event (Span.events).
type Event struct {
	// TimeUnixNano is time_unix_nano.
	TimeUnixNano uint64
	// Name is the event name (a slice of the span's bytes).
	Name []byte

	raw []byte // the Event message's encoding
}

// Attr returns the event attribute with the given key.
func (e *Event) Attr(key string) (Value, bool) { return findAttr(e.raw, fieldEventAttributes, key) }

// Attrs calls fn for each event attribute until fn returns false.
func (e *Event) Attrs(fn func(key []byte, v Value) bool) {
	rangeAttrs(e.raw, fieldEventAttributes, fn)
}

// Events calls fn for each event of the span, in wire order, until fn
// returns false. The span was validated by Parse; events are read from
// Raw on each call, without allocating.
func (s *Span) Events(fn func(e *Event) bool) {
	for b := s.Raw; len(b) > 0; {
		num, typ, v, _, n := readField(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if num != fieldSpanEvents || typ != protowire.BytesType {
			continue
		}
		e := Event{raw: v}
		for m := v; len(m) > 0; {
			num, typ, f, x, n := readField(m)
			if n < 0 {
				break
			}
			m = m[n:]
			switch {
			case num == fieldEventTime && typ == protowire.Fixed64Type:
				e.TimeUnixNano = x
			case num == fieldEventName && typ == protowire.BytesType:
				e.Name = f
			}
		}
		if !fn(&e) {
			return
		}
	}
}

// Elems calls fn for each element of an array value, in order, until fn
// returns false; it does nothing for other kinds.
func (v Value) Elems(fn func(v Value) bool) {
	if v.Kind != ValueArray {
		return
	}
	for b := v.raw; len(b) > 0; {
		num, typ, f, _, n := readField(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if num != fieldListValues || typ != protowire.BytesType {
			continue
		}
		if !fn(shallowAnyValue(f)) {
			return
		}
	}
}

// Entries calls fn for each key and value of a map value (a KeyValueList),
// in wire order, until fn returns false; it does nothing for other kinds.
func (v Value) Entries(fn func(key []byte, v Value) bool) {
	if v.Kind != ValueMap {
		return
	}
	rangeAttrs(v.raw, fieldListValues, fn)
}
