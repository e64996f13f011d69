package otlp

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the OTLP trace messages.
const (
	fieldRequestResourceSpans = 1

	fieldRSResource   = 1
	fieldRSScopeSpans = 2
	fieldRSSchemaURL  = 3
	// fieldRSInstrumentationLibrarySpans is the deprecated name of
	// scope_spans (OTLP before 0.19), with the same layout; old SDKs still
	// send it.
	fieldRSInstrumentationLibrarySpans = 1000

	fieldResourceAttributes = 1

	fieldSSScope     = 1
	fieldSSSpans     = 2
	fieldSSSchemaURL = 3

	fieldScopeName       = 1
	fieldScopeVersion    = 2
	fieldScopeAttributes = 3

	fieldSpanTraceID      = 1
	fieldSpanSpanID       = 2
	fieldSpanTraceState   = 3
	fieldSpanParentSpanID = 4
	fieldSpanName         = 5
	fieldSpanKind         = 6
	fieldSpanStart        = 7
	fieldSpanEnd          = 8
	fieldSpanAttributes   = 9
	fieldSpanEvents       = 11
	fieldSpanLinks        = 13
	fieldSpanStatus       = 15
	fieldSpanFlags        = 16

	fieldEventTime       = 1
	fieldEventName       = 2
	fieldEventAttributes = 3

	fieldLinkTraceID    = 1
	fieldLinkSpanID     = 2
	fieldLinkTraceState = 3
	fieldLinkAttributes = 4
	fieldLinkFlags      = 6

	fieldStatusMessage = 2
	fieldStatusCode    = 3

	fieldKVKey   = 1
	fieldKVValue = 2

	fieldAnyString = 1
	fieldAnyBool   = 2
	fieldAnyInt    = 3
	fieldAnyDouble = 4
	fieldAnyArray  = 5
	fieldAnyKVList = 6
	fieldAnyBytes  = 7

	fieldListValues = 1 // ArrayValue.values and KeyValueList.values
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
}

// Request is a parsed ExportTraceServiceRequest. Its slices view the bytes
// given to Parse, which must not change while the Request is in use.
type Request struct {
	Spans     []Span
	Resources []Resource
	Scopes    []Scope

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
// so the SLO engine, the golden signals and the sampler share one scan.
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

// spanInvalid is a well-formed span whose content OTLP forbids: it is
// rejected on its own (partial success) instead of failing the request.
type spanInvalid string

func (e spanInvalid) Error() string { return string(e) }

var errStop = errors.New("stop")

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
