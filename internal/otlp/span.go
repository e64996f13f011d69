package otlp

import (
	"encoding/hex"
	"strconv"
	"time"
)

// TraceID is a 16-byte W3C trace ID.
type TraceID [16]byte

// String returns the lower-case hex form.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the ID is all zero bytes, which OTLP forbids.
func (id TraceID) IsZero() bool { return id == TraceID{} }

// SpanID is an 8-byte W3C span ID.
type SpanID [8]byte

// String returns the lower-case hex form.
func (id SpanID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the ID is all zero bytes (no parent, for a parent ID).
func (id SpanID) IsZero() bool { return id == SpanID{} }

// Kind is the OTLP SpanKind.
type Kind uint8

// Span kinds as numbered in trace.proto.
const (
	KindUnspecified Kind = 0
	KindInternal    Kind = 1
	KindServer      Kind = 2
	KindClient      Kind = 3
	KindProducer    Kind = 4
	KindConsumer    Kind = 5
)

// String returns the OTLP name without the SPAN_KIND_ prefix.
func (k Kind) String() string {
	switch k {
	case KindInternal:
		return "internal"
	case KindServer:
		return "server"
	case KindClient:
		return "client"
	case KindProducer:
		return "producer"
	case KindConsumer:
		return "consumer"
	default:
		return "unspecified"
	}
}

// IsEntry reports whether a span of this kind is a request of its service
// (SERVER or CONSUMER), per DESIGN.md.
func (k Kind) IsEntry() bool { return k == KindServer || k == KindConsumer }

// StatusCode is the OTLP span status code.
type StatusCode uint8

// Status codes as numbered in trace.proto.
const (
	StatusUnset StatusCode = 0
	StatusOK    StatusCode = 1
	StatusError StatusCode = 2
)

// String returns the status name.
func (c StatusCode) String() string {
	switch c {
	case StatusOK:
		return "ok"
	case StatusError:
		return "error"
	default:
		return "unset"
	}
}

// NoGRPCStatus marks a span that carries no gRPC status attribute.
const NoGRPCStatus = -1

// Span is a validated view of one span in a request. Raw is the span
// message's own encoding; Name and Route are slices of it, so a copy of Raw
// must go with a copy of the Span (see Span.WithRaw).
type Span struct {
	// Raw is the encoding of the Span message (its fields, without tag or
	// length prefix).
	Raw []byte

	TraceID      TraceID
	SpanID       SpanID
	ParentSpanID SpanID // zero for a root span

	StartUnixNano uint64
	EndUnixNano   uint64

	Kind   Kind
	Status StatusCode
	// HTTPStatus is http.response.status_code (or legacy http.status_code),
	// 0 when absent.
	HTTPStatus uint16
	// GRPCStatus is rpc.grpc.status_code (or rpc.response.status_code when it
	// names a gRPC code), NoGRPCStatus when absent.
	GRPCStatus int8

	// Scope indexes Request.Scopes: the resource and scope the span came with.
	Scope int32

	nameOff, nameLen   uint32
	routeOff, routeLen uint32 // http.route string value; routeLen 0 when absent
	attrLo, attrHi     uint32 // Request.SpanAttrs
	traceIDField       uint32 // 1 + offset of the usual 18-byte trace_id field; 0 when not so encoded
}

// traceIDTag is the tag byte of Span.trace_id (field 1, length-delimited).
const traceIDTag = fieldSpanTraceID<<3 | 2

// TraceIDField returns the offset in Raw of the span's trace_id field when
// it is encoded in its usual 18 bytes (tag, length 16, the ID): a buffer
// may then drop those bytes and put them back exactly. It is the field
// Parse took the ID from, found by the walk, never guessed from the bytes.
func (s *Span) TraceIDField() (off int, ok bool) {
	return int(s.traceIDField) - 1, s.traceIDField != 0
}

// Name returns the span name (a slice of Raw).
func (s *Span) Name() []byte { return s.Raw[s.nameOff : s.nameOff+s.nameLen] }

// Route returns the http.route attribute's value, or nil when absent.
func (s *Span) Route() []byte {
	if s.routeLen == 0 {
		return nil
	}
	return s.Raw[s.routeOff : s.routeOff+s.routeLen]
}

// WithRaw returns a copy of s that reads its name, route and attributes from
// raw, which must hold the same bytes as s.Raw (e.g. a copy in an arena).
func (s Span) WithRaw(raw []byte) Span {
	s.Raw = raw
	return s
}

// IsRoot reports whether the span has no parent.
func (s *Span) IsRoot() bool { return s.ParentSpanID.IsZero() }

// Duration returns end - start, or 0 when the end precedes the start.
func (s *Span) Duration() time.Duration {
	if s.EndUnixNano <= s.StartUnixNano {
		return 0
	}
	return time.Duration(s.EndUnixNano - s.StartUnixNano)
}

// Bad reports whether the span is bad for availability per DESIGN.md: status
// ERROR, an HTTP 5xx, or a server-fault gRPC code. 4xx are the client's fault
// and are good.
func (s *Span) Bad() bool {
	return s.Status == StatusError || s.HTTPStatus >= 500 && s.HTTPStatus <= 599 || GRPCServerFault(int(s.GRPCStatus))
}

// GRPCServerFault reports whether a gRPC status code is the server's fault:
// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
func GRPCServerFault(code int) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15:
		return true
	}
	return false
}

