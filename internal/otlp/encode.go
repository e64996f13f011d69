package otlp

import (
	"bytes"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Extension is what tailgate adds to every span of a kept trace so that
// downstream counts can be re-weighted and the decision explained.
type Extension struct {
	// Rule is written as the sampling.rule attribute; empty omits it.
	Rule string
	// Rate is written as the sampling.rate attribute (1/p); 0 omits it.
	Rate float64
	// Threshold, when not empty, is the OpenTelemetry sampling threshold
	// (the hex digits of "th:") merged into the span's W3C trace_state
	// under the "ot" key.
	Threshold string
}

// Group is the resource and instrumentation scope a run of spans is written
// under: the raw encodings from Resource and Scope.
type Group struct {
	Resource          []byte
	ResourceSchemaURL []byte
	Scope             []byte
	ScopeSchemaURL    []byte
}

// Encoder writes ExportTraceServiceRequest bytes. A sequence of
// AppendResourceSpans results concatenated is itself a valid request, which
// is how exporters batch. The zero value is ready to use; an Encoder is not
// safe for concurrent use (it keeps scratch space).
type Encoder struct {
	ext       []byte   // encoded extension attributes for the current call
	states    [][]byte // merged trace_state per span, nil when unchanged
	stateBufs []byte
	spans     [][]byte // AppendRequestFunc's spans of one scope
	ends      []int    // where each span's merged trace_state ends in stateBufs
}

// AppendResourceSpans appends to dst one resource_spans entry (field 1 of
// ExportTraceServiceRequest) that holds a single scope_spans with the given
// spans (raw Span encodings), each extended by ext (nil for none).
func (e *Encoder) AppendResourceSpans(dst []byte, g *Group, spans [][]byte, ext *Extension) []byte {
	e.ext = e.ext[:0]
	if ext != nil {
		if ext.Rate > 0 {
			e.ext = appendDoubleAttr(e.ext, "sampling.rate", ext.Rate)
		}
		if ext.Rule != "" {
			e.ext = appendStringAttr(e.ext, "sampling.rule", ext.Rule)
		}
	}
	e.states = e.states[:0]
	e.stateBufs = e.stateBufs[:0]
	if ext != nil && ext.Threshold != "" {
		// Merge into one buffer first, then slice it, so appends that move
		// the buffer cannot leave stale slices behind.
		e.ends = e.ends[:0]
		for _, raw := range spans {
			e.stateBufs = appendMergedTraceState(e.stateBufs, lastString(raw, fieldSpanTraceState), ext.Threshold)
			e.ends = append(e.ends, len(e.stateBufs))
		}
		start := 0
		for _, end := range e.ends {
			e.states = append(e.states, e.stateBufs[start:end:end])
			start = end
		}
	}

	spanSize := func(i int) int {
		n := len(spans[i]) + len(e.ext)
		if len(e.states) > 0 {
			n += protowire.SizeTag(fieldSpanTraceState) + protowire.SizeBytes(len(e.states[i]))
		}
		return n
	}
	ss := 0
	if g.Scope != nil {
		ss += protowire.SizeTag(fieldSSScope) + protowire.SizeBytes(len(g.Scope))
	}
	for i := range spans {
		ss += protowire.SizeTag(fieldSSSpans) + protowire.SizeBytes(spanSize(i))
	}
	if len(g.ScopeSchemaURL) > 0 {
		ss += protowire.SizeTag(fieldSSSchemaURL) + protowire.SizeBytes(len(g.ScopeSchemaURL))
	}
	rs := protowire.SizeTag(fieldRSScopeSpans) + protowire.SizeBytes(ss)
	if g.Resource != nil {
		rs += protowire.SizeTag(fieldRSResource) + protowire.SizeBytes(len(g.Resource))
	}
	if len(g.ResourceSchemaURL) > 0 {
		rs += protowire.SizeTag(fieldRSSchemaURL) + protowire.SizeBytes(len(g.ResourceSchemaURL))
	}

	dst = protowire.AppendTag(dst, fieldRequestResourceSpans, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(rs))
	if g.Resource != nil {
		dst = protowire.AppendTag(dst, fieldRSResource, protowire.BytesType)
		dst = protowire.AppendBytes(dst, g.Resource)
	}
	dst = protowire.AppendTag(dst, fieldRSScopeSpans, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(ss))
	if g.Scope != nil {
		dst = protowire.AppendTag(dst, fieldSSScope, protowire.BytesType)
		dst = protowire.AppendBytes(dst, g.Scope)
	}
	for i, raw := range spans {
		dst = protowire.AppendTag(dst, fieldSSSpans, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(spanSize(i)))
		dst = append(dst, raw...)
		dst = append(dst, e.ext...)
		if len(e.states) > 0 {
			// A singular field that appears twice takes its last value, so
			// appending trace_state replaces the original.
			dst = protowire.AppendTag(dst, fieldSpanTraceState, protowire.BytesType)
			dst = protowire.AppendBytes(dst, e.states[i])
		}
	}
	if len(g.ScopeSchemaURL) > 0 {
		dst = protowire.AppendTag(dst, fieldSSSchemaURL, protowire.BytesType)
		dst = protowire.AppendBytes(dst, g.ScopeSchemaURL)
	}
	if len(g.ResourceSchemaURL) > 0 {
		dst = protowire.AppendTag(dst, fieldRSSchemaURL, protowire.BytesType)
		dst = protowire.AppendBytes(dst, g.ResourceSchemaURL)
	}
	return dst
}

// CountSpans returns the number of spans in an encoded request, which must
// have been produced by an Encoder (or validated by Parse).
func CountSpans(req []byte) int {
	n := 0
	_ = walkFields(req, func(num protowire.Number, _ protowire.Type, rs []byte, _ uint64) error {
		if num != fieldRequestResourceSpans {
			return nil
		}
		return walkFields(rs, func(num protowire.Number, _ protowire.Type, ss []byte, _ uint64) error {
			if num != fieldRSScopeSpans {
				return nil
			}
			return walkFields(ss, func(num protowire.Number, _ protowire.Type, _ []byte, _ uint64) error {
				if num == fieldSSSpans {
					n++
				}
				return nil
			})
		})
	})
	return n
}

// AppendPartialSuccess appends an ExportTraceServiceResponse with a
// partial_success of rejected spans and a message; with rejected == 0 and an
// empty message it appends nothing (the empty response means full success).
func AppendPartialSuccess(dst []byte, rejected int64, message string) []byte {
	if rejected == 0 && message == "" {
		return dst
	}
	var ps []byte
	if rejected != 0 {
		ps = protowire.AppendTag(ps, 1, protowire.VarintType)
		ps = protowire.AppendVarint(ps, uint64(rejected))
	}
	if message != "" {
		ps = protowire.AppendTag(ps, 2, protowire.BytesType)
		ps = protowire.AppendString(ps, message)
	}
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	return protowire.AppendBytes(dst, ps)
}

func appendStringAttr(dst []byte, key, value string) []byte {
	dst = appendKVHeader(dst, key, protowire.SizeTag(fieldAnyString)+protowire.SizeBytes(len(value)))
	dst = protowire.AppendTag(dst, fieldAnyString, protowire.BytesType)
	return protowire.AppendString(dst, value)
}

func appendDoubleAttr(dst []byte, key string, value float64) []byte {
	dst = appendKVHeader(dst, key, protowire.SizeTag(fieldAnyDouble)+protowire.SizeFixed64())
	dst = protowire.AppendTag(dst, fieldAnyDouble, protowire.Fixed64Type)
	return protowire.AppendFixed64(dst, math.Float64bits(value))
}

// appendKVHeader appends a span attribute's KeyValue up to its AnyValue,
// whose encoding of anyLen bytes the caller appends: no value is built
// apart and copied.
func appendKVHeader(dst []byte, key string, anyLen int) []byte {
	size := protowire.SizeTag(fieldKVKey) + protowire.SizeBytes(len(key)) +
		protowire.SizeTag(fieldKVValue) + protowire.SizeBytes(anyLen)
	dst = protowire.AppendTag(dst, fieldSpanAttributes, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	dst = protowire.AppendTag(dst, fieldKVKey, protowire.BytesType)
	dst = protowire.AppendString(dst, key)
	dst = protowire.AppendTag(dst, fieldKVValue, protowire.BytesType)
	return protowire.AppendVarint(dst, uint64(anyLen))
}

// lastString returns the last value of a string field of a message.
func lastString(msg []byte, field protowire.Number) []byte {
	var out []byte
	_ = walkFields(msg, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == field && typ == protowire.BytesType {
			out = v
		}
		return nil
	})
	return out
}

// MergeTraceState returns the W3C tracestate ts with the OpenTelemetry
// member "ot" carrying the sampling threshold th: an existing th sub-key is
// replaced, other ot sub-keys (such as rv) are kept, and the ot member moves
// to the front as W3C asks of a modified member.
func MergeTraceState(ts, th string) string {
	return string(appendMergedTraceState(nil, []byte(ts), th))
}

func appendMergedTraceState(dst, ts []byte, th string) []byte {
	dst = append(dst, "ot=th:"...)
	dst = append(dst, th...)
	// Two passes over the members, without splitting them apart: the ot
	// member's other sub-keys first, then the other members in order.
	for pass := range 2 {
		for rest := ts; len(rest) > 0; {
			var member []byte
			member, rest = cutByte(rest, ',')
			member = bytes.TrimSpace(member)
			if len(member) == 0 {
				continue
			}
			v, isOT := bytes.CutPrefix(member, []byte("ot="))
			switch {
			case pass == 0 && isOT:
				for len(v) > 0 {
					var sub []byte
					sub, v = cutByte(v, ';')
					if len(sub) == 0 || bytes.HasPrefix(sub, []byte("th:")) {
						continue
					}
					dst = append(dst, ';')
					dst = append(dst, sub...)
				}
			case pass == 1 && !isOT:
				dst = append(dst, ',')
				dst = append(dst, member...)
			}
		}
	}
	return dst
}

// cutByte returns b before and after the first sep (all of b and nil
// without one).
func cutByte(b []byte, sep byte) (before, after []byte) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}
