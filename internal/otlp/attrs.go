package otlp

import (
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Attr is one attribute (a KeyValue) of a span or resource. Key and the
// value's strings view the request's bytes.
type Attr struct {
	Key   []byte
	Value Value
}

// Attrs is a list of attributes in wire order, as Parse split them:
// iterating it reads no protobuf.
type Attrs []Attr

// Get returns the value of the first attribute with key.
func (as Attrs) Get(key string) (Value, bool) {
	for i := range as {
		if string(as[i].Key) == key {
			return as[i].Value, true
		}
	}
	return Value{}, false
}

// parseKeyValue validates a KeyValue and returns its key and value.
func parseKeyValue(b []byte, depth int) (key []byte, val Value, err error) {
	// Encoders write a key and a value with one-byte lengths for almost
	// every attribute: SDKs the key first, pdata the value first.
	const keyTag, valTag = fieldKVKey<<3 | byte(protowire.BytesType), fieldKVValue<<3 | byte(protowire.BytesType)
	if n := len(b); n >= 4 && b[1] < 0x80 {
		o := 2 + int(b[1])
		if o+2 <= n && b[o+1] < 0x80 && o+2+int(b[o+1]) == n {
			first, second := b[2:o], b[o+2:]
			switch {
			case b[0] == keyTag && b[o] == valTag && utf8.Valid(first):
				if val, err = parseAnyValue(second, depth); err == nil {
					return first, val, nil
				}
			case b[0] == valTag && b[o] == keyTag && utf8.Valid(second):
				if val, err = parseAnyValue(first, depth); err == nil {
					return second, val, nil
				}
			}
			// Anything else takes the general path, which says what is wrong.
		}
	}
	for len(b) > 0 {
		num, typ, v, _, n := readField(b)
		if n < 0 {
			return nil, Value{}, fieldError(num, n)
		}
		b = b[n:]
		switch num {
		case fieldKVKey:
			if typ != protowire.BytesType || !utf8.Valid(v) {
				return nil, Value{}, fmt.Errorf("key: not a UTF-8 string")
			}
			key = v
		case fieldKVValue:
			if typ != protowire.BytesType {
				return nil, Value{}, fmt.Errorf("value: wrong wire type")
			}
			if val, err = parseAnyValue(v, depth); err != nil {
				return nil, Value{}, fmt.Errorf("value of %q: %v", key, err)
			}
		case 3: // key_strindex
			if typ != protowire.VarintType {
				return nil, Value{}, fmt.Errorf("field %d: wrong wire type %d, want varint", num, typ)
			}
		}
	}
	return key, val, nil
}

// parseAnyValue validates an AnyValue. Like any protobuf decoder, it keeps
// the last member of the oneof present on the wire.
func parseAnyValue(b []byte, depth int) (Value, error) {
	if depth > maxValueDepth {
		return Value{}, fmt.Errorf("values nested deeper than %d", maxValueDepth)
	}
	// A short string, the usual attribute value.
	const strTag = fieldAnyString<<3 | byte(protowire.BytesType)
	if len(b) >= 2 && b[0] == strTag && b[1] < 0x80 && 2+int(b[1]) == len(b) && utf8.Valid(b[2:]) {
		return Value{Kind: ValueString, raw: b[2:]}, nil
	}
	var val Value
	for len(b) > 0 {
		num, typ, v, x, n := readField(b)
		if n < 0 {
			return Value{}, fieldError(num, n)
		}
		b = b[n:]
		want := protowire.BytesType
		switch num {
		case fieldAnyBool, fieldAnyInt:
			want = protowire.VarintType
		case fieldAnyDouble:
			want = protowire.Fixed64Type
		case fieldAnyString, fieldAnyArray, fieldAnyKVList, fieldAnyBytes:
		case 8: // string_value_strindex
			want = protowire.VarintType
		default:
			continue
		}
		if typ != want {
			return Value{}, fmt.Errorf("field %d: wrong wire type %d", num, typ)
		}
		switch num {
		case fieldAnyString:
			if !utf8.Valid(v) {
				return Value{}, fmt.Errorf("string_value: invalid UTF-8")
			}
		case fieldAnyArray:
			if err := walkList(v, func(item []byte) error {
				_, err := parseAnyValue(item, depth+1)
				return err
			}); err != nil {
				return Value{}, fmt.Errorf("array_value: %v", err)
			}
		case fieldAnyKVList:
			if err := walkList(v, func(item []byte) error {
				_, _, err := parseKeyValue(item, depth+1)
				return err
			}); err != nil {
				return Value{}, fmt.Errorf("kvlist_value: %v", err)
			}
		}
		if f, ok := anyField(num, v, x); ok {
			val = f
		}
	}
	return val, nil
}

// findAttr scans a message for the KeyValue field attrField with key.
// The message was validated by Parse, so errors cannot occur here.
func findAttr(msg []byte, attrField protowire.Number, key string) (Value, bool) {
	var out Value
	found := false
	rangeAttrs(msg, attrField, func(k []byte, v Value) bool {
		if string(k) == key {
			out, found = v, true
			return false
		}
		return true
	})
	return out, found
}

func rangeAttrs(msg []byte, attrField protowire.Number, fn func(key []byte, v Value) bool) {
	for len(msg) > 0 {
		num, typ, v, _, n := readField(msg)
		if n < 0 {
			return
		}
		msg = msg[n:]
		if num != attrField || typ != protowire.BytesType {
			continue
		}
		key, val := splitKeyValue(v)
		if !fn(key, val) {
			return
		}
	}
}

// splitKeyValue reads an already validated KeyValue without re-validating
// nested values.
func splitKeyValue(b []byte) (key []byte, val Value) {
	for len(b) > 0 {
		num, _, v, _, n := readField(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch num {
		case fieldKVKey:
			key = v
		case fieldKVValue:
			val = shallowAnyValue(v)
		}
	}
	return key, val
}

func shallowAnyValue(b []byte) Value {
	var val Value
	for len(b) > 0 {
		num, _, v, x, n := readField(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if f, ok := anyField(num, v, x); ok {
			val = f
		}
	}
	return val
}

// anyField returns the Value an AnyValue field holds (the last one set
// wins, as in protobuf); ok is false for fields that are not a value.
func anyField(num protowire.Number, v []byte, x uint64) (Value, bool) {
	switch num {
	case fieldAnyString:
		return Value{Kind: ValueString, raw: v}, true
	case fieldAnyBool:
		return Value{Kind: ValueBool, num: min(x, 1)}, true
	case fieldAnyInt:
		return Value{Kind: ValueInt, num: x}, true
	case fieldAnyDouble:
		return Value{Kind: ValueDouble, num: x}, true
	case fieldAnyArray:
		return Value{Kind: ValueArray, raw: v}, true
	case fieldAnyKVList:
		return Value{Kind: ValueMap, raw: v}, true
	case fieldAnyBytes:
		return Value{Kind: ValueBytes, raw: v}, true
	}
	return Value{}, false
}

func float64frombits(x uint64) float64 { return math.Float64frombits(x) }