// Attr returns the span attribute with the given key, walking Raw. For a
// span of a Request, Request.SpanAttrs(s).Get reads the attributes Parse
// already split.
func (s *Span) Attr(key string) (Value, bool) { return findAttr(s.Raw, fieldSpanAttributes, key) }

// Attrs calls fn for each span attribute until fn returns false.
func (s *Span) Attrs(fn func(key []byte, v Value) bool) { rangeAttrs(s.Raw, fieldSpanAttributes, fn) }

// Resource is the resource a group of spans came with.
type Resource struct {
	// Raw is the Resource message's encoding; nil when the request had none.
	Raw []byte
	// SchemaURL is ResourceSpans.schema_url.
	SchemaURL []byte
	// ServiceName is the service.name attribute, "" when absent.
	ServiceName string

	attrLo, attrHi uint32 // Request.ResourceAttrs
}

// Attr returns the resource attribute with the given key, walking Raw;
// Request.ResourceAttrs(r).Get reads the attributes Parse already split.
func (r *Resource) Attr(key string) (Value, bool) {
	return findAttr(r.Raw, fieldResourceAttributes, key)
}

// Attrs calls fn for each resource attribute until fn returns false.
func (r *Resource) Attrs(fn func(key []byte, v Value) bool) {
	rangeAttrs(r.Raw, fieldResourceAttributes, fn)
}

// Scope is one ScopeSpans entry: its instrumentation scope and the index of
// its resource.
type Scope struct {
	// Raw is the InstrumentationScope message's encoding; nil when absent.
	Raw []byte
	// SchemaURL is ScopeSpans.schema_url.
	SchemaURL []byte
	// Resource indexes Request.Resources.
	Resource int32
}

// ValueKind is the type held by an AnyValue.
type ValueKind uint8

// Value kinds, in AnyValue's field order.
const (
	ValueEmpty ValueKind = iota
	ValueString
	ValueBool
	ValueInt
	ValueDouble
	ValueArray
	ValueMap
	ValueBytes
)

// Value is an attribute value read from the wire. Strings, bytes, arrays and
// maps are views of the encoded message.
type Value struct {
	Kind ValueKind
	raw  []byte // string or bytes value, or the nested message for array/map
	num  uint64 // int (two's complement), double bits or bool
}

// Str returns a string value's bytes (nil for other kinds).
func (v Value) Str() []byte {
	if v.Kind != ValueString {
		return nil
	}
	return v.raw
}

// Bytes returns the value's bytes as they are on the wire: a string's or a
// bytes value's content, or the encoding of an array or map (an ArrayValue
// or KeyValueList message); nil for the other kinds. Two values of the
// same kind with equal Bytes are equal.
func (v Value) Bytes() []byte {
	switch v.Kind {
	case ValueString, ValueBytes, ValueArray, ValueMap:
		return v.raw
	}
	return nil
}

// Bits returns a scalar value's 64 bits as they are on the wire: an int in
// two's complement, a double's IEEE 754 bits, a bool as 0 or 1; 0 for the
// other kinds. Two values of the same kind with equal Bits are equal.
func (v Value) Bits() uint64 { return v.num }

// Int returns the value as an integer: an int, or a string holding a decimal
// integer (some SDKs send status codes as strings).
func (v Value) Int() (int64, bool) {
	switch v.Kind {
	case ValueInt:
		return int64(v.num), true
	case ValueString:
		n, err := strconv.ParseInt(string(v.raw), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Bool returns a bool value.
func (v Value) Bool() (bool, bool) { return v.num != 0, v.Kind == ValueBool }

// Double returns a double value.
func (v Value) Double() (float64, bool) {
	if v.Kind != ValueDouble {
		return 0, false
	}
	return float64frombits(v.num), true
}

// AppendText appends the value's text form to dst: strings as they are,
// numbers in decimal, bools as true/false, bytes in hex. Arrays and maps
// append their kind in brackets; rules and keys only use scalars.
func (v Value) AppendText(dst []byte) []byte {
	switch v.Kind {
	case ValueString:
		return append(dst, v.raw...)
	case ValueBool:
		return strconv.AppendBool(dst, v.num != 0)
	case ValueInt:
		return strconv.AppendInt(dst, int64(v.num), 10)
	case ValueDouble:
		return strconv.AppendFloat(dst, float64frombits(v.num), 'g', -1, 64)
	case ValueBytes:
		return hex.AppendEncode(dst, v.raw)
	case ValueArray:
		return append(dst, "[array]"...)
	case ValueMap:
		return append(dst, "[map]"...)
	}
	return dst
}

// String returns AppendText's form as a string.
func (v Value) String() string { return string(v.AppendText(nil)) }

// StatusMessage returns the span status's message (nil when absent).
func (s *Span) StatusMessage() []byte {
	return lastString(lastString(s.Raw, fieldSpanStatus), fieldStatusMessage)
}

// NameOf returns the name of a span from its encoding alone, for code that
// kept only Span.Raw.
func NameOf(raw []byte) []byte { return lastString(raw, fieldSpanName) }
