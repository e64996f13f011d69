package otlp

import (
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// parseKeyValue validates a KeyValue and returns its key and value.
func parseKeyValue(b []byte, depth int) (key []byte, val Value, err error) {
	err = walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fieldKVKey:
			if typ != protowire.BytesType || !utf8.Valid(v) {
				return fmt.Errorf("key: not a UTF-8 string")
			}
			key = v
		case fieldKVValue:
			if typ != protowire.BytesType {
				return fmt.Errorf("value: wrong wire type")
			}
			var err error
			if val, err = parseAnyValue(v, depth); err != nil {
				return fmt.Errorf("value of %q: %v", key, err)
			}
		}
		return checkVarint(typ, num, 3) // key_strindex
	})
	return key, val, err
}

func parseAnyValue(b []byte, depth int) (Value, error) {
	if depth > maxValueDepth {
		return Value{}, fmt.Errorf("values nested deeper than %d", maxValueDepth)
	}
	var val Value
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		want := protowire.BytesType
		switch num {
		case fieldAnyBool, fieldAnyInt:
			want = protowire.VarintType
		case fieldAnyDouble:
			want = protowire.Fixed64Type
		case fieldAnyString, fieldAnyArray, fieldAnyKVList, fieldAnyBytes:
		default:
			return checkVarint(typ, num, 8) // string_value_strindex
		}
		if typ != want {
			return fmt.Errorf("field %d: wrong wire type %d", num, typ)
		}
		switch num {
		case fieldAnyString:
			if !utf8.Valid(v) {
				return fmt.Errorf("string_value: invalid UTF-8")
			}
			val = Value{Kind: ValueString, raw: v}
		case fieldAnyBool:
			val = Value{Kind: ValueBool, num: x}
			if x != 0 {
				val.num = 1
			}
		case fieldAnyInt:
			val = Value{Kind: ValueInt, num: x}
		case fieldAnyDouble:
			val = Value{Kind: ValueDouble, num: x}
		case fieldAnyBytes:
			val = Value{Kind: ValueBytes, raw: v}
		case fieldAnyArray:
			if err := walkList(v, func(item []byte) error {
				_, err := parseAnyValue(item, depth+1)
				return err
			}); err != nil {
				return fmt.Errorf("array_value: %v", err)
			}
			val = Value{Kind: ValueArray, raw: v}
		case fieldAnyKVList:
			if err := walkList(v, func(item []byte) error {
				_, _, err := parseKeyValue(item, depth+1)
				return err
			}); err != nil {
				return fmt.Errorf("kvlist_value: %v", err)
			}
			val = Value{Kind: ValueMap, raw: v}
		}
		return nil
	})
	return val, err
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
	_ = walkFields(msg, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != attrField || typ != protowire.BytesType {
			return nil
		}
		key, val := splitKeyValue(v)
		if !fn(key, val) {
			return errStop
		}
		return nil
	})
}

// splitKeyValue reads an already validated KeyValue without re-validating
// nested values.
func splitKeyValue(b []byte) (key []byte, val Value) {
	_ = walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fieldKVKey:
			key = v
		case fieldKVValue:
			val = shallowAnyValue(v)
		}
		return nil
	})
	return key, val
}

func shallowAnyValue(b []byte) Value {
	var val Value
	_ = walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case fieldAnyString:
			val = Value{Kind: ValueString, raw: v}
		case fieldAnyBool:
			val = Value{Kind: ValueBool, num: min(x, 1)}
		case fieldAnyInt:
			val = Value{Kind: ValueInt, num: x}
		case fieldAnyDouble:
			val = Value{Kind: ValueDouble, num: x}
		case fieldAnyArray:
			val = Value{Kind: ValueArray, raw: v}
		case fieldAnyKVList:
			val = Value{Kind: ValueMap, raw: v}
		case fieldAnyBytes:
			val = Value{Kind: ValueBytes, raw: v}
		}
		return nil
	})
	return val
}

func float64frombits(x uint64) float64 { return math.Float64frombits(x) }
