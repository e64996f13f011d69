package otlp

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Why readField failed (its n when negative).
const (
	wireBadTag    = -1
	wireTruncated = -2
	wireGroup     = -3
)

// readField reads the field at the start of b: its number and wire type,
// the bytes of a length-delimited field (v) or the value of a varint or
// fixed field (x), and its total length n. n is negative when b does not
// start with a field protobuf decoders accept (wireBadTag, wireTruncated)
// or with a group, which OTLP never uses (wireGroup).
//
// It is protowire.ConsumeTag and ConsumeFieldValue without the indirect
// calls of a callback walk, with the one-byte tags and lengths that make
// up most of OTLP read inline.
func readField(b []byte) (num protowire.Number, typ protowire.Type, v []byte, x uint64, n int) {
	var tag uint64
	if len(b) > 0 && b[0] < 0x80 {
		tag, n = uint64(b[0]), 1
	} else if tag, n = protowire.ConsumeVarint(b); n < 0 {
		return 0, 0, nil, 0, wireBadTag
	}
	// As protowire.ConsumeTag: field number 0 and numbers beyond int32 are
	// invalid.
	if tag>>3 == 0 || tag>>3 > math.MaxInt32 {
		return 0, 0, nil, 0, wireBadTag
	}
	num, typ = protowire.Number(tag>>3), protowire.Type(tag&7)
	b = b[n:]
	switch typ {
	case protowire.BytesType:
		var l uint64
		var m int
		if len(b) > 0 && b[0] < 0x80 {
			l, m = uint64(b[0]), 1
		} else if l, m = protowire.ConsumeVarint(b); m < 0 {
			return num, typ, nil, 0, wireTruncated
		}
		if l > uint64(len(b)-m) {
			return num, typ, nil, 0, wireTruncated
		}
		return num, typ, b[m : m+int(l)], 0, n + m + int(l) // cap kept: subOffset relies on it
	case protowire.VarintType:
		if len(b) > 0 && b[0] < 0x80 {
			return num, typ, nil, uint64(b[0]), n + 1
		}
		x, m := protowire.ConsumeVarint(b)
		if m < 0 {
			return num, typ, nil, 0, wireTruncated
		}
		return num, typ, nil, x, n + m
	case protowire.Fixed64Type:
		if len(b) < 8 {
			return num, typ, nil, 0, wireTruncated
		}
		return num, typ, nil, binary.LittleEndian.Uint64(b), n + 8
	case protowire.Fixed32Type:
		if len(b) < 4 {
			return num, typ, nil, 0, wireTruncated
		}
		return num, typ, nil, uint64(binary.LittleEndian.Uint32(b)), n + 4
	}
	return num, typ, nil, 0, wireGroup
}

// fieldError describes readField's failure code n for field num.
func fieldError(num protowire.Number, n int) error {
	switch n {
	case wireBadTag:
		return fmt.Errorf("bad field tag")
	case wireGroup:
		return fmt.Errorf("field %d is a group, which OTLP never uses", num)
	}
	return fmt.Errorf("field %d truncated", num)
}

// walkFields calls fn for each field of a message: v holds the bytes of
// length-delimited fields, x the value of varint and fixed fields. Groups
// and truncation are errors. The hot paths (spans and attributes) loop
// over readField themselves; this serves the messages read once per
// request or less.
func walkFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, v, x, n := readField(b)
		if n < 0 {
			return fieldError(num, n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
