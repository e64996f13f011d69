package otlp

// AppendRequest appends to dst an ExportTraceServiceRequest holding the
// spans of req as they are now (after partial rejection or filtering),
// each run of spans of one scope under its resource and scope. Parse of
// the result gives the same spans, resources and scopes. It is what the
// write-ahead log records of an accepted request.
func (e *Encoder) AppendRequest(dst []byte, req *Request) []byte {
	return e.AppendRequestFunc(dst, req, nil)
}

// AppendRequestFunc is AppendRequest of the spans keep reports true for
// (all when keep is nil). Scopes left without spans are left out.
func (e *Encoder) AppendRequestFunc(dst []byte, req *Request, keep func(*Span) bool) []byte {
	spans := e.spans
	defer func() {
		// Kept for the next call, without holding this request's bytes.
		clear(spans[:cap(spans)])
		e.spans = spans[:0]
	}()
	for i := 0; i < len(req.Spans); {
		scope := req.Spans[i].Scope
		spans = spans[:0]
		j := i
		for ; j < len(req.Spans) && req.Spans[j].Scope == scope; j++ {
			if keep == nil || keep(&req.Spans[j]) {
				spans = append(spans, req.Spans[j].Raw)
			}
		}
		if len(spans) == 0 {
			i = j
			continue
		}
		sc := &req.Scopes[scope]
		res := &req.Resources[sc.Resource]
		g := Group{Resource: res.Raw, ResourceSchemaURL: res.SchemaURL, Scope: sc.Raw, ScopeSchemaURL: sc.SchemaURL}
		dst = e.AppendResourceSpans(dst, &g, spans, nil)
		i = j
	}
	return dst
}
