package otlp

import "google.golang.org/protobuf/encoding/protowire"

// statusCodeError is STATUS_CODE_ERROR.
const statusCodeError = 2

// HasErrorSpan reports whether an encoded ExportTraceServiceRequest holds
// a span whose status code is ERROR. It is meant for requests this
// process encoded (the exporter's queue): anything unreadable does not
// count as an error.
func HasErrorSpan(req []byte) bool {
	return someField(req, fieldRequestResourceSpans, func(rs []byte) bool {
		return someField(rs, fieldRSScopeSpans, func(ss []byte) bool {
			return someField(ss, fieldSSSpans, func(span []byte) bool {
				return someField(span, fieldSpanStatus, func(st []byte) bool {
					return statusCode(st) == statusCodeError
				})
			})
		})
	})
}

// someField reports whether fn holds for the bytes of some length-delimited
// field num of msg, stopping at the first; it stops, false, at bytes it
// cannot read.
func someField(msg []byte, num protowire.Number, fn func(b []byte) bool) bool {
	for len(msg) > 0 {
		n, typ, v, _, l := readField(msg)
		if l < 0 {
			return false
		}
		if n == num && typ == protowire.BytesType && fn(v) {
			return true
		}
		msg = msg[l:]
	}
	return false
}

// statusCode returns a Status message's code (0 when absent or
// unreadable).
func statusCode(st []byte) uint64 {
	var code uint64
	for len(st) > 0 {
		n, typ, _, x, l := readField(st)
		if l < 0 {
			return 0
		}
		if n == fieldStatusCode && typ == protowire.VarintType {
			code = x
		}
		st = st[l:]
	}
	return code
}
