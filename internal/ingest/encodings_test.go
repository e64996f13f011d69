package ingest

import (
	"bytes"
	"compress/zlib"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/codes"
)

// TestJSONBadSpanRefusedAlone: a JSON body whose middle span has a bad
// trace ID is accepted but for that span, which partial success names;
// the spans around it reach the consumer with their resource and scope.
func TestJSONBadSpanRefusedAlone(t *testing.T) {
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
	  "scopeSpans":[{"scope":{"name":"lib"},"spans":[
	    {"traceId":"` + validTraceID + `","spanId":"1000000000000001","name":"first","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000050000000"},
	    {"traceId":"nothex","spanId":"1000000000000002","name":"bad","kind":2},
	    {"traceId":"` + validTraceID + `","spanId":"1000000000000003","name":"third","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000050000000"}]}]},
	  {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"payments"}}]},
	   "scope_spans":[{"spans":[{"traceId":"` + validTraceID + `","spanId":"2000000000000001","name":"charge","kind":3}]}]}]}`
	rec := &recorder{}
	r, _ := startReceiver(t, testConfig(), rec)
	res := postHTTP(t, newHTTPClient(t), r.HTTPAddr(), http.MethodPost, contentTypeJSON, "", strings.NewReader(body))
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	rejected, msg := decodeHTTPSuccess(t, res)
	if rejected != 1 || !strings.Contains(msg, "resourceSpans[0].scopeSpans[0].spans[1]:") {
		t.Errorf("partial success (%d, %q), want 1 naming resourceSpans[0].scopeSpans[0].spans[1]", rejected, msg)
	}
	got := rec.take()
	var names []string
	for _, s := range got {
		names = append(names, s.Service+"/"+s.Name)
	}
	if strings.Join(names, ",") != "checkout/first,checkout/third,payments/charge" {
		t.Errorf("spans taken %v, want first, third (checkout) and charge (payments)", names)
	}
	// Not OTLP/JSON at all is still refused whole.
	res = postHTTP(t, newHTTPClient(t), r.HTTPAddr(), http.MethodPost, contentTypeJSON, "", strings.NewReader(`{"resourceSpans": 7}`))
	if res.status != 400 {
		t.Errorf("wrong shape: status %d, want 400", res.status)
	}
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func zlibBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestContentEncodings: zstd and deflate (zlib) bodies are taken like
// gzip, and the decompressed size is bounded by max_message_size.
func TestContentEncodings(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageSize = 64 << 10
	rec := &recorder{}
	r, _ := startReceiver(t, cfg, rec)
	c := newHTTPClient(t)
	for _, tc := range []struct {
		encoding string
		body     []byte
		status   int
		msg      string
	}{
		{"zstd", zstdBytes(t, validRequest()), 200, ""},
		{"deflate", zlibBytes(t, validRequest()), 200, ""},
		{"zstd", zstdBytes(t, unknownFieldRequest(8<<20)), 413, "decompressed request body is larger than max_message_size 64KiB"},
		{"deflate", zlibBytes(t, unknownFieldRequest(8<<20)), 413, "decompressed request body is larger than max_message_size 64KiB"},
		{"zstd", []byte("not zstd at all"), 400, "decompress zstd body"},
		{"br", validRequest(), 415, `unsupported content encoding "br", use gzip, zstd, deflate or none`},
	} {
		res := postHTTP(t, c, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, tc.encoding, bytes.NewReader(tc.body))
		if res.status != tc.status {
			t.Errorf("%s (%d bytes): status %d, want %d: %q", tc.encoding, len(tc.body), res.status, tc.status, res.body)
			continue
		}
		if tc.status == 200 {
			if got := rec.take(); len(got) != len(validSpans()) {
				t.Errorf("%s: %d spans taken, want %d", tc.encoding, len(got), len(validSpans()))
			}
			continue
		}
		if st := decodeHTTPStatus(t, res); !strings.Contains(st.GetMessage(), tc.msg) {
			t.Errorf("%s: message %q, want it to contain %q", tc.encoding, st.GetMessage(), tc.msg)
		}
	}
}

// TestMetricsAndLogsPathsNameTheTracesEndpoint: an SDK pointed at the
// receiver with OTEL_EXPORTER_OTLP_ENDPOINT also sends metrics and logs;
// they get a 404 that says where traces go.
func TestMetricsAndLogsPathsNameTheTracesEndpoint(t *testing.T) {
	r, _ := startReceiver(t, testConfig(), &recorder{})
	for _, path := range []string{"/v1/metrics", "/v1/logs", "/"} {
		resp, err := http.Post("http://"+r.HTTPAddr()+path, contentTypeProtobuf, bytes.NewReader(validRequest()))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res := httpResult{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: b}
		if res.status != 404 {
			t.Fatalf("%s: status %d, want 404", path, res.status)
		}
		st := decodeHTTPStatus(t, res)
		if codes.Code(st.GetCode()) != codes.NotFound || !strings.Contains(st.GetMessage(), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://<host>:4318/v1/traces") ||
			!strings.Contains(st.GetMessage(), path+" is not served") {
			t.Errorf("%s: %v %q", path, codes.Code(st.GetCode()), st.GetMessage())
		}
	}
}
