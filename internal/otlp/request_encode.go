package otlp

// AppendRequest appends to dst an ExportTraceServiceRequest holding the
// spans of req as they are now (after partial rejection or filtering),
// each run of spans of one scope under its resource and scope. Parse of
// the result gives the same spans, resources and scopes. It is what the
// write-ahead log records of an accepted request.
func (e *Encoder) AppendRequest(dst []byte, req *Request) []byte {
	var spans [][]byte
	for i := 0; i < len(req.Spans); {
		scope := req.Spans[i].Scope
		spans = spans[:0]
		j := i
		for ; j < len(req.Spans) && req.Spans[j].Scope == scope; j++ {
			spans = append(spans, req.Spans[j].Raw)
		}
		sc := &req.Scopes[scope]
		res := &req.Resources[sc.Resource]
		g := Group{Resource: res.Raw, ResourceSchemaURL: res.SchemaURL, Scope: sc.Raw, ScopeSchemaURL: sc.SchemaURL}
		dst = e.AppendResourceSpans(dst, &g, spans, nil)
		i = j
	}
	return dst
}
