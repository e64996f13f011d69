package sampler

import (
	"time"
	"unsafe"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// spanRec is what a trace keeps per span besides its bytes: 12 bytes,
// the fields the rules and the insertion read for every span. The IDs and
// times, which the encoding holds too and which only TraceSpan's accessors
// read per span, are read back from the bytes (the trace's time bounds are
// kept in Trace). Spans lie in the arena in the order of their records, so
// a span's bytes end where the next one's begin (see Trace.spanBytes).
type spanRec struct {
	off        uint32 // where the span's stored bytes begin in the arena
	group      uint16 // index into Trace.groups
	httpStatus uint16
	kind       otlp.Kind
	status     otlp.StatusCode
	grpcStatus int8
	flags      uint8 // spanRoot, spanIDFront, spanIDBack
}

const (
	// spanRoot marks a span without a parent span ID.
	spanRoot = 1 << iota
	// spanIDFront and spanIDBack mark a span stored without its trace_id
	// field, which every span of the trace repeats and which was its first
	// field (as most SDKs encode it) or its last one (as the Collector's
	// pdata encodes it). The field is put back where it was on export.
	spanIDFront
	spanIDBack
)

// traceIDField is the encoding of a Span's trace_id field without the ID:
// field 1, wire type 2, length 16.
var traceIDField = [2]byte{0x0a, 0x10}

// traceIDFieldLen is the size of an encoded trace_id field.
const traceIDFieldLen = 18

// stripTraceID returns the span's bytes without its trace_id field when
// that field, as Parse found it, is the first or the last one and takes
// the usual 18 bytes, with the spanID* flag that says which; putting the
// field back there restores the bytes exactly. The offset comes from the
// parse, so a last field of another kind that merely ends in the same 18
// bytes is never cut.
func stripTraceID(sp *otlp.Span) ([]byte, uint8) {
	raw := sp.Raw
	off, ok := sp.TraceIDField()
	switch {
	case !ok:
		return raw, 0
	case off == 0:
		return raw[traceIDFieldLen:], spanIDFront
	case off+traceIDFieldLen == len(raw):
		return raw[:off:off], spanIDBack
	}
	return raw, 0
}

// appendSpanEncoding appends a span's encoding to dst: its stored bytes,
// with the trace_id field put back where it was stripped.
func appendSpanEncoding(dst []byte, id *otlp.TraceID, stored []byte, flags uint8) []byte {
	if flags&spanIDFront != 0 {
		dst = append(dst, traceIDField[:]...)
		dst = append(dst, id[:]...)
	}
	dst = append(dst, stored...)
	if flags&spanIDBack != 0 {
		dst = append(dst, traceIDField[:]...)
		dst = append(dst, id[:]...)
	}
	return dst
}

// noBytes marks an absent field in a group (nil, as opposed to empty).
const noBytes = ^uint32(0)

// span is an (offset, length) pair in an arena; off == noBytes means nil.
type span struct{ off, n uint32 }

func (s span) in(arena []byte) []byte {
	if s.off == noBytes {
		return nil
	}
	return arena[s.off : s.off+s.n : s.off+s.n]
}

// group is a distinct resource and scope of a trace: a reference to their
// encodings and service name, shared per shard (8 bytes per trace and
// group).
type group struct {
	*sharedGroup
}

// traceOverhead is what a buffered trace costs besides its arena, records
// and groups: the Trace struct, its map slot and its wheel entries.
const traceOverhead = int(unsafe.Sizeof(Trace{})) + 64

// maxTraceBytes bounds one trace's arena (offsets are 32-bit); a trace
// that would outgrow it is decided at once and its later spans follow the
// decision.
const maxTraceBytes = 1 << 31

// maxTraceGroups bounds one trace's distinct resource/scope pairs.
const maxTraceGroups = 1 << 16

// Trace is a read-only view of a buffered trace, given to
// Settings.OnDecision. It and everything read from it (byte slices,
// TraceSpan values) are valid only during that call; copy what you keep.
type Trace struct {
	id     otlp.TraceID
	arena  []byte
	spans  []spanRec
	groups []group

	firstSeen int64 // unix nanos of the first span's arrival
	deadline  int64 // unix nanos when it is due
	minStart  uint64
	maxEnd    uint64
	rule      *string // the deciding rule's name, nil when none matched
	root      int32   // index of the root span, -1 until it arrives
	ins       int32   // this trace's entry in shard.ins while a batch is inserted
	bad       bool    // a span is bad for availability
	rootDue   bool    // the deadline is root + root_grace
	decided   bool
	dirty     bool // listed in shard.dirty (push_back overload)

	// The decision, set before OnDecision is called.
	decision Decision
	trigger  Trigger
}

// ID returns the trace ID.
func (t *Trace) ID() otlp.TraceID { return t.id }

// Len returns the number of spans buffered.
func (t *Trace) Len() int { return len(t.spans) }

// Span returns the i-th span in arrival order.
func (t *Trace) Span(i int) TraceSpan { return TraceSpan{t: t, r: &t.spans[i], i: i} }

// spanBytes returns span i's stored bytes in the arena.
func (t *Trace) spanBytes(i int) []byte {
	end := uint32(len(t.arena))
	if i+1 < len(t.spans) {
		end = t.spans[i+1].off
	}
	off := t.spans[i].off
	return t.arena[off:end:end]
}

// Root returns the index of the root span, or false when it has not arrived.
func (t *Trace) Root() (int, bool) { return int(t.root), t.root >= 0 }

// HasError reports whether a span is bad for availability (DESIGN.md).
func (t *Trace) HasError() bool { return t.bad }

// Duration returns the latest end minus the earliest start.
func (t *Trace) Duration() time.Duration {
	if len(t.spans) == 0 || t.maxEnd <= t.minStart {
		return 0
	}
	return time.Duration(t.maxEnd - t.minStart)
}

// FirstSeen returns when the trace's first span arrived.
func (t *Trace) FirstSeen() time.Time { return time.Unix(0, t.firstSeen) }

// Decision returns the decision (also passed to OnDecision).
func (t *Trace) Decision() Decision { return t.decision }

// Rule returns the name of the rule that decided, or "" when no rule
// matched (the trace was then dropped).
func (t *Trace) Rule() string {
	if t.rule == nil {
		return ""
	}
	return *t.rule
}

// Reason explains the decision: "rule <name>" or "no rule matched".
func (t *Trace) Reason() string {
	if t.rule == nil {
		return "no rule matched"
	}
	return "rule " + *t.rule
}

// Trigger returns why the trace was decided when it was.
func (t *Trace) Trigger() Trigger { return t.trigger }

// TraceSpan is a view of one span of a Trace, valid as long as the Trace.
type TraceSpan struct {
	t *Trace
	r *spanRec
	i int
}

// parsed reads the span's encoding back (it was validated at ingest, so
// this cannot fail; a zero Span is returned if it somehow does).
func (s TraceSpan) parsed() otlp.Span {
	sp, err := otlp.ParseSpan(s.Raw())
	if err != nil {
		return otlp.Span{}
	}
	return sp
}

// SpanID returns the span ID (read from the span's encoding).
func (s TraceSpan) SpanID() otlp.SpanID { return s.parsed().SpanID }

// ParentSpanID returns the parent span ID, zero for a root span (read from
// the span's encoding).
func (s TraceSpan) ParentSpanID() otlp.SpanID { return s.parsed().ParentSpanID }

// IsRoot reports whether the span has no parent.
func (s TraceSpan) IsRoot() bool { return s.r.flags&spanRoot != 0 }

// StartUnixNano returns the span's start time (read from the span's
// encoding).
func (s TraceSpan) StartUnixNano() uint64 { return s.parsed().StartUnixNano }

// EndUnixNano returns the span's end time (read from the span's encoding).
func (s TraceSpan) EndUnixNano() uint64 { return s.parsed().EndUnixNano }

// Duration returns end - start, or 0 when the end precedes the start.
func (s TraceSpan) Duration() time.Duration {
	sp := s.parsed()
	if sp.EndUnixNano <= sp.StartUnixNano {
		return 0
	}
	return time.Duration(sp.EndUnixNano - sp.StartUnixNano)
}

// Kind returns the span kind.
func (s TraceSpan) Kind() otlp.Kind { return s.r.kind }

// Status returns the span status code.
func (s TraceSpan) Status() otlp.StatusCode { return s.r.status }

// HTTPStatus returns the HTTP response status code, 0 when absent.
func (s TraceSpan) HTTPStatus() uint16 { return s.r.httpStatus }

// GRPCStatus returns the gRPC status code, otlp.NoGRPCStatus when absent.
func (s TraceSpan) GRPCStatus() int8 { return s.r.grpcStatus }

// Bad reports whether the span is bad for availability (DESIGN.md).
func (s TraceSpan) Bad() bool { return s.r.bad() }

// ServiceName returns the resource service.name of the span.
func (s TraceSpan) ServiceName() string { return s.t.groups[s.r.group].service }

// Name returns the span name.
func (s TraceSpan) Name() []byte { return otlp.NameOf(s.stored()) }

// Attr returns a span attribute.
func (s TraceSpan) Attr(key string) (otlp.Value, bool) {
	sp := otlp.Span{Raw: s.stored()}
	return sp.Attr(key)
}

// ResourceAttr returns an attribute of the span's resource.
func (s TraceSpan) ResourceAttr(key string) (otlp.Value, bool) {
	r := otlp.Resource{Raw: s.t.groups[s.r.group].resource}
	return r.Attr(key)
}

// Raw returns the span's encoding (an OTLP Span message without its tag),
// as it was received. The buffer stores most spans without their trace ID,
// so Raw may build the encoding on each call; the scan of stored bytes
// that Name and Attr do does not.
func (s TraceSpan) Raw() []byte {
	st := s.stored()
	if s.r.flags&(spanIDFront|spanIDBack) == 0 {
		return st
	}
	return appendSpanEncoding(make([]byte, 0, traceIDFieldLen+len(st)), &s.t.id, st, s.r.flags)
}

// AppendRaw appends the span's encoding, as Raw returns it, to dst.
func (s TraceSpan) AppendRaw(dst []byte) []byte {
	return appendSpanEncoding(dst, &s.t.id, s.stored(), s.r.flags)
}

// stored returns the span's bytes in the arena: its encoding, without the
// trace_id field when a spanID* flag is set. Fields other than the trace ID read
// the same from both.
func (s TraceSpan) stored() []byte {
	return s.t.spanBytes(s.i)
}

func (r *spanRec) bad() bool {
	sp := otlp.Span{Status: r.status, HTTPStatus: r.httpStatus, GRPCStatus: r.grpcStatus}
	return sp.Bad()
}

// memBytes is what the trace counts against max_buffered_bytes.
func (t *Trace) memBytes() int {
	return cap(t.arena) + cap(t.spans)*int(unsafe.Sizeof(spanRec{})) +
		cap(t.groups)*int(unsafe.Sizeof(group{})) + traceOverhead
}

// growTo returns a capacity for a slice that holds n and has c now: exact
// for the first fill, then at least 25% more, so a trace that arrives in
// many pieces is copied O(1) times per byte.
func growTo(c, n int) int {
	if c == 0 {
		return n
	}
	return max(n, c+c/4)
}
