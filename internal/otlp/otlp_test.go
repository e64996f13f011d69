package otlp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// testTraces builds a request with two resources, one of them with two
// scopes, exercising every span field Parse reads.
func testTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	rs.Resource().Attributes().PutInt("pid", 42)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("net/http")
	ss.Scope().SetVersion("1.0")

	root := ss.Spans().AppendEmpty()
	root.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	root.SetSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, 1, 1})
	root.SetName("POST /api/checkout")
	root.SetKind(ptrace.SpanKindServer)
	root.SetStartTimestamp(1_000_000_000)
	root.SetEndTimestamp(1_250_000_000)
	root.TraceState().FromRaw("vendor=x")
	root.Attributes().PutStr("http.route", "/api/checkout")
	root.Attributes().PutInt("http.response.status_code", 503)
	root.Attributes().PutDouble("ratio", 0.5)
	root.Attributes().PutBool("retry", true)
	root.Attributes().PutEmptySlice("list").AppendEmpty().SetStr("a")
	root.Attributes().PutEmptyMap("m").PutStr("k", "v")
	root.Attributes().PutEmptyBytes("b").FromRaw([]byte{0xca, 0xfe})
	ev := root.Events().AppendEmpty()
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.type", "Timeout")
	link := root.Links().AppendEmpty()
	link.SetTraceID(pcommon.TraceID{9})
	link.SetSpanID(pcommon.SpanID{9})

	child := ss.Spans().AppendEmpty()
	child.SetTraceID(root.TraceID())
	child.SetSpanID(pcommon.SpanID{2, 2, 2, 2, 2, 2, 2, 2})
	child.SetParentSpanID(root.SpanID())
	child.SetName("charge")
	child.SetKind(ptrace.SpanKindClient)
	child.SetStartTimestamp(1_010_000_000)
	child.SetEndTimestamp(1_200_000_000)
	child.Status().SetCode(ptrace.StatusCodeError)
	child.Status().SetMessage("deadline")
	child.Attributes().PutStr("rpc.response.status_code", "DEADLINE_EXCEEDED")

	ss2 := rs.ScopeSpans().AppendEmpty()
	ss2.Scope().SetName("db")
	q := ss2.Spans().AppendEmpty()
	q.SetTraceID(root.TraceID())
	q.SetSpanID(pcommon.SpanID{3, 3, 3, 3, 3, 3, 3, 3})
	q.SetParentSpanID(root.SpanID())
	q.SetName("SELECT")
	q.Attributes().PutInt("rpc.grpc.status_code", 5)

	rs2 := td.ResourceSpans().AppendEmpty()
	rs2.Resource().Attributes().PutStr("service.name", "payments")
	s := rs2.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(pcommon.TraceID{0xff, 2})
	s.SetSpanID(pcommon.SpanID{4, 4, 4, 4, 4, 4, 4, 4})
	s.SetName("charge")
	s.SetKind(ptrace.SpanKindServer)
	s.Attributes().PutStr("http.status_code", "404")
	return td
}

