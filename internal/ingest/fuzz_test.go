package ingest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

var update = flag.Bool("update", false, "rewrite the seed corpora in testdata/fuzz")

// richTraces builds, with pdata, a request that uses most of the schema:
// two resources, several scopes, every attribute type, events, links,
// statuses, trace state and flags.
func richTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	for r, service := range []string{"checkout", "payments"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
		attrs := rs.Resource().Attributes()
		attrs.PutStr("service.name", service)
		attrs.PutInt("process.pid", int64(100+r))
		for s := range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(fmt.Sprintf("scope-%d", s))
			ss.Scope().SetVersion("1.0.0")
			ss.Scope().Attributes().PutBool("scope.flag", true)
			for i := range 3 {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{byte(r + 1), byte(s + 1), byte(i + 1), 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
				sp.SetSpanID(pcommon.SpanID{byte(r + 1), byte(s + 1), byte(i + 1), 4, 5, 6, 7, 8})
				if i > 0 {
					sp.SetParentSpanID(pcommon.SpanID{byte(r + 1), byte(s + 1), 1, 4, 5, 6, 7, 8})
				}
				sp.SetName(fmt.Sprintf("%s op %d.%d", service, s, i))
				sp.SetKind(ptrace.SpanKind(i%5 + 1))
				sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + i))
				sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_500_000_000 + i))
				sp.TraceState().FromRaw("vendor=x,ot=th:8")
				sp.SetFlags(1)
				a := sp.Attributes()
				a.PutStr("http.route", "/api/items/{id}")
				a.PutInt("http.response.status_code", int64(200+100*i))
				a.PutDouble("ratio", 0.25)
				a.PutBool("cached", i%2 == 0)
				a.PutEmptyBytes("blob").FromRaw([]byte{0, 1, 2})
				a.PutEmptySlice("tags").AppendEmpty().SetStr("a")
				m := a.PutEmptyMap("nested")
				m.PutStr("k", "v")
				m.PutEmptyMap("deeper").PutInt("n", 1)
				ev := sp.Events().AppendEmpty()
				ev.SetName("exception")
				ev.SetTimestamp(pcommon.Timestamp(1_700_000_000_100_000_000))
				ev.Attributes().PutStr("exception.message", "boom")
				ln := sp.Links().AppendEmpty()
				ln.SetTraceID(pcommon.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
				ln.SetSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, 9, 9})
				ln.Attributes().PutStr("link", "yes")
				if i == 2 {
					sp.Status().SetCode(ptrace.StatusCodeError)
					sp.Status().SetMessage("failed")
				}
			}
		}
	}
	return td
}

