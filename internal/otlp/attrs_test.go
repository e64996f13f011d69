package otlp

import (
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// Hand-built protobuf for the attribute tests: each helper writes one
// message of common.proto as the field numbers there say.
func kv(key string, anyValue []byte) []byte {
	return append(field(fieldKVKey, protowire.BytesType, []byte(key)), field(fieldKVValue, protowire.BytesType, anyValue)...)
}
func strV(s string) []byte { return field(fieldAnyString, protowire.BytesType, []byte(s)) }
func intV(n int64) []byte {
	return field(fieldAnyInt, protowire.VarintType, protowire.AppendVarint(nil, uint64(n)))
}
func dblV(f float64) []byte {
	return field(fieldAnyDouble, protowire.Fixed64Type, protowire.AppendFixed64(nil, math.Float64bits(f)))
}
func boolV(b bool) []byte {
	return field(fieldAnyBool, protowire.VarintType, protowire.AppendVarint(nil, protowire.EncodeBool(b)))
}
func bytesV(b []byte) []byte { return field(fieldAnyBytes, protowire.BytesType, b) }
func arrV(items ...[]byte) []byte {
	var list []byte
	for _, it := range items {
		list = append(list, field(fieldListValues, protowire.BytesType, it)...)
	}
	return field(fieldAnyArray, protowire.BytesType, list)
}
func mapV(kvs ...[]byte) []byte {
	var list []byte
	for _, e := range kvs {
		list = append(list, field(fieldListValues, protowire.BytesType, e)...)
	}
	return field(fieldAnyKVList, protowire.BytesType, list)
}
func spanAttr(kvBytes []byte) []byte { return field(fieldSpanAttributes, protowire.BytesType, kvBytes) }

// request wraps spans (raw Span encodings) in one resource with the given
// resource attributes (KeyValue encodings).
func request(resAttrs [][]byte, spans ...[]byte) []byte {
	var res []byte
	for _, a := range resAttrs {
		res = append(res, field(fieldResourceAttributes, protowire.BytesType, a)...)
	}
	var ss []byte
	for _, s := range spans {
		ss = append(ss, field(fieldSSSpans, protowire.BytesType, s)...)
	}
	rs := field(fieldRSResource, protowire.BytesType, res)
	rs = append(rs, field(fieldRSScopeSpans, protowire.BytesType, ss)...)
	return field(fieldRequestResourceSpans, protowire.BytesType, rs)
}

// describe writes attributes as "key=value" in a notation of its own:
// s:string i:int d:double-bits b:bool x:hex-bytes a[...] m{...} e (empty).
func describe(attrs Attrs) []string {
	var out []string
	for _, a := range attrs {
		out = append(out, string(a.Key)+"="+describeValue(a.Value))
	}
	return out
}

func describeValue(v Value) string {
	switch v.Kind {
	case ValueString:
		return "s:" + string(v.Str())
	case ValueInt:
		n, _ := v.Int()
		return "i:" + strconv.FormatInt(n, 10)
	case ValueDouble:
		f, _ := v.Double()
		return "d:" + strconv.FormatUint(math.Float64bits(f), 16)
	case ValueBool:
		b, _ := v.Bool()
		return "b:" + strconv.FormatBool(b)
	case ValueBytes:
		return "x:" + hex.EncodeToString(v.Bytes())
	case ValueArray:
		var items []string
		v.Elems(func(e Value) bool { items = append(items, describeValue(e)); return true })
		return "a[" + strings.Join(items, ",") + "]"
	case ValueMap:
		var items []string
		v.Entries(func(k []byte, e Value) bool { items = append(items, string(k)+"="+describeValue(e)); return true })
		return "m{" + strings.Join(items, ",") + "}"
	}
	return "e"
}

// describePdata is describe for pdata's decoding of the same bytes.
func describePdata(m pcommon.Map) []string {
	var out []string
	m.Range(func(k string, v pcommon.Value) bool {
		out = append(out, k+"="+describePdataValue(v))
		return true
	})
	return out
}

func describePdataValue(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return "s:" + v.Str()
	case pcommon.ValueTypeInt:
		return "i:" + strconv.FormatInt(v.Int(), 10)
	case pcommon.ValueTypeDouble:
		return "d:" + strconv.FormatUint(math.Float64bits(v.Double()), 16)
	case pcommon.ValueTypeBool:
		return "b:" + strconv.FormatBool(v.Bool())
	case pcommon.ValueTypeBytes:
		return "x:" + hex.EncodeToString(v.Bytes().AsRaw())
	case pcommon.ValueTypeSlice:
		var items []string
		for i := range v.Slice().Len() {
			items = append(items, describePdataValue(v.Slice().At(i)))
		}
		return "a[" + strings.Join(items, ",") + "]"
	case pcommon.ValueTypeMap:
		return "m{" + strings.Join(describePdata(v.Map()), ",") + "}"
	}
	return "e"
}

