package otlp

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxValueDepth bounds the nesting of array and map attribute values, so a
// hostile request cannot exhaust the stack.
const maxValueDepth = 16

// ErrMalformed marks a request that is not a valid ExportTraceServiceRequest
// encoding. The request is rejected whole.
var ErrMalformed = errors.New("malformed OTLP request")

// Limits are the per-span bounds Parse enforces; a span beyond them is
// rejected on its own (partial success). Zero means no limit.
type Limits struct {
	// MaxAttributes bounds the attributes of one span.
	MaxAttributes int
	// MaxSpanBytes bounds the encoded size of one span.
	MaxSpanBytes int
	// MaxSpans bounds the span messages of one request, valid or not; 0
	// means no limit. A request with more is malformed and rejected whole
	// before its spans are parsed: two bytes of empty span would otherwise
	// cost a span's worth of bookkeeping each.
	MaxSpans int
}

// Request is a parsed ExportTraceServiceRequest. Its slices view the bytes
// given to Parse, which must not change while the Request is in use.
type Request struct {
	Spans     []Span
	Resources []Resource
	Scopes    []Scope

	// seen counts the span messages met so far, for Limits.MaxSpans.
	seen int

	// Rejected counts spans refused for invalid content; RejectReason
	// describes the first of them with its location.
	Rejected     int
	RejectReason string

	// attrs holds the attributes of every span and resource, split while
	// validating them; Span and Resource index it.
	attrs []Attr

	// scratch holds the byte ranges of nested messages between parsing
	// steps, reused across requests.
	scopeScratch, spanScratch [][]byte

	// names holds service names seen by this Request, kept across Reset so
	// that a client sending the same services request after request costs
	// no string allocation.
	names []string
}

// maxInterned bounds Request.names; a request with more services than
// this allocates the rest.
const maxInterned = 64

// intern returns b as a string, reusing an earlier one when equal.
func (r *Request) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	for _, n := range r.names {
		if n == string(b) {
			return n
		}
	}
	s := string(b)
	if len(r.names) < maxInterned {
		r.names = append(r.names, s)
	}
	return s
}

// SpanAttrs returns the attributes of a span of this request in wire
// order. They were split by Parse: reading them costs no protobuf walk,
// so every consumer of the request (SLOs, golden signals) shares one scan.
// s must come from r.Spans (a Span built otherwise has none here; use
// Span.Attr).
func (r *Request) SpanAttrs(s *Span) Attrs {
	return r.attrs[s.attrLo:s.attrHi:s.attrHi]
}

// ResourceAttrs returns the attributes of a resource of this request in
// wire order, as SpanAttrs does for spans. res must come from r.Resources.
func (r *Request) ResourceAttrs(res *Resource) Attrs {
	return r.attrs[res.attrLo:res.attrHi:res.attrHi]
}

// SpanResource returns the resource of a span of this request.
func (r *Request) SpanResource(s *Span) *Resource {
	return &r.Resources[r.Scopes[s.Scope].Resource]
}

// Reset empties r for reuse, keeping its capacity.
func (r *Request) Reset() {
	r.Spans = r.Spans[:0]
	r.Resources = r.Resources[:0]
	r.Scopes = r.Scopes[:0]
	r.attrs = r.attrs[:0]
	r.seen = 0
	r.Rejected = 0
	r.RejectReason = ""
}

// parseError is a location-aware malformation.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Parse validates an encoded ExportTraceServiceRequest and appends its spans
// to req (which may be reused across calls after Reset). A structurally
// malformed request returns an error wrapping ErrMalformed and must be
// rejected whole; spans with invalid content (IDs of the wrong length,
// invalid UTF-8, limits exceeded) are counted in req.Rejected and left out.
func Parse(b []byte, lim Limits, req *Request) error {
	rsIdx := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("request: bad tag at byte %d", 0)
		}
		b = b[n:]
		if num == fieldRequestResourceSpans {
			if typ != protowire.BytesType {
				return malformed("resource_spans[%d]: wrong wire type %d", rsIdx, typ)
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("resource_spans[%d]: truncated", rsIdx)
			}
			if err := parseResourceSpans(v, rsIdx, lim, req); err != nil {
				return err
			}
			b = b[n:]
			rsIdx++
			continue
		}
		if typ == protowire.StartGroupType || typ == protowire.EndGroupType {
			return malformed("request: field %d is a group, which OTLP never uses", num)
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return malformed("request: truncated field %d", num)
		}
		b = b[n:]
	}
	return nil
}

