package sampler

import "github.com/tailgate-sre/tailgate/internal/otlp"

// batch is the part of one Consume call that goes to one shard: copies of
// the spans' and their resources' and scopes' encodings in buf, with a
// record per span. It is handed to the shard's goroutine and recycled.
type batch struct {
	at     int64 // unix nanos of the Consume call
	buf    []byte
	spans  []inSpan
	groups []inGroup
}

// inSpan is a span in a batch; rec.off is in batch.buf and rec.group
// indexes batch.groups. start and end update the trace's time bounds.
type inSpan struct {
	traceID    otlp.TraceID
	start, end uint64
	size       uint32 // of the stored bytes at rec.off
	rec        spanRec
}

// inGroup is a resource and scope in a batch, in batch.buf.
type inGroup struct {
	resource, resourceSchema, scope, scopeSchema, service span
}

func (b *batch) reset() {
	b.buf = b.buf[:0]
	b.spans = b.spans[:0]
	b.groups = b.groups[:0]
}

func (b *batch) appendBytes(v []byte) span {
	if v == nil {
		return span{off: noBytes}
	}
	off := len(b.buf)
	b.buf = append(b.buf, v...)
	return span{off: uint32(off), n: uint32(len(v))}
}

func (b *batch) addGroup(req *otlp.Request, scope int) int32 {
	sc := &req.Scopes[scope]
	res := &req.Resources[sc.Resource]
	g := inGroup{
		resource:       b.appendBytes(res.Raw),
		resourceSchema: b.appendBytes(res.SchemaURL),
		scope:          b.appendBytes(sc.Raw),
		scopeSchema:    b.appendBytes(sc.SchemaURL),
	}
	off := len(b.buf)
	b.buf = append(b.buf, res.ServiceName...)
	g.service = span{off: uint32(off), n: uint32(len(res.ServiceName))}
	b.groups = append(b.groups, g)
	return int32(len(b.groups) - 1)
}

func (b *batch) addSpan(sp *otlp.Span, g uint16) {
	raw, flags := stripTraceID(sp)
	if sp.ParentSpanID.IsZero() {
		flags |= spanRoot
	}
	off := len(b.buf)
	b.buf = append(b.buf, raw...)
	b.spans = append(b.spans, inSpan{traceID: sp.TraceID, start: sp.StartUnixNano, end: sp.EndUnixNano, size: uint32(len(raw)), rec: spanRec{
		off:        uint32(off),
		group:      g,
		kind:       sp.Kind,
		status:     sp.Status,
		httpStatus: sp.HTTPStatus,
		grpcStatus: sp.GRPCStatus,
		flags:      flags,
	}})
}

func (g *inGroup) otlpGroup(buf []byte) otlp.Group {
	return otlp.Group{
		Resource: g.resource.in(buf), ResourceSchemaURL: g.resourceSchema.in(buf),
		Scope: g.scope.in(buf), ScopeSchemaURL: g.scopeSchema.in(buf),
	}
}