func TestSpanAttrs(t *testing.T) {
	longKey := strings.Repeat("k", 200) // a length of two varint bytes
	valueFirst := append(field(fieldKVValue, protowire.BytesType, intV(7)), field(fieldKVKey, protowire.BytesType, []byte("pdata.order"))...)
	unknownInKV := append(kv("u", strV("x")), field(9, protowire.VarintType, []byte{1})...)
	unknownInAny := kv("w", append(field(15, protowire.BytesType, []byte("??")), intV(-3)...))
	tests := []struct {
		name string
		span []byte
		want []string
	}{
		{"no attributes", spanBytes(), nil},
		{"scalars", spanBytes(spanAttr(kv("s", strV("v"))), spanAttr(kv("i", intV(-42))), spanAttr(kv("d", dblV(0.5))),
			spanAttr(kv("b", boolV(true))), spanAttr(kv("x", bytesV([]byte{0xca, 0xfe})))),
			[]string{"s=s:v", "i=i:-42", "d=d:3fe0000000000000", "b=b:true", "x=x:cafe"}},
		{"value before key, as pdata writes it", spanBytes(spanAttr(valueFirst)), []string{"pdata.order=i:7"}},
		{"unknown fields are skipped", spanBytes(spanAttr(unknownInKV), spanAttr(unknownInAny)), []string{"u=s:x", "w=i:-3"}},
		{"empty value and empty string", spanBytes(spanAttr(field(fieldKVKey, protowire.BytesType, []byte("none"))), spanAttr(kv("es", strV("")))),
			[]string{"none=e", "es=s:"}},
		{"nested values", spanBytes(spanAttr(kv("arr", arrV(strV("a"), intV(1), arrV(boolV(false))))),
			spanAttr(kv("map", mapV(kv("k", strV("v")), kv("inner", mapV(kv("n", dblV(2)))))))),
			[]string{"arr=a[s:a,i:1,a[b:false]]", "map=m{k=s:v,inner=m{n=d:4000000000000000}}"}},
		{"attributes around other fields, in wire order", spanBytes(spanAttr(kv("first", strV("1"))),
			field(fieldSpanName, protowire.BytesType, []byte("op")), spanAttr(kv("second", strV("2")))),
			[]string{"first=s:1", "second=s:2"}},
		{"multi-byte lengths", spanBytes(spanAttr(kv(longKey, strV(strings.Repeat("v", 300))))),
			[]string{longKey + "=s:" + strings.Repeat("v", 300)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := request([][]byte{kv("service.name", strV("svc"))}, tt.span)
			var req Request
			if err := Parse(in, Limits{}, &req); err != nil {
				t.Fatal(err)
			}
			if len(req.Spans) != 1 {
				t.Fatalf("%d spans (rejected %d: %s)", len(req.Spans), req.Rejected, req.RejectReason)
			}
			sp := &req.Spans[0]
			if diff := cmp.Diff(tt.want, describe(req.SpanAttrs(sp))); diff != "" {
				t.Errorf("SpanAttrs (-want +got):\n%s", diff)
			}
			// The raw walk of Span.Attrs must agree.
			var raw []string
			sp.Attrs(func(k []byte, v Value) bool { raw = append(raw, string(k)+"="+describeValue(v)); return true })
			if diff := cmp.Diff(tt.want, raw); diff != "" {
				t.Errorf("Span.Attrs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"service.name=s:svc"}, describe(req.ResourceAttrs(req.SpanResource(sp)))); diff != "" {
				t.Errorf("ResourceAttrs (-want +got):\n%s", diff)
			}
			// pdata decodes the same bytes to the same attributes.
			pd := ptraceotlp.NewExportRequest()
			if err := pd.UnmarshalProto(in); err != nil {
				t.Fatalf("pdata: %v", err)
			}
			pdSpan := pd.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
			if diff := cmp.Diff(tt.want, describePdata(pdSpan.Attributes())); diff != "" {
				t.Errorf("pdata disagrees with the expectation (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSpanAttrsMalformed(t *testing.T) {
	// pdata does not check UTF-8; Parse does, since a backend whose
	// decoder does (any proto3 one) would refuse the whole batch.
	tests := []struct {
		name         string
		kv           []byte
		pdataAccepts bool
	}{
		{"truncated KeyValue", kv("k", strV("value"))[:5], false},
		{"value of the wrong wire type", append(field(fieldKVKey, protowire.BytesType, []byte("k")), field(fieldKVValue, protowire.VarintType, []byte{1})...), false},
		{"key of invalid UTF-8", kv("\xff", strV("v")), true},
		{"string value of invalid UTF-8", kv("k", strV("\xfe")), true},
		{"int value as bytes", kv("k", field(fieldAnyInt, protowire.BytesType, []byte{1})), false},
		{"truncated nested array", kv("k", field(fieldAnyArray, protowire.BytesType, []byte{0x0a, 0x05, 0x0a})), false},
		{"group in a value", kv("k", []byte{0x0b, 0x0c}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := request(nil, spanBytes(spanAttr(tt.kv)))
			var req Request
			if err := Parse(in, Limits{}, &req); err == nil {
				t.Errorf("Parse accepted it: %v", describe(req.SpanAttrs(&req.Spans[0])))
			}
			if err := ptraceotlp.NewExportRequest().UnmarshalProto(in); (err == nil) != tt.pdataAccepts {
				t.Errorf("pdata error = %v; the test's expectation disagrees with pdata", err)
			}
		})
	}
}

// TestSpanAttrsOfRejectedSpan checks that a span rejected on its own leaves
// nothing behind in the shared attribute list.
func TestSpanAttrsOfRejectedSpan(t *testing.T) {
	badID := append(spanAttr(kv("bad", strV("x"))), field(fieldSpanTraceID, protowire.BytesType, make([]byte, 15))...)
	in := request([][]byte{kv("r", intV(1))}, spanBytes(spanAttr(kv("a", strV("1")))), spanBytes(badID), spanBytes(spanAttr(kv("c", strV("3")))))
	var req Request
	for range 2 { // and again on the reused Request
		req.Reset()
		if err := Parse(in, Limits{}, &req); err != nil {
			t.Fatal(err)
		}
		if req.Rejected != 1 || len(req.Spans) != 2 {
			t.Fatalf("rejected %d, accepted %d; want 1, 2", req.Rejected, len(req.Spans))
		}
		got := [][]string{describe(req.SpanAttrs(&req.Spans[0])), describe(req.SpanAttrs(&req.Spans[1])), describe(req.ResourceAttrs(&req.Resources[0]))}
		want := [][]string{{"a=s:1"}, {"c=s:3"}, {"r=i:1"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if len(req.attrs) != 3 {
			t.Errorf("attribute list holds %d entries, want 3", len(req.attrs))
		}
	}
}

func TestAttrsGet(t *testing.T) {
	in := request(nil, spanBytes(spanAttr(kv("k", strV("first"))), spanAttr(kv("n", intV(5))), spanAttr(kv("k", strV("second")))))
	var req Request
	if err := Parse(in, Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	attrs := req.SpanAttrs(&req.Spans[0])
	if v, ok := attrs.Get("k"); !ok || string(v.Str()) != "first" {
		t.Errorf("Get(k) = %v, %v; want the first of the duplicates", v, ok)
	}
	if v, ok := attrs.Get("n"); !ok || v.Bits() != 5 || v.Kind != ValueInt {
		t.Errorf("Get(n) = %v, %v", v, ok)
	}
	if _, ok := attrs.Get("missing"); ok {
		t.Error("Get(missing) found")
	}
}

func TestEvents(t *testing.T) {
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{2})
	ev := sp.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(1_500)
	ev.Attributes().PutStr("exception.type", "io.EOF")
	ev2 := sp.Events().AppendEmpty()
	ev2.SetName("retry")
	ev2.SetTimestamp(2_500)
	var req Request
	if err := Parse(marshal(t, td), Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	var got []string
	req.Spans[0].Events(func(e *Event) bool {
		s := string(e.Name) + "@" + strconv.FormatUint(e.TimeUnixNano, 10)
		e.Attrs(func(k []byte, v Value) bool { s += " " + string(k) + "=" + describeValue(v); return true })
		got = append(got, s)
		return true
	})
	if diff := cmp.Diff([]string{"exception@1500 exception.type=s:io.EOF", "retry@2500"}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	n := 0
	req.Spans[0].Events(func(*Event) bool { n++; return false })
	if n != 1 {
		t.Errorf("Events went on after fn returned false: %d calls", n)
	}
}

// TestParseSteadyStateAllocs checks that parsing into a reused Request and
// reading every attribute allocates nothing once the Request has grown.
func TestParseSteadyStateAllocs(t *testing.T) {
	in := marshal(t, testTraces())
	var req Request
	var sum int
	allocs := testing.AllocsPerRun(100, func() {
		req.Reset()
		if err := Parse(in, Limits{}, &req); err != nil {
			t.Fatal(err)
		}
		for i := range req.Spans {
			for _, a := range req.SpanAttrs(&req.Spans[i]) {
				sum += len(a.Key)
			}
		}
		for i := range req.Resources {
			sum += len(req.ResourceAttrs(&req.Resources[i]))
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}

// FuzzSpanAttrs compares the attributes Parse splits with pdata's decoding
// of the same bytes, for every request both accept whole.
func FuzzSpanAttrs(f *testing.F) {
	f.Add(marshal(f, testTraces()))
	f.Add(request([][]byte{kv("service.name", strV("a"))}, spanBytes(spanAttr(kv("m", mapV(kv("k", arrV(intV(1), bytesV(nil)))))))))
	f.Add(request(nil, spanBytes(spanAttr(field(fieldKVKey, protowire.BytesType, []byte("k"))))))
	f.Fuzz(func(t *testing.T, in []byte) {
		var req Request
		if err := Parse(in, Limits{}, &req); err != nil || req.Rejected > 0 {
			return
		}
		pd := ptraceotlp.NewExportRequest()
		if err := pd.UnmarshalProto(in); err != nil {
			return // FuzzParse in internal/ingest checks acceptance
		}
		// Spans compared as a multiset: pdata moves the deprecated
		// instrumentation_library_spans after scope_spans.
		var got, want []string
		for i := range req.Spans {
			sp := &req.Spans[i]
			got = append(got, strings.Join(describe(req.SpanAttrs(sp)), "\x00")+"\x01"+
				strings.Join(describe(req.ResourceAttrs(req.SpanResource(sp))), "\x00"))
		}
		rss := pd.Traces().ResourceSpans()
		for i := range rss.Len() {
			res := strings.Join(describePdata(rss.At(i).Resource().Attributes()), "\x00")
			for j := range rss.At(i).ScopeSpans().Len() {
				spans := rss.At(i).ScopeSpans().At(j).Spans()
				for k := range spans.Len() {
					want = append(want, strings.Join(describePdata(spans.At(k).Attributes()), "\x00")+"\x01"+res)
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("attributes (-pdata +Parse):\n%s", diff)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	// 100 spans of 10 attributes each, as the sampler benchmark sends.
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	rs.Resource().Attributes().PutStr("host.name", "node-1")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range 100 {
		sp := spans.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{byte(i/10 + 1)})
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
		sp.SetName("GET /api/items/{id}")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(1_000_000_000)
		sp.SetEndTimestamp(1_000_000_000 + pcommon.Timestamp(i)*1000)
		a := sp.Attributes()
		a.PutStr("http.request.method", "GET")
		a.PutStr("http.route", "/api/items/{id}")
		a.PutInt("http.response.status_code", 200)
		a.PutStr("url.path", "/api/items/"+strconv.Itoa(i))
		a.PutStr("server.address", "checkout.internal")
		a.PutInt("server.port", 8080)
		a.PutStr("user_agent.original", "Mozilla/5.0")
		a.PutStr("client.address", "10.0.0."+strconv.Itoa(i))
		a.PutBool("feature.flag", i%2 == 0)
		a.PutDouble("app.ratio", float64(i)/100)
	}
	in := marshal(b, td)
	var req Request
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var keys int
	for b.Loop() {
		req.Reset()
		if err := Parse(in, Limits{}, &req); err != nil {
			b.Fatal(err)
		}
		for i := range req.Spans {
			keys += len(req.SpanAttrs(&req.Spans[i]))
		}
	}
	if keys == 0 {
		b.Fatal("no attributes")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(req.Spans)), "ns/span")
}