func parseResourceSpans(b []byte, rsIdx int, lim Limits, req *Request) error {
	resIdx := int32(len(req.Resources))
	req.Resources = append(req.Resources, Resource{})
	// The resource and schema URL may follow the scope spans on the wire, so
	// collect the scope spans' bytes first and parse them once the resource
	// is known.
	// This scratch is reused by nested calls only after its contents were
	// consumed, so take a private copy of the slice header's range.
	start := len(req.scopeScratch)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("resource_spans[%d]: bad tag", rsIdx)
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == fieldRSResource || num == fieldRSScopeSpans ||
			num == fieldRSSchemaURL || num == fieldRSInstrumentationLibrarySpans):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("resource_spans[%d]: truncated field %d", rsIdx, num)
			}
			b = b[n:]
			switch num {
			case fieldRSResource:
				lo := len(req.attrs)
				svc, err := parseResource(v, &req.attrs)
				if err != nil {
					return malformed("resource_spans[%d].resource: %v", rsIdx, err)
				}
				res := &req.Resources[resIdx]
				res.Raw = v
				res.ServiceName = req.intern(svc)
				res.attrLo, res.attrHi = uint32(lo), uint32(len(req.attrs))
			case fieldRSScopeSpans, fieldRSInstrumentationLibrarySpans:
				req.scopeScratch = append(req.scopeScratch, v)
			case fieldRSSchemaURL:
				if !utf8.Valid(v) {
					return malformed("resource_spans[%d].schema_url: invalid UTF-8", rsIdx)
				}
				req.Resources[resIdx].SchemaURL = v
			}
		case num == fieldRSResource || num == fieldRSScopeSpans || num == fieldRSSchemaURL || num == fieldRSInstrumentationLibrarySpans:
			return malformed("resource_spans[%d]: field %d has wrong wire type %d", rsIdx, num, typ)
		default:
			if typ == protowire.StartGroupType || typ == protowire.EndGroupType {
				return malformed("resource_spans[%d]: field %d is a group, which OTLP never uses", rsIdx, num)
			}
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return malformed("resource_spans[%d]: truncated field %d", rsIdx, num)
			}
			b = b[n:]
		}
	}
	scopeSpans := req.scopeScratch[start:]
	defer func() { req.scopeScratch = req.scopeScratch[:start] }()
	for i, ss := range scopeSpans {
		if err := parseScopeSpans(ss, rsIdx, i, resIdx, lim, req); err != nil {
			return err
		}
	}
	return nil
}

// parseResource validates a Resource, appends its attributes to attrs and
// returns its service.name.
func parseResource(b []byte, attrs *[]Attr) ([]byte, error) {
	var service []byte
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == 3 && typ != protowire.BytesType { // entity_refs
			return fmt.Errorf("entity_refs: wrong wire type %d", typ)
		}
		if num != fieldResourceAttributes {
			return checkVarint(typ, num, 2) // dropped_attributes_count
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("attributes: wrong wire type")
		}
		key, val, err := parseKeyValue(v, 0)
		if err != nil {
			return fmt.Errorf("attributes: %v", err)
		}
		*attrs = append(*attrs, Attr{Key: key, Value: val})
		if string(key) == "service.name" && val.Kind == ValueString {
			service = val.raw
		}
		return nil
	})
	return service, err
}

func parseScopeSpans(b []byte, rsIdx, ssIdx int, resIdx int32, lim Limits, req *Request) error {
	scopeIdx := int32(len(req.Scopes))
	req.Scopes = append(req.Scopes, Scope{Resource: resIdx})
	start := len(req.spanScratch)
	defer func() { req.spanScratch = req.spanScratch[:start] }()
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fieldSSScope, fieldSSSpans, fieldSSSchemaURL:
			if typ != protowire.BytesType {
				return fmt.Errorf("field %d: wrong wire type %d", num, typ)
			}
		default:
			return nil
		}
		switch num {
		case fieldSSScope:
			if err := validateScope(v); err != nil {
				return fmt.Errorf("scope: %v", err)
			}
			req.Scopes[scopeIdx].Raw = v
		case fieldSSSpans:
			if req.seen++; lim.MaxSpans > 0 && req.seen > lim.MaxSpans {
				return fmt.Errorf("more than %d spans in one request; send smaller batches", lim.MaxSpans)
			}
			req.spanScratch = append(req.spanScratch, v)
		case fieldSSSchemaURL:
			if !utf8.Valid(v) {
				return fmt.Errorf("schema_url: invalid UTF-8")
			}
			req.Scopes[scopeIdx].SchemaURL = v
		}
		return nil
	})
	if err != nil {
		return malformed("resource_spans[%d].scope_spans[%d]: %v", rsIdx, ssIdx, err)
	}
	for i, raw := range req.spanScratch[start:] {
		var s Span
		attrs := len(req.attrs)
		reason, err := parseSpan(raw, lim, &s, &req.attrs)
		if err != nil {
			return malformed("resource_spans[%d].scope_spans[%d].spans[%d]: %v", rsIdx, ssIdx, i, err)
		}
		if reason != "" {
			if req.Rejected == 0 {
				req.RejectReason = fmt.Sprintf("resource_spans[%d].scope_spans[%d].spans[%d]: %s", rsIdx, ssIdx, i, reason)
			}
			req.Rejected++
			req.attrs = req.attrs[:attrs]
			continue
		}
		s.Scope = scopeIdx
		req.Spans = append(req.Spans, s)
	}
	return nil
}

func validateScope(b []byte) error {
	return walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fieldScopeName, fieldScopeVersion:
			if typ != protowire.BytesType || !utf8.Valid(v) {
				return fmt.Errorf("field %d: not a UTF-8 string", num)
			}
		case fieldScopeAttributes:
			if typ != protowire.BytesType {
				return fmt.Errorf("attributes: wrong wire type")
			}
			if _, _, err := parseKeyValue(v, 0); err != nil {
				return fmt.Errorf("attributes: %v", err)
			}
		}
		return checkVarint(typ, num, 4) // dropped_attributes_count
	})
}

// walkList calls fn for each "values" entry of an ArrayValue or KeyValueList.
func walkList(b []byte, fn func(item []byte) error) error {
	return walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fieldListValues {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("values: wrong wire type")
		}
		return fn(v)
	})
}

// checkVarint reports a known field that must be a varint but is not;
// a decoder such as pdata refuses any other wire type for them, so a span
// forwarded with one would make a backend refuse the whole batch.
func checkVarint(typ protowire.Type, num protowire.Number, fields ...protowire.Number) error {
	if typ == protowire.VarintType {
		return nil
	}
	for _, f := range fields {
		if num == f {
			return fmt.Errorf("field %d: wrong wire type %d, want varint", num, typ)
		}
	}
	return nil
}
