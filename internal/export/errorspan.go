package export

import "google.golang.org/protobuf/encoding/protowire"

// Field numbers of the OTLP trace protos that hasErrorSpan walks.
const (
	fieldRequestResourceSpans = 1 // ExportTraceServiceRequest.resource_spans
	fieldResourceScopeSpans   = 2 // ResourceSpans.scope_spans
	fieldScopeSpans           = 2 // ScopeSpans.spans
	fieldSpanStatus           = 15
	fieldStatusCode           = 3
	statusCodeError           = 2 // STATUS_CODE_ERROR
)

// hasErrorSpan reports whether an encoded ExportTraceServiceRequest holds a
// span whose status code is ERROR. The sampler encoded the request, so it
// is well formed; anything unreadable simply does not count as an error.
func hasErrorSpan(req []byte) bool {
	found := false
	eachField(req, fieldRequestResourceSpans, func(rs []byte) bool {
		eachField(rs, fieldResourceScopeSpans, func(ss []byte) bool {
			eachField(ss, fieldScopeSpans, func(span []byte) bool {
				eachField(span, fieldSpanStatus, func(st []byte) bool {
					if statusCode(st) == statusCodeError {
						found = true
					}
					return !found
				})
				return !found
			})
			return !found
		})
		return !found
	})
	return found
}

// eachField calls fn with the bytes of every length-delimited field num of
// msg until fn returns false.
func eachField(msg []byte, num protowire.Number, fn func(b []byte) bool) {
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return
		}
		msg = msg[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(msg)
			if l < 0 {
				return
			}
			if !fn(v) {
				return
			}
			msg = msg[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, msg)
		if l < 0 {
			return
		}
		msg = msg[l:]
	}
}

// statusCode returns Status.code (the last one wins, as in protobuf).
func statusCode(st []byte) uint64 {
	var code uint64
	for len(st) > 0 {
		n, typ, l := protowire.ConsumeTag(st)
		if l < 0 {
			return code
		}
		st = st[l:]
		if n == fieldStatusCode && typ == protowire.VarintType {
			v, l := protowire.ConsumeVarint(st)
			if l < 0 {
				return code
			}
			code = v
			st = st[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, st)
		if l < 0 {
			return code
		}
		st = st[l:]
	}
	return code
}