func marshal(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type spanSummary struct {
	Service, Name, Route     string
	TraceID                  string
	Parent                   string
	Kind                     Kind
	Status                   StatusCode
	HTTP                     uint16
	GRPC                     int8
	Bad                      bool
	Start, End               uint64
	ScopeSchema, ResourceURL string
}

func TestParseMatchesPdata(t *testing.T) {
	td := testTraces()
	var req Request
	if err := Parse(marshal(t, td), Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	if req.Rejected != 0 {
		t.Fatalf("rejected %d: %s", req.Rejected, req.RejectReason)
	}
	var got []spanSummary
	for i := range req.Spans {
		s := &req.Spans[i]
		res := req.SpanResource(s)
		got = append(got, spanSummary{
			Service: res.ServiceName, Name: string(s.Name()), Route: string(s.Route()),
			TraceID: s.TraceID.String(), Parent: s.ParentSpanID.String(),
			Kind: s.Kind, Status: s.Status, HTTP: s.HTTPStatus, GRPC: s.GRPCStatus, Bad: s.Bad(),
			Start: s.StartUnixNano, End: s.EndUnixNano, ResourceURL: string(res.SchemaURL),
		})
	}
	// Expected values restate testTraces by hand.
	want := []spanSummary{
		{Service: "checkout", Name: "POST /api/checkout", Route: "/api/checkout", TraceID: "0102030405060708090a0b0c0d0e0f10",
			Parent: "0000000000000000", Kind: KindServer, HTTP: 503, GRPC: NoGRPCStatus, Bad: true,
			Start: 1_000_000_000, End: 1_250_000_000, ResourceURL: "https://opentelemetry.io/schemas/1.26.0"},
		{Service: "checkout", Name: "charge", TraceID: "0102030405060708090a0b0c0d0e0f10", Parent: "0101010101010101",
			Kind: KindClient, Status: StatusError, GRPC: 4, Bad: true, Start: 1_010_000_000, End: 1_200_000_000,
			ResourceURL: "https://opentelemetry.io/schemas/1.26.0"},
		{Service: "checkout", Name: "SELECT", TraceID: "0102030405060708090a0b0c0d0e0f10", Parent: "0101010101010101",
			GRPC: 5, ResourceURL: "https://opentelemetry.io/schemas/1.26.0"},
		{Service: "payments", Name: "charge", TraceID: "ff020000000000000000000000000000", Parent: "0000000000000000",
			Kind: KindServer, HTTP: 404, GRPC: NoGRPCStatus},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	if len(req.Resources) != 2 || len(req.Scopes) != 3 {
		t.Errorf("got %d resources, %d scopes; want 2, 3", len(req.Resources), len(req.Scopes))
	}
	root := &req.Spans[0]
	if v, ok := root.Attr("ratio"); !ok || v.String() != "0.5" {
		t.Errorf("Attr(ratio) = %v, %v", v, ok)
	}
	if v, ok := root.Attr("retry"); !ok || v.String() != "true" {
		t.Errorf("Attr(retry) = %v, %v", v, ok)
	}
	if v, ok := root.Attr("b"); !ok || v.String() != "cafe" {
		t.Errorf("Attr(b) = %v, %v", v, ok)
	}
	if _, ok := root.Attr("missing"); ok {
		t.Error("Attr(missing) found")
	}
	if v, ok := req.Resources[0].Attr("pid"); !ok || v.String() != "42" {
		t.Errorf("resource Attr(pid) = %v, %v", v, ok)
	}
	var keys []string
	root.Attrs(func(k []byte, _ Value) bool { keys = append(keys, string(k)); return true })
	if want := []string{"http.route", "http.response.status_code", "ratio", "retry", "list", "m", "b"}; !cmp.Equal(want, keys) {
		t.Errorf("Attrs keys = %v, want %v", keys, want)
	}
}

func TestParseRejectsInvalidSpansAlone(t *testing.T) {
	td := testTraces()
	good := marshal(t, td)

	// Re-encode the first span with a 15-byte trace ID by editing the wire
	// bytes: pdata cannot express a wrong-length ID.
	var req Request
	if err := Parse(good, Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	// Copy every field but trace_id, then append a 15-byte trace_id.
	raw := req.Spans[0].Raw
	var bad []byte
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if num != fieldSpanTraceID {
			bad = append(bad, b[:n+m]...)
		}
		b = b[n+m:]
	}
	bad = protowire.AppendTag(bad, fieldSpanTraceID, protowire.BytesType)
	bad = protowire.AppendBytes(bad, bytes.Repeat([]byte{7}, 15))
	var e Encoder
	out := e.AppendResourceSpans(nil, &Group{Resource: req.Resources[0].Raw}, [][]byte{bad, req.Spans[1].Raw}, nil)

	var req2 Request
	if err := Parse(out, Limits{}, &req2); err != nil {
		t.Fatal(err)
	}
	if req2.Rejected != 1 || len(req2.Spans) != 1 {
		t.Fatalf("rejected %d, accepted %d; want 1, 1", req2.Rejected, len(req2.Spans))
	}
	if want := "resource_spans[0].scope_spans[0].spans[0]: trace_id is 15 bytes, want 16"; req2.RejectReason != want {
		t.Errorf("reason = %q, want %q", req2.RejectReason, want)
	}

	var req3 Request
	if err := Parse(good, Limits{MaxAttributes: 3}, &req3); err != nil {
		t.Fatal(err)
	}
	if req3.Rejected != 1 || !strings.Contains(req3.RejectReason, "span has 7 attributes, limit is 3") {
		t.Errorf("attribute limit: rejected %d, reason %q", req3.Rejected, req3.RejectReason)
	}
}

func TestParseMalformed(t *testing.T) {
	good := marshal(t, testTraces())
	tests := []struct {
		name string
		in   []byte
	}{
		{"truncated", good[:len(good)-3]},
		{"bad tag", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"resource_spans as varint", []byte{0x08, 0x01}},
		{"length past end", []byte{0x0a, 0x10, 0x01}},
		{"invalid utf8 name", func() []byte {
			var span []byte
			span = protowire.AppendTag(span, fieldSpanName, protowire.BytesType)
			span = protowire.AppendBytes(span, []byte{0xff, 0xfe})
			var e Encoder
			return e.AppendResourceSpans(nil, &Group{}, [][]byte{span}, nil)
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req Request
			if err := Parse(tt.in, Limits{}, &req); err == nil {
				t.Errorf("Parse accepted malformed input")
			}
			// pdata must agree that the input is not a valid request.
			if err := ptraceotlp.NewExportRequest().UnmarshalProto(tt.in); err == nil && tt.name != "invalid utf8 name" {
				t.Errorf("pdata accepted input the test calls malformed")
			}
		})
	}
	var req Request
	if err := Parse(nil, Limits{}, &req); err != nil || len(req.Spans) != 0 {
		t.Errorf("empty request: err %v, %d spans", err, len(req.Spans))
	}
}

func TestEncoderRoundTrip(t *testing.T) {
	var req Request
	if err := Parse(marshal(t, testTraces()), Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	var e Encoder
	var out []byte
	// One group per scope, as the sampler writes them.
	for si, sc := range req.Scopes {
		var spans [][]byte
		for i := range req.Spans {
			if req.Spans[i].Scope == int32(si) {
				spans = append(spans, req.Spans[i].Raw)
			}
		}
		res := req.Resources[sc.Resource]
		g := Group{Resource: res.Raw, ResourceSchemaURL: res.SchemaURL, Scope: sc.Raw, ScopeSchemaURL: sc.SchemaURL}
		out = e.AppendResourceSpans(out, &g, spans, &Extension{Rule: "rest", Rate: 20, Threshold: "f333333333333"})
	}
	if n := CountSpans(out); n != 4 {
		t.Errorf("CountSpans = %d, want 4", n)
	}
	got := ptraceotlp.NewExportRequest()
	if err := got.UnmarshalProto(out); err != nil {
		t.Fatalf("pdata cannot decode the encoder's output: %v", err)
	}
	td := got.Traces()
	if td.SpanCount() != 4 {
		t.Fatalf("span count %d, want 4", td.SpanCount())
	}
	type row struct {
		Service, Scope, Name, TraceState, Rule string
		Rate                                   float64
		Attrs                                  int
	}
	var rows []row
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		svc, _ := rs.Resource().Attributes().Get("service.name")
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				s := ss.Spans().At(k)
				rule, _ := s.Attributes().Get("sampling.rule")
				rate, _ := s.Attributes().Get("sampling.rate")
				rows = append(rows, row{svc.Str(), ss.Scope().Name(), s.Name(), s.TraceState().AsRaw(), rule.Str(), rate.Double(), s.Attributes().Len()})
			}
		}
	}
	want := []row{
		{"checkout", "net/http", "POST /api/checkout", "ot=th:f333333333333,vendor=x", "rest", 20, 9},
		{"checkout", "net/http", "charge", "ot=th:f333333333333", "rest", 20, 3},
		{"checkout", "db", "SELECT", "ot=th:f333333333333", "rest", 20, 3},
		{"payments", "", "charge", "ot=th:f333333333333", "rest", 20, 3},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("decoded spans (-want +got):\n%s", diff)
	}
	// Events and links survive byte for byte.
	root := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	if root.Events().Len() != 1 || root.Links().Len() != 1 || root.Events().At(0).Name() != "exception" {
		t.Errorf("events/links lost: %d events, %d links", root.Events().Len(), root.Links().Len())
	}
}

func TestMergeTraceState(t *testing.T) {
	tests := []struct{ in, th, want string }{
		{"", "8", "ot=th:8"},
		{"vendor=x", "8", "ot=th:8,vendor=x"},
		{"a=1,ot=th:c;rv:abcdef01234567,b=2", "8", "ot=th:8;rv:abcdef01234567,a=1,b=2"},
		{"ot=rv:00000000000001", "0", "ot=th:0;rv:00000000000001"},
		// Blank members and sub-keys are dropped, spaces around members
		// trimmed, and an ot member anywhere moves to the front.
		{" a=1 , ,ot=;th:c;;rv:ab ", "4", "ot=th:4;rv:ab,a=1"},
		{"ot=th:c", "4", "ot=th:4"},
	}
	for _, tt := range tests {
		if got := MergeTraceState(tt.in, tt.th); got != tt.want {
			t.Errorf("MergeTraceState(%q, %q) = %q, want %q", tt.in, tt.th, got, tt.want)
		}
	}
}

func TestPartialSuccessEncoding(t *testing.T) {
	b := AppendPartialSuccess(nil, 2, "spans[0]: bad")
	resp := ptraceotlp.NewExportResponse()
	if err := resp.UnmarshalProto(b); err != nil {
		t.Fatal(err)
	}
	if resp.PartialSuccess().RejectedSpans() != 2 || resp.PartialSuccess().ErrorMessage() != "spans[0]: bad" {
		t.Errorf("partial success = %d %q", resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage())
	}
	if len(AppendPartialSuccess(nil, 0, "")) != 0 {
		t.Error("full success must encode as the empty message")
	}
}

// spanBytes encodes a minimal valid span followed by extra fields.
func spanBytes(extra ...[]byte) []byte {
	var b []byte
	b = protowire.AppendTag(b, fieldSpanTraceID, protowire.BytesType)
	b = protowire.AppendBytes(b, bytes.Repeat([]byte{1}, 16))
	b = protowire.AppendTag(b, fieldSpanSpanID, protowire.BytesType)
	b = protowire.AppendBytes(b, bytes.Repeat([]byte{2}, 8))
	for _, e := range extra {
		b = append(b, e...)
	}
	return b
}

func field(num protowire.Number, typ protowire.Type, v []byte) []byte {
	b := protowire.AppendTag(nil, num, typ)
	if typ == protowire.BytesType {
		return protowire.AppendBytes(b, v)
	}
	return append(b, v...)
}

// TestParseAgreesWithPdataOnEdgeCases covers what fuzzing against pdata
// found: inputs pdata refuses must not be forwarded, since one such span
// would make a pdata-based backend refuse a whole export batch.
func TestParseAgreesWithPdataOnEdgeCases(t *testing.T) {
	var e Encoder
	wrap := func(span []byte) []byte { return e.AppendResourceSpans(nil, &Group{}, [][]byte{span}, nil) }
	link := func(traceIDLen int) []byte {
		return field(fieldSpanLinks, protowire.BytesType, field(fieldLinkTraceID, protowire.BytesType, bytes.Repeat([]byte{3}, traceIDLen)))
	}
	tests := []struct {
		name         string
		in           []byte
		wantErr      bool
		wantRejected int
		wantSpans    int
	}{
		{"valid link", wrap(spanBytes(link(16))), false, 0, 1},
		{"link trace_id of 15 bytes", wrap(spanBytes(link(15))), false, 1, 0},
		{"dropped_attributes_count as bytes", wrap(spanBytes(field(10, protowire.BytesType, []byte("zz")))), true, 0, 0},
		{"group field in a span", wrap(spanBytes([]byte{0xfb, 0x01, 0xfc, 0x01})), true, 0, 0},
		{"group field in the request", []byte("#$"), true, 0, 0},
		{"key_strindex as bytes", wrap(spanBytes(field(fieldSpanAttributes, protowire.BytesType,
			append(field(fieldKVKey, protowire.BytesType, []byte("k")), field(3, protowire.BytesType, []byte("x"))...)))), true, 0, 0},
		{"instrumentation_library_spans (OTLP < 0.19)", field(fieldRequestResourceSpans, protowire.BytesType,
			field(fieldRSInstrumentationLibrarySpans, protowire.BytesType, field(fieldSSSpans, protowire.BytesType, spanBytes()))), false, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req Request
			err := Parse(tt.in, Limits{}, &req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse error = %v, want error %v", err, tt.wantErr)
			}
			pderr := ptraceotlp.NewExportRequest().UnmarshalProto(tt.in)
			if (pderr != nil) != (tt.wantErr || tt.wantRejected > 0) {
				t.Errorf("pdata error = %v; the test's expectation disagrees with pdata", pderr)
			}
			if err == nil && (req.Rejected != tt.wantRejected || len(req.Spans) != tt.wantSpans) {
				t.Errorf("rejected %d (%s), accepted %d; want %d, %d", req.Rejected, req.RejectReason, len(req.Spans), tt.wantRejected, tt.wantSpans)
			}
		})
	}
}
