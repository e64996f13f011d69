package otlp

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// parseSpan fills s from raw. A structural error (the bytes are not a Span)
// returns err; a span that is well-formed but invalid returns a reason.
// When attrs is not nil, the span's attributes are appended to it and
// s.attrLo and s.attrHi say where.
func parseSpan(raw []byte, lim Limits, s *Span, attrs *[]Attr) (reason string, err error) {
	s.Raw = raw
	s.GRPCStatus = NoGRPCStatus
	if lim.MaxSpanBytes > 0 && len(raw) > lim.MaxSpanBytes {
		return fmt.Sprintf("span is %d bytes, limit is %d", len(raw), lim.MaxSpanBytes), nil
	}
	p := spanParse{traceIDLen: -1, spanIDLen: -1, record: attrs != nil}
	if attrs != nil {
		// Appended to a local copy of the slice header, written back below.
		p.attrs = *attrs
		s.attrLo = uint32(len(p.attrs))
	}
	for b := raw; len(b) > 0; {
		num, typ, v, x, n := readField(b)
		if n < 0 {
			err = fieldError(num, n)
			break
		}
		b = b[n:]
		if err = p.field(s, num, typ, v, x); err != nil {
			break
		}
	}
	if attrs != nil {
		*attrs = p.attrs
		s.attrHi = uint32(len(p.attrs))
	}
	if r, ok := err.(spanInvalid); ok {
		return string(r), nil
	}
	if err != nil {
		return "", err
	}
	if s.HTTPStatus == 0 {
		s.HTTPStatus = p.httpLegacy
	}
	switch {
	case p.traceIDLen != 16:
		return fmt.Sprintf("trace_id is %d bytes, want 16", max(p.traceIDLen, 0)), nil
	case s.TraceID.IsZero():
		return "trace_id is all zeros", nil
	case p.spanIDLen != 8:
		return fmt.Sprintf("span_id is %d bytes, want 8", max(p.spanIDLen, 0)), nil
	case s.SpanID.IsZero():
		return "span_id is all zeros", nil
	case p.parentLen != 0 && p.parentLen != 8:
		return fmt.Sprintf("parent_span_id is %d bytes, want 0 or 8", p.parentLen), nil
	case lim.MaxAttributes > 0 && p.nattrs > lim.MaxAttributes:
		return fmt.Sprintf("span has %d attributes, limit is %d", p.nattrs, lim.MaxAttributes), nil
	}
	return "", nil
}

// spanParse is what parseSpan tracks across a span's fields.
type spanParse struct {
	traceIDLen, spanIDLen, parentLen int
	nattrs                           int
	httpLegacy                       uint16
	record                           bool // append attributes to attrs
	attrs                            []Attr
}

// field reads one field of a span into s.
func (p *spanParse) field(s *Span, num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
	switch num {
	case fieldSpanTraceID, fieldSpanSpanID, fieldSpanParentSpanID, fieldSpanTraceState, fieldSpanName,
		fieldSpanAttributes, fieldSpanEvents, fieldSpanLinks, fieldSpanStatus:
		if typ != protowire.BytesType {
			return fmt.Errorf("field %d: wrong wire type %d", num, typ)
		}
	case fieldSpanStart, fieldSpanEnd:
		if typ != protowire.Fixed64Type {
			return fmt.Errorf("field %d: wrong wire type %d", num, typ)
		}
	case fieldSpanKind:
		if typ != protowire.VarintType {
			return fmt.Errorf("kind: wrong wire type %d", typ)
		}
	case fieldSpanFlags:
		if typ != protowire.Fixed32Type {
			return fmt.Errorf("flags: wrong wire type %d", typ)
		}
	default:
		return checkVarint(typ, num, 10, 12, 14) // dropped_*_count
	}
	switch num {
	case fieldSpanTraceID:
		p.traceIDLen = len(v)
		if len(v) == 16 {
			copy(s.TraceID[:], v)
			s.traceIDField = 0
			if o := int(subOffset(s.Raw, v)) - 2; o >= 0 && s.Raw[o] == traceIDTag && s.Raw[o+1] == 16 {
				s.traceIDField = uint32(o) + 1
			}
		}
	case fieldSpanSpanID:
		p.spanIDLen = len(v)
		if len(v) == 8 {
			copy(s.SpanID[:], v)
		}
	case fieldSpanParentSpanID:
		p.parentLen = len(v)
		if len(v) == 8 {
			copy(s.ParentSpanID[:], v)
		}
	case fieldSpanTraceState:
		if !utf8.Valid(v) {
			return fmt.Errorf("trace_state: invalid UTF-8")
		}
	case fieldSpanName:
		if !utf8.Valid(v) {
			return fmt.Errorf("name: invalid UTF-8")
		}
		s.nameOff, s.nameLen = subOffset(s.Raw, v), uint32(len(v))
	case fieldSpanKind:
		if x > 5 {
			x = 0
		}
		s.Kind = Kind(x)
	case fieldSpanStart:
		s.StartUnixNano = x
	case fieldSpanEnd:
		s.EndUnixNano = x
	case fieldSpanAttributes:
		p.nattrs++
		key, val, err := parseKeyValue(v, 0)
		if err != nil {
			return fmt.Errorf("attributes: %v", err)
		}
		if p.record {
			p.attrs = append(p.attrs, Attr{Key: key, Value: val})
		}
		p.wellKnown(s, key, val)
	case fieldSpanEvents:
		if err := validateEvent(v); err != nil {
			return fmt.Errorf("events: %v", err)
		}
	case fieldSpanLinks:
		if err := validateLink(v); err != nil {
			if r, ok := err.(spanInvalid); ok {
				return r
			}
			return fmt.Errorf("links: %v", err)
		}
	case fieldSpanStatus:
		code, err := parseStatus(v)
		if err != nil {
			return fmt.Errorf("status: %v", err)
		}
		s.Status = code
	}
	return nil
}

