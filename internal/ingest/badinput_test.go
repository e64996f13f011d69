package ingest

import (
	"bytes"
	stdcmp "cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// badInputConfig keeps limits small so oversized inputs are cheap.
func badInputConfig() Config {
	cfg := testConfig()
	cfg.MaxMessageSize = 64 << 10
	cfg.MaxAttributesPerSpan = 4
	return cfg
}

// threeSpans is a request whose middle span has a 15-byte trace ID.
func threeSpans() []byte {
	return encodeRequest("checkout",
		testSpan{traceID: mustHex("aa000000000000000000000000000001"), spanID: mustHex("a100000000000001"), name: "first"},
		testSpan{traceID: mustHex("bb0000000000000000000000000002"), spanID: mustHex("b100000000000002"), name: "short trace id"},
		testSpan{traceID: mustHex("cc000000000000000000000000000003"), spanID: mustHex("c100000000000003"), name: "third"},
	)
}

func threeSpansAccepted() []gotSpan {
	return []gotSpan{
		{TraceID: "aa000000000000000000000000000001", SpanID: "a100000000000001", Name: "first", Service: "checkout"},
		{TraceID: "cc000000000000000000000000000003", SpanID: "c100000000000003", Name: "third", Service: "checkout"},
	}
}

// jsonRequest is an OTLP/JSON request with one span, written by hand from
// the OTLP JSON mapping.
func jsonRequest(traceID, spanID string) string {
	return `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},` +
		`"scopeSpans":[{"scope":{"name":"test-scope"},"spans":[{"traceId":"` + traceID + `","spanId":"` + spanID + `",` +
		`"name":"GET /cart","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000050000000"}]}]}]}`
}

// unknownFieldRequest is a request holding only an unknown field of n zero
// bytes: valid protobuf, no spans, and it compresses to almost nothing.
func unknownFieldRequest(n int) []byte {
	return appendBytesField(nil, 15, make([]byte, n))
}

// hideLength wraps a body so the client cannot know its length and sends it
// chunked.
type hideLength struct{ r io.Reader }

func (h hideLength) Read(p []byte) (int, error) { return h.r.Read(p) }

func TestHTTPBadInput(t *testing.T) {
	manyAttrs := encodeRequest("checkout",
		testSpan{traceID: mustHex(validTraceID), spanID: mustHex("2100000000000001"), name: "few",
			attrs: [][]byte{kvString("a", "1"), kvString("b", "2")}},
		testSpan{traceID: mustHex(validTraceID), spanID: mustHex("2100000000000002"), name: "many",
			attrs: [][]byte{kvString("a", "1"), kvString("b", "2"), kvString("c", "3"), kvString("d", "4"), kvString("e", "5")}},
	)
	allRejected := encodeRequest("checkout",
		testSpan{traceID: mustHex(validTraceID), spanID: mustHex("00000000000000"), name: "7-byte span id"},
		testSpan{spanID: mustHex(validSpanID), name: "no trace id"},
	)
	tests := []struct {
		name            string
		method          string // POST when empty
		contentType     string
		contentEncoding string
		body            func(t testing.TB) io.Reader

		wantStatus   int
		wantCT       string     // response Content-Type
		wantCode     codes.Code // google.rpc.Status code of an error
		wantMsg      string     // in the error or partial-success message
		wantRejected int64
		wantOutcome  outcome
		wantSpans    []gotSpan
	}{
		{
			name: "valid protobuf", contentType: contentTypeProtobuf,
			body:       bytesBody(validRequest()),
			wantStatus: 200, wantCT: contentTypeProtobuf, wantOutcome: outcomeOK, wantSpans: validSpans(),
		},
		{
			name: "valid protobuf gzip", contentType: contentTypeProtobuf, contentEncoding: "gzip",
			body:       func(t testing.TB) io.Reader { return bytes.NewReader(gzipBytes(t, validRequest())) },
			wantStatus: 200, wantCT: contentTypeProtobuf, wantOutcome: outcomeOK, wantSpans: validSpans(),
		},
		{
			name: "valid JSON with charset", contentType: "application/json; charset=utf-8",
			body:       stringBody(jsonRequest(validTraceID, validSpanID)),
			wantStatus: 200, wantCT: contentTypeJSON, wantOutcome: outcomeOK, wantSpans: validSpans(),
		},
		{
			name: "truncated protobuf", contentType: contentTypeProtobuf,
			body:       func(testing.TB) io.Reader { b := validRequest(); return bytes.NewReader(b[:len(b)-3]) },
			wantStatus: 400, wantCT: contentTypeProtobuf, wantCode: codes.InvalidArgument,
			wantMsg: "resource_spans[0]: truncated", wantOutcome: outcomeInvalid,
		},
		{
			name: "protobuf garbage", contentType: contentTypeProtobuf,
			body:       bytesBody([]byte{0xff, 0xff, 0xff, 0xff}),
			wantStatus: 400, wantCT: contentTypeProtobuf, wantCode: codes.InvalidArgument,
			wantMsg: "malformed OTLP request", wantOutcome: outcomeInvalid,
		},
		{
			name: "invalid JSON", contentType: contentTypeJSON,
			body:       stringBody(`{"resourceSpans":[`),
			wantStatus: 400, wantCT: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: "invalid OTLP/JSON", wantOutcome: outcomeInvalid,
		},
		{
			// Found by FuzzHTTPTraces: the decoder's message quotes the bad
			// byte, and the error body must still encode.
			name: "invalid UTF-8 as JSON", contentType: contentTypeJSON,
			body:       bytesBody([]byte{0x8b}),
			wantStatus: 400, wantCT: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: "invalid OTLP/JSON", wantOutcome: outcomeInvalid,
		},
		{
			name: "JSON of the wrong shape", contentType: contentTypeJSON,
			body:       stringBody(`{"resourceSpans":5}`),
			wantStatus: 400, wantCT: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: "invalid OTLP/JSON", wantOutcome: outcomeInvalid,
		},
		{
			name: "wrong content type", contentType: "text/plain",
			body:       bytesBody(validRequest()),
			wantStatus: 415, wantCT: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: `unsupported content type "text/plain"`, wantOutcome: outcomeInvalid,
		},
		{
			name:       "no content type",
			body:       bytesBody(validRequest()),
			wantStatus: 415, wantCT: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: "unsupported content type", wantOutcome: outcomeInvalid,
		},
		{
			name: "wrong method", method: http.MethodGet, contentType: contentTypeProtobuf,
			body:       bytesBody(nil),
			wantStatus: 405, wantCT: contentTypeProtobuf, wantCode: codes.Unimplemented,
			wantMsg: "method GET not allowed", wantOutcome: outcomeInvalid,
		},
		{
			name: "unsupported content encoding", contentType: contentTypeProtobuf, contentEncoding: "br",
			body:       bytesBody(validRequest()),
			wantStatus: 415, wantCT: contentTypeProtobuf, wantCode: codes.InvalidArgument,
			wantMsg: `unsupported content encoding "br"`, wantOutcome: outcomeInvalid,
		},
		{
			name: "oversized body", contentType: contentTypeProtobuf,
			body:       bytesBody(unknownFieldRequest(64 << 10)),
			wantStatus: 413, wantCT: contentTypeProtobuf, wantCode: codes.ResourceExhausted,
			wantMsg: "max_message_size is 64KiB", wantOutcome: outcomeTooLarge,
		},
		{
			name: "oversized chunked body", contentType: contentTypeProtobuf,
			body:       func(testing.TB) io.Reader { return hideLength{bytes.NewReader(unknownFieldRequest(64 << 10))} },
			wantStatus: 413, wantCT: contentTypeProtobuf, wantCode: codes.ResourceExhausted,
			wantMsg: "request body is larger than max_message_size 64KiB", wantOutcome: outcomeTooLarge,
		},
		{
			name: "body exactly at the limit", contentType: contentTypeProtobuf,
			// A 1-byte tag and a 3-byte length, then the field's bytes: 64KiB in all.
			body:       bytesBody(unknownFieldRequest(64<<10 - 4)),
			wantStatus: 200, wantCT: contentTypeProtobuf, wantOutcome: outcomeOK,
		},
		{
			name: "gzip bomb", contentType: contentTypeProtobuf, contentEncoding: "gzip",
			body:       func(t testing.TB) io.Reader { return bytes.NewReader(gzipBytes(t, unknownFieldRequest(8<<20))) },
			wantStatus: 413, wantCT: contentTypeProtobuf, wantCode: codes.ResourceExhausted,
			wantMsg: "decompressed request body is larger than max_message_size 64KiB", wantOutcome: outcomeTooLarge,
		},
		{
			name: "not gzip", contentType: contentTypeJSON, contentEncoding: "gzip",
			body:       stringBody(jsonRequest(validTraceID, validSpanID)),
			wantStatus: 400, wantCT: contentTypeJSON, wantCode: codes.InvalidArgument,
			wantMsg: "decompress gzip body", wantOutcome: outcomeInvalid,
		},
		{
			name: "truncated gzip", contentType: contentTypeProtobuf, contentEncoding: "gzip",
			body:       func(t testing.TB) io.Reader { b := gzipBytes(t, validRequest()); return bytes.NewReader(b[:len(b)-6]) },
			wantStatus: 400, wantCT: contentTypeProtobuf, wantCode: codes.InvalidArgument,
			wantMsg: "decompress gzip body", wantOutcome: outcomeInvalid,
		},
		{
			name: "15-byte trace ID", contentType: contentTypeProtobuf,
			body:       bytesBody(threeSpans()),
			wantStatus: 200, wantCT: contentTypeProtobuf, wantRejected: 1,
			wantMsg:     "resource_spans[0].scope_spans[0].spans[1]: trace_id is 15 bytes, want 16",
			wantOutcome: outcomePartial, wantSpans: threeSpansAccepted(),
		},
		{
			// pdata's JSON decoder refuses a trace ID of the wrong length
			// outright, so OTLP/JSON cannot get a partial success for it.
			// Refused alone, through partial success, as protobuf would be.
			name: "15-byte trace ID in JSON", contentType: contentTypeJSON,
			body:       stringBody(jsonRequest("bb0000000000000000000000000002", validSpanID)),
			wantStatus: 200, wantCT: contentTypeJSON, wantRejected: 1, wantOutcome: outcomePartial,
			wantMsg: "1 spans refused as invalid OTLP/JSON; the first: resourceSpans[0].scopeSpans[0].spans[0]: ID.UnmarshalJSONIter: length mismatch",
		},
		{
			name: "missing trace ID in JSON", contentType: contentTypeJSON,
			body:       stringBody(jsonRequest("", validSpanID)),
			wantStatus: 200, wantCT: contentTypeJSON, wantRejected: 1,
			wantMsg:     "resource_spans[0].scope_spans[0].spans[0]: trace_id is 0 bytes, want 16",
			wantOutcome: outcomePartial,
		},
		{
			name: "too many attributes", contentType: contentTypeProtobuf,
			body:       bytesBody(manyAttrs),
			wantStatus: 200, wantCT: contentTypeProtobuf, wantRejected: 1,
			wantMsg:     "resource_spans[0].scope_spans[0].spans[1]: span has 5 attributes, limit is 4",
			wantOutcome: outcomePartial,
			wantSpans:   []gotSpan{{TraceID: validTraceID, SpanID: "2100000000000001", Name: "few", Service: "checkout"}},
		},
		{
			name: "all spans rejected", contentType: contentTypeProtobuf,
			body:       bytesBody(allRejected),
			wantStatus: 200, wantCT: contentTypeProtobuf, wantRejected: 2,
			wantMsg:     "resource_spans[0].scope_spans[0].spans[0]: span_id is 7 bytes, want 8",
			wantOutcome: outcomePartial,
		},
		{
			name: "empty protobuf", contentType: contentTypeProtobuf,
			body:       bytesBody(nil),
			wantStatus: 200, wantCT: contentTypeProtobuf, wantOutcome: outcomeOK,
		},
		{
			name: "empty JSON object", contentType: contentTypeJSON,
			body:       stringBody(`{}`),
			wantStatus: 200, wantCT: contentTypeJSON, wantOutcome: outcomeOK,
		},
		{
			name: "resource without spans", contentType: contentTypeJSON,
			body:       stringBody(`{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[]}]}]}`),
			wantStatus: 200, wantCT: contentTypeJSON, wantOutcome: outcomeOK,
		},
	}
	rec := &recorder{}
	r, _ := startReceiver(t, badInputConfig(), rec)
	client := newHTTPClient(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := stdcmp.Or(tt.method, http.MethodPost)
			before := requestCount(r, protocolHTTP, tt.wantOutcome)
			callsBefore := rec.callCount()
			res := postHTTP(t, client, r.HTTPAddr(), method, tt.contentType, tt.contentEncoding, tt.body(t))
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %q", res.status, tt.wantStatus, res.body)
			}
			if res.contentType != tt.wantCT {
				t.Errorf("Content-Type = %q, want %q", res.contentType, tt.wantCT)
			}
			if tt.wantStatus == 200 {
				rejected, msg := decodeHTTPSuccess(t, res)
				if rejected != tt.wantRejected || msg != tt.wantMsg && tt.wantRejected > 0 {
					t.Errorf("partial success = (%d, %q), want (%d, %q)", rejected, msg, tt.wantRejected, tt.wantMsg)
				}
				if tt.wantRejected == 0 && len(res.body) > 0 && string(res.body) != "{}" {
					t.Errorf("full success body = %q, want empty", res.body)
				}
			} else {
				st := decodeHTTPStatus(t, res)
				if codes.Code(st.GetCode()) != tt.wantCode || !strings.Contains(st.GetMessage(), tt.wantMsg) {
					t.Errorf("status = (%v, %q), want (%v, containing %q)", codes.Code(st.GetCode()), st.GetMessage(), tt.wantCode, tt.wantMsg)
				}
			}
			if tt.wantStatus == 405 && res.allow != http.MethodPost {
				t.Errorf("Allow = %q, want POST", res.allow)
			}
			if got := requestCount(r, protocolHTTP, tt.wantOutcome) - before; got != 1 {
				t.Errorf("requests_total{outcome=%s} grew by %v, want 1", tt.wantOutcome, got)
			}
			if diff := cmp.Diff(tt.wantSpans, rec.take()); diff != "" {
				t.Errorf("consumed spans (-want +got):\n%s", diff)
			}
			if len(tt.wantSpans) == 0 && rec.callCount() != callsBefore {
				t.Errorf("Consume called for a request without valid spans")
			}

			// The receiver keeps serving: a valid request right after is accepted.
			after := postHTTP(t, client, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader(validRequest()))
			if after.status != 200 {
				t.Fatalf("valid request after %s: status %d, body %q", tt.name, after.status, after.body)
			}
			if diff := cmp.Diff(validSpans(), rec.take()); diff != "" {
				t.Errorf("valid request after %s (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func bytesBody(b []byte) func(testing.TB) io.Reader {
	return func(testing.TB) io.Reader { return bytes.NewReader(b) }
}

func stringBody(s string) func(testing.TB) io.Reader {
	return func(testing.TB) io.Reader { return strings.NewReader(s) }
}

// decodeHTTPSuccess reads an ExportTraceServiceResponse with pdata, in the
// encoding of the response.
func decodeHTTPSuccess(t testing.TB, res httpResult) (rejected int64, msg string) {
	t.Helper()
	resp := ptraceotlp.NewExportResponse()
	var err error
	if res.contentType == contentTypeJSON {
		err = resp.UnmarshalJSON(res.body)
	} else {
		err = resp.UnmarshalProto(res.body)
	}
	if err != nil {
		t.Fatalf("decode response %q: %v", res.body, err)
	}
	return resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage()
}

// decodeHTTPStatus reads a google.rpc.Status in the encoding of the response.
func decodeHTTPStatus(t testing.TB, res httpResult) *spb.Status {
	t.Helper()
	var st spb.Status
	var err error
	if res.contentType == contentTypeJSON {
		err = protojson.Unmarshal(res.body, &st)
	} else {
		err = proto.Unmarshal(res.body, &st)
	}
	if err != nil {
		t.Fatalf("decode error body %q: %v", res.body, err)
	}
	return &st
}

// TestHTTPPartialSuccessJSON checks the JSON response against the OTLP JSON
// mapping: lowerCamelCase names, int64 as a decimal string.
func TestHTTPPartialSuccessJSON(t *testing.T) {
	r, _ := startReceiver(t, badInputConfig(), &recorder{})
	res := postHTTP(t, newHTTPClient(t), r.HTTPAddr(), http.MethodPost, contentTypeJSON, "", strings.NewReader(jsonRequest("", validSpanID)))
	want := `{"partialSuccess":{"rejectedSpans":"1","errorMessage":"resource_spans[0].scope_spans[0].spans[0]: trace_id is 0 bytes, want 16"}}`
	if res.status != 200 || string(res.body) != want {
		t.Errorf("response = %d %s, want 200 %s", res.status, res.body, want)
	}
}

func TestGRPCBadInput(t *testing.T) {
	tests := []struct {
		name     string
		req      []byte
		opts     []grpc.CallOption
		wantCode codes.Code
		wantMsg  string // in the error or the partial-success message

		wantRejected int64
		wantOutcome  outcome
		wantSpans    []gotSpan
	}{
		{name: "valid", req: validRequest(), wantOutcome: outcomeOK, wantSpans: validSpans()},
		{name: "valid gzip", req: validRequest(), opts: []grpc.CallOption{grpc.UseCompressor(grpcgzip.Name)},
			wantOutcome: outcomeOK, wantSpans: validSpans()},
		{name: "truncated protobuf", req: validRequest()[:20],
			wantCode: codes.InvalidArgument, wantMsg: "resource_spans[0]: truncated", wantOutcome: outcomeInvalid},
		{name: "protobuf garbage", req: []byte{0x0a, 0x02, 0xff, 0xff},
			wantCode: codes.InvalidArgument, wantMsg: "malformed OTLP request", wantOutcome: outcomeInvalid},
		{name: "oversized", req: unknownFieldRequest(64 << 10),
			wantCode: codes.ResourceExhausted, wantMsg: "larger than max", wantOutcome: outcomeTooLarge},
		{name: "gzip bomb", req: unknownFieldRequest(8 << 20), opts: []grpc.CallOption{grpc.UseCompressor(grpcgzip.Name)},
			wantCode: codes.ResourceExhausted, wantMsg: "after decompression larger than max", wantOutcome: outcomeTooLarge},
		{name: "15-byte trace ID", req: threeSpans(),
			wantRejected: 1, wantMsg: "resource_spans[0].scope_spans[0].spans[1]: trace_id is 15 bytes, want 16",
			wantOutcome: outcomePartial, wantSpans: threeSpansAccepted()},
		{name: "empty request", req: nil, wantOutcome: outcomeOK},
	}
	rec := &recorder{}
	r, _ := startReceiver(t, badInputConfig(), rec)
	cc := dialRaw(t, r.GRPCAddr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := requestCount(r, protocolGRPC, tt.wantOutcome)
			callsBefore := rec.callCount()
			resp, err := export(t.Context(), cc, tt.req, tt.opts...)
			st := status.Convert(err)
			if st.Code() != tt.wantCode {
				t.Fatalf("code = %v (%q), want %v", st.Code(), st.Message(), tt.wantCode)
			}
			if tt.wantCode != codes.OK && !strings.Contains(st.Message(), tt.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", st.Message(), tt.wantMsg)
			}
			if tt.wantCode == codes.OK {
				pr := ptraceotlp.NewExportResponse()
				if err := pr.UnmarshalProto(resp); err != nil {
					t.Fatalf("decode response: %v", err)
				}
				ps := pr.PartialSuccess()
				if ps.RejectedSpans() != tt.wantRejected || ps.ErrorMessage() != tt.wantMsg {
					t.Errorf("partial success = (%d, %q), want (%d, %q)", ps.RejectedSpans(), ps.ErrorMessage(), tt.wantRejected, tt.wantMsg)
				}
				if tt.wantRejected == 0 && len(resp) != 0 {
					t.Errorf("full success response = %x, want empty", resp)
				}
			}
			// grpc-go writes the status of a message it could not read
			// (too large, undecodable) before it returns the error to the
			// handler, which counts it: the client can see the answer a
			// moment before the counter moves.
			got := awaitGrowth(t, func() float64 { return requestCount(r, protocolGRPC, tt.wantOutcome) - before })
			if got != 1 {
				t.Errorf("requests_total{outcome=%s} grew by %v, want 1", tt.wantOutcome, got)
			}
			if diff := cmp.Diff(tt.wantSpans, rec.take()); diff != "" {
				t.Errorf("consumed spans (-want +got):\n%s", diff)
			}
			if len(tt.wantSpans) == 0 && rec.callCount() != callsBefore {
				t.Errorf("Consume called for a request without valid spans")
			}

			if _, err := export(t.Context(), cc, validRequest()); err != nil {
				t.Fatalf("valid request after %s: %v", tt.name, err)
			}
			if diff := cmp.Diff(validSpans(), rec.take()); diff != "" {
				t.Errorf("valid request after %s (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

// TestGRPCUnknownMethod checks that the hand-registered service answers
// only Export.
func TestGRPCUnknownMethod(t *testing.T) {
	r, _ := startReceiver(t, testConfig(), &recorder{})
	cc := dialRaw(t, r.GRPCAddr())
	req := validRequest()
	var resp []byte
	err := cc.Invoke(context.Background(), "/"+traceServiceName+"/Nope", &req, &resp)
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v, want Unimplemented", err)
	}
}

// TestRefusalLogged checks that a refused request is logged at debug level
// with its reason and remote address, and without the payload.
func TestRefusalLogged(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig()
	r, err := New(cfg, Settings{
		Consumer: &recorder{},
		Logger:   slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	const secret = "s3cr3t-payload-value"
	postHTTP(t, newHTTPClient(t), r.HTTPAddr(), http.MethodPost, contentTypeJSON, "",
		strings.NewReader(`{"resourceSpans":[{"resource":{"attributes":[{"key":"`+secret+`"`))
	if err := r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	var found bool
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] != "refused OTLP request" {
			continue
		}
		found = true
		reason, _ := rec["reason"].(string)
		remote, _ := rec["remote_addr"].(string)
		if rec["level"] != "DEBUG" || rec["protocol"] != "http" || !strings.HasPrefix(remote, "127.0.0.1:") ||
			!strings.HasPrefix(reason, "invalid OTLP/JSON: ") {
			t.Errorf("log record = %v, want level DEBUG, protocol http, a remote address and the reason", rec)
		}
	}
	if !found {
		t.Errorf("no refusal logged; logs:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("logs contain the payload:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger used by server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// awaitGrowth polls grew until it is positive, for at most ten seconds, and
// returns its last value. It waits on grpc-go's goroutines, which the
// test cannot step.
func awaitGrowth(t *testing.T, grew func() float64) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for grew() <= 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return grew()
}