func richRequestProto(t testing.TB) []byte {
	b, err := ptraceotlp.NewExportRequestFromTraces(richTraces()).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func richRequestJSON(t testing.TB) []byte {
	b, err := ptraceotlp.NewExportRequestFromTraces(richTraces()).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// httpSeed is one FuzzHTTPTraces input.
type httpSeed struct {
	name         string
	body         []byte
	json, gzip   bool
	corpusOnFile bool // also written to testdata/fuzz by -update
}

func httpSeeds(t testing.TB) []httpSeed {
	return []httpSeed{
		{name: "valid-protobuf", body: validRequest(), corpusOnFile: true},
		{name: "rich-protobuf", body: richRequestProto(t), corpusOnFile: true},
		{name: "rich-protobuf-gzip", body: gzipBytes(t, richRequestProto(t)), gzip: true, corpusOnFile: true},
		{name: "partial-protobuf", body: threeSpans(), corpusOnFile: true},
		{name: "rich-json", body: richRequestJSON(t), json: true, corpusOnFile: true},
		{name: "valid-json-gzip", body: gzipBytes(t, []byte(jsonRequest(validTraceID, validSpanID))), json: true, gzip: true, corpusOnFile: true},
		{name: "partial-json", body: []byte(jsonRequest("", validSpanID)), json: true, corpusOnFile: true},
		{name: "empty", body: nil},
		{name: "empty-json", body: []byte("{}"), json: true},
		{name: "truncated", body: validRequest()[:10]},
	}
}

// TestFuzzSeeds keeps the committed seed corpora in step with the
// generators above: run with -update to rewrite them.
func TestFuzzSeeds(t *testing.T) {
	files := map[string]string{}
	exact := map[string]bool{} // gzip output may change with the Go release
	for _, s := range httpSeeds(t) {
		if s.corpusOnFile {
			name := filepath.Join("FuzzHTTPTraces", s.name)
			files[name] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\nbool(%v)\n", s.body, s.json, s.gzip)
			exact[name] = !s.gzip
		}
	}
	for name, b := range parseSeeds(t) {
		files[filepath.Join("FuzzParse", name)] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		exact[filepath.Join("FuzzParse", name)] = true
	}
	for name, content := range files {
		path := filepath.Join("testdata", "fuzz", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed %s: %v (run go test -run TestFuzzSeeds -update)", name, err)
			continue
		}
		if exact[name] && string(got) != content {
			t.Errorf("seed %s is stale (run go test -run TestFuzzSeeds -update)", name)
		}
	}
}

// checkingConsumer asserts what every Consumer may rely on; t is the
// current fuzz input's (inputs run one at a time).
type checkingConsumer struct{ t *testing.T }

func (c *checkingConsumer) Consume(_ context.Context, req *otlp.Request) error {
	for i := range req.Spans {
		s := &req.Spans[i]
		if s.TraceID.IsZero() || s.SpanID.IsZero() {
			c.t.Errorf("consumed span %d has a zero ID: %v %v", i, s.TraceID, s.SpanID)
		}
		if !utf8.Valid(s.Name()) {
			c.t.Errorf("consumed span %d has an invalid UTF-8 name %q", i, s.Name())
		}
		_ = req.SpanResource(s).ServiceName
	}
	return nil
}

// FuzzHTTPTraces feeds arbitrary bodies to the OTLP/HTTP handler as
// protobuf or JSON, compressed or not. It must answer 200, 400 or 413 with a
// well-formed body, never panic, and keep serving.
func FuzzHTTPTraces(f *testing.F) {
	for _, s := range httpSeeds(f) {
		f.Add(s.body, s.json, s.gzip)
	}
	cfg := testConfig()
	cfg.MaxMessageSize = 1 << 20
	cfg.OTLPGRPC = "" // the handler is called directly; no server runs
	consumer := &checkingConsumer{}
	r, err := New(cfg, Settings{Consumer: consumer})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		if err := r.Shutdown(context.Background()); err != nil {
			f.Error(err)
		}
	})
	f.Fuzz(func(t *testing.T, body []byte, isJSON, gzipped bool) {
		consumer.t = t
		ct := contentTypeProtobuf
		if isJSON {
			ct = contentTypeJSON
		}
		req := httptest.NewRequest(http.MethodPost, tracesPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if gzipped {
			req.Header.Set("Content-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		r.serveTraces(w, req)
		res := httpResult{status: w.Code, contentType: w.Header().Get("Content-Type"), body: w.Body.Bytes()}
		if res.contentType != ct {
			t.Errorf("response Content-Type = %q, want %q", res.contentType, ct)
		}
		switch res.status {
		case http.StatusOK:
			rejected, msg := decodeHTTPSuccess(t, res)
			if rejected < 0 || (rejected > 0) != (msg != "") {
				t.Errorf("partial success (%d, %q): a count needs a message and only then", rejected, msg)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if st := decodeHTTPStatus(t, res); st.GetMessage() == "" || st.GetCode() == 0 {
				t.Errorf("error status without code or message: %v", st)
			}
		default:
			t.Errorf("status %d, want 200, 400 or 413", res.status)
		}

		// The handler keeps working after any input.
		req = httptest.NewRequest(http.MethodPost, tracesPath, bytes.NewReader(validRequest()))
		req.Header.Set("Content-Type", contentTypeProtobuf)
		w = httptest.NewRecorder()
		r.serveTraces(w, req)
		if w.Code != http.StatusOK {
			t.Errorf("valid request after fuzz input: status %d, body %q", w.Code, w.Body.Bytes())
		}
	})
}

func parseSeeds(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"valid":            validRequest(),
		"rich":             richRequestProto(t),
		"short-trace-id":   threeSpans(),
		"unknown-field":    unknownFieldRequest(3),
		"resource-after":   resourceAfterScopeSpans(),
		"repeated-service": repeatedServiceName(),
	}
}

// resourceAfterScopeSpans puts the resource after its scope spans, which
// protobuf allows.
func resourceAfterScopeSpans() []byte {
	ss := appendBytesField(nil, 2, encodeSpan(testSpan{traceID: mustHex(validTraceID), spanID: mustHex(validSpanID), name: "late resource"}))
	rs := appendBytesField(nil, 2, ss)
	rs = appendBytesField(rs, 1, appendBytesField(nil, 1, kvString("service.name", "after")))
	return appendBytesField(nil, 1, rs)
}

// repeatedServiceName has service.name twice in one resource.
func repeatedServiceName() []byte {
	res := appendBytesField(nil, 1, kvString("service.name", "first"))
	res = appendBytesField(res, 1, kvString("service.name", "second"))
	ss := appendBytesField(nil, 2, encodeSpan(testSpan{traceID: mustHex(validTraceID), spanID: mustHex(validSpanID), name: "x"}))
	rs := appendBytesField(nil, 1, res)
	rs = appendBytesField(rs, 2, ss)
	return appendBytesField(nil, 1, rs)
}

// pdataSpan is what the differential check compares.
type pdataSpan struct {
	TraceID, SpanID, Parent string
	Name                    string
	Start, End              uint64
}

func fromPdata(sp ptrace.Span) pdataSpan {
	p := pdataSpan{
		TraceID: sp.TraceID().String(), SpanID: sp.SpanID().String(),
		Name: sp.Name(), Start: uint64(sp.StartTimestamp()), End: uint64(sp.EndTimestamp()),
	}
	if !sp.ParentSpanID().IsEmpty() {
		p.Parent = sp.ParentSpanID().String()
	}
	return p
}

func fromParse(s *otlp.Span) pdataSpan {
	return pdataSpan{
		TraceID: s.TraceID.String(), SpanID: s.SpanID.String(), Parent: parentString(s.ParentSpanID),
		Name: string(s.Name()), Start: s.StartUnixNano, End: s.EndUnixNano,
	}
}

// FuzzParse compares otlp.Parse with pdata's decoder: a request pdata
// rejects must not be accepted whole by Parse, and every span Parse accepts
// must be in pdata's decoding with the same IDs, name and times.
func FuzzParse(f *testing.F) {
	for _, b := range parseSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req otlp.Request
		perr := otlp.Parse(b, otlp.Limits{}, &req)
		pr := ptraceotlp.NewExportRequest()
		pderr := pr.UnmarshalProto(b)
		if perr != nil {
			if !errors.Is(perr, otlp.ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", perr)
			}
			return
		}
		if pderr != nil && req.Rejected == 0 {
			t.Fatalf("pdata rejects the request (%v) but Parse accepted all %d spans", pderr, len(req.Spans))
		}
		if (req.Rejected > 0) != (req.RejectReason != "") {
			t.Fatalf("Rejected = %d with reason %q", req.Rejected, req.RejectReason)
		}
		// Each accepted span alone, wrapped in a request, decodes with pdata
		// to the same span.
		for i := range req.Spans {
			s := &req.Spans[i]
			alone := appendBytesField(nil, 1, appendBytesField(nil, 2, appendBytesField(nil, 2, s.Raw)))
			one := ptraceotlp.NewExportRequest()
			if err := one.UnmarshalProto(alone); err != nil {
				t.Fatalf("span %d accepted by Parse, rejected by pdata: %v", i, err)
			}
			if one.Traces().SpanCount() != 1 {
				t.Fatalf("span %d alone decodes to %d spans with pdata", i, one.Traces().SpanCount())
			}
			if got, want := fromParse(s), fromPdata(one.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)); got != want {
				t.Fatalf("span %d: Parse %+v, pdata %+v", i, got, want)
			}
		}
		if pderr != nil {
			return
		}
		// Both accepted: the accepted spans are, in order, a subsequence of
		// pdata's, with the right resource, and the counts add up.
		type entry struct {
			span    pdataSpan
			service string
			unique  bool // service.name appears at most once
		}
		var all []entry
		rss := pr.Traces().ResourceSpans()
		for i := range rss.Len() {
			service, n := "", 0
			rss.At(i).Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
				if k == "service.name" {
					n++
					if v.Type() == pcommon.ValueTypeStr {
						service = v.Str()
					}
				}
				return true
			})
			sss := rss.At(i).ScopeSpans()
			for j := range sss.Len() {
				spans := sss.At(j).Spans()
				for k := range spans.Len() {
					all = append(all, entry{fromPdata(spans.At(k)), service, n <= 1})
				}
			}
		}
		if got := len(req.Spans) + req.Rejected; got != len(all) {
			t.Fatalf("Parse accepted %d and rejected %d spans, pdata decoded %d", len(req.Spans), req.Rejected, len(all))
		}
		next := 0
		for i := range req.Spans {
			s := &req.Spans[i]
			want := fromParse(s)
			for next < len(all) && all[next].span != want {
				next++
			}
			if next == len(all) {
				t.Fatalf("span %d (%+v) accepted by Parse is not in pdata's decoding in order", i, want)
			}
			if e := all[next]; e.unique && e.service != req.SpanResource(s).ServiceName {
				t.Fatalf("span %d: service.name %q, pdata %q", i, req.SpanResource(s).ServiceName, e.service)
			}
			next++
		}
	})
}