// wellKnown reads the attributes the Span view carries in its own fields.
// Every key it reads is at least 10 bytes long and starts with "h" or "r":
// most attributes are turned away by those two tests.
func (p *spanParse) wellKnown(s *Span, key []byte, val Value) {
	if len(key) < 10 || key[0] != 'h' && key[0] != 'r' {
		return
	}
	switch string(key) {
	case "http.response.status_code":
		if n, ok := val.Int(); ok && n > 0 && n < 1000 {
			s.HTTPStatus = uint16(n)
		}
	case "http.status_code":
		if n, ok := val.Int(); ok && n > 0 && n < 1000 {
			p.httpLegacy = uint16(n)
		}
	case "rpc.grpc.status_code":
		if n, ok := val.Int(); ok && n >= 0 && n <= 16 {
			s.GRPCStatus = int8(n)
		}
	case "rpc.response.status_code":
		if c := grpcCodeByName(val.Str()); c >= 0 {
			s.GRPCStatus = int8(c)
		}
	case "http.route":
		if val.Kind == ValueString && len(val.raw) > 0 {
			s.routeOff, s.routeLen = subOffset(s.Raw, val.raw), uint32(len(val.raw))
		}
	}
}

func parseStatus(b []byte) (StatusCode, error) {
	var code StatusCode
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case fieldStatusMessage:
			if typ != protowire.BytesType || !utf8.Valid(v) {
				return fmt.Errorf("message: not a UTF-8 string")
			}
		case fieldStatusCode:
			if typ != protowire.VarintType {
				return fmt.Errorf("code: wrong wire type")
			}
			if x <= 2 {
				code = StatusCode(x)
			}
		}
		return nil
	})
	return code, err
}

func validateEvent(b []byte) error {
	return walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fieldEventTime:
			if typ != protowire.Fixed64Type {
				return fmt.Errorf("time_unix_nano: wrong wire type")
			}
		case fieldEventName:
			if typ != protowire.BytesType || !utf8.Valid(v) {
				return fmt.Errorf("name: not a UTF-8 string")
			}
		case fieldEventAttributes:
			if typ != protowire.BytesType {
				return fmt.Errorf("attributes: wrong wire type")
			}
			_, _, err := parseKeyValue(v, 0)
			return err
		}
		return checkVarint(typ, num, 4) // dropped_attributes_count
	})
}

func validateLink(b []byte) error {
	return walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fieldLinkTraceID, fieldLinkSpanID:
			if typ != protowire.BytesType {
				return fmt.Errorf("field %d: wrong wire type", num)
			}
			if num == fieldLinkTraceID && len(v) != 0 && len(v) != 16 {
				return spanInvalid(fmt.Sprintf("link trace_id is %d bytes, want 16", len(v)))
			}
			if num == fieldLinkSpanID && len(v) != 0 && len(v) != 8 {
				return spanInvalid(fmt.Sprintf("link span_id is %d bytes, want 8", len(v)))
			}
		case fieldLinkTraceState:
			if typ != protowire.BytesType || !utf8.Valid(v) {
				return fmt.Errorf("trace_state: not a UTF-8 string")
			}
		case fieldLinkAttributes:
			if typ != protowire.BytesType {
				return fmt.Errorf("attributes: wrong wire type")
			}
			_, _, err := parseKeyValue(v, 0)
			return err
		case fieldLinkFlags:
			if typ != protowire.Fixed32Type {
				return fmt.Errorf("flags: wrong wire type")
			}
		}
		return checkVarint(typ, num, 5) // dropped_attributes_count
	})
}

// spanInvalid is a well-formed span whose content OTLP forbids: it is
// rejected on its own (partial success) instead of failing the request.
type spanInvalid string

func (e spanInvalid) Error() string { return string(e) }

// subOffset returns where sub starts inside b; sub must have been sliced
// from b (slicing keeps the end of the backing array, so the capacities
// differ by exactly the offset).
func subOffset(b, sub []byte) uint32 { return uint32(cap(b) - cap(sub)) }

// grpcCodeByName maps a gRPC status code name (as in rpc.response.status_code)
// to its number, or -1.
func grpcCodeByName(name []byte) int {
	switch string(name) {
	case "OK":
		return 0
	case "CANCELLED":
		return 1
	case "UNKNOWN":
		return 2
	case "INVALID_ARGUMENT":
		return 3
	case "DEADLINE_EXCEEDED":
		return 4
	case "NOT_FOUND":
		return 5
	case "ALREADY_EXISTS":
		return 6
	case "PERMISSION_DENIED":
		return 7
	case "RESOURCE_EXHAUSTED":
		return 8
	case "FAILED_PRECONDITION":
		return 9
	case "ABORTED":
		return 10
	case "OUT_OF_RANGE":
		return 11
	case "UNIMPLEMENTED":
		return 12
	case "INTERNAL":
		return 13
	case "UNAVAILABLE":
		return 14
	case "DATA_LOSS":
		return 15
	case "UNAUTHENTICATED":
		return 16
	}
	return -1
}

// ParseSpan reads one span encoding (as found in Span.Raw) back into a Span
// view, for code that kept only the bytes. Scope is left zero.
func ParseSpan(raw []byte) (Span, error) {
	var s Span
	reason, err := parseSpan(raw, Limits{}, &s, nil)
	if err != nil {
		return Span{}, fmt.Errorf("%w: span: %v", ErrMalformed, err)
	}
	if reason != "" {
		return Span{}, fmt.Errorf("invalid span: %s", reason)
	}
	return s, nil
}
