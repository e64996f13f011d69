package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gotSpan is what a recording consumer keeps of a span (copied, per the
// Consumer contract).
type gotSpan struct {
	TraceID string
	SpanID  string
	Parent  string
	Name    string
	Service string
}

// recorder is a Consumer that records every span, or fails with err.
type recorder struct {
	mu    sync.Mutex
	spans []gotSpan
	calls int
	err   error
	// block, when set, is waited on inside Consume (after entered is
	// signalled), so tests can hold a request in flight.
	entered chan struct{}
	block   chan struct{}
}

func (c *recorder) Consume(ctx context.Context, req *otlp.Request) error {
	if c.entered != nil {
		c.entered <- struct{}{}
	}
	if c.block != nil {
		select {
		case <-c.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.err != nil {
		return c.err
	}
	for i := range req.Spans {
		s := &req.Spans[i]
		c.spans = append(c.spans, gotSpan{
			TraceID: s.TraceID.String(),
			SpanID:  s.SpanID.String(),
			Parent:  parentString(s.ParentSpanID),
			Name:    string(s.Name()),
			Service: req.SpanResource(s).ServiceName,
		})
	}
	return nil
}

func parentString(id otlp.SpanID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

// take returns the spans recorded so far, sorted, and forgets them.
func (c *recorder) take() []gotSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.spans
	c.spans = nil
	sortSpans(out)
	return out
}

func (c *recorder) callCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func sortSpans(s []gotSpan) {
	slices.SortFunc(s, func(a, b gotSpan) int { return strings.Compare(a.TraceID+a.SpanID, b.TraceID+b.SpanID) })
}

// testConfig is the default config on free loopback ports.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.OTLPGRPC = "127.0.0.1:0"
	cfg.OTLPHTTP = "127.0.0.1:0"
	return cfg
}

// startReceiver starts a receiver that is shut down when the test ends.
func startReceiver(t testing.TB, cfg Config, c Consumer) (*Receiver, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := New(cfg, Settings{Consumer: c, Registerer: reg})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return r, reg
}

// requestCount reads tailgate_ingest_requests_total for one protocol and
// outcome.
func requestCount(r *Receiver, p protocol, o outcome) float64 {
	return metricValue(r.metrics.requests.WithLabelValues(p.String(), o.String()))
}

// metricValue reads a counter or gauge (prometheus/testutil would pull in a
// module go.mod does not have).
func metricValue(m prometheus.Metric) float64 {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		panic(err)
	}
	switch {
	case pb.Counter != nil:
		return pb.Counter.GetValue()
	case pb.Gauge != nil:
		return pb.Gauge.GetValue()
	}
	panic("not a counter or gauge")
}

// --- A hand-written OTLP encoder, independent of internal/otlp. ---

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// kvString encodes a KeyValue with a string value.
func kvString(key, val string) []byte {
	anyValue := appendBytesField(nil, 1, []byte(val)) // AnyValue.string_value
	kv := appendBytesField(nil, 1, []byte(key))       // KeyValue.key
	return appendBytesField(kv, 2, anyValue)          // KeyValue.value
}

// testSpan describes a span to encode; IDs are raw bytes so tests can use
// wrong lengths.
type testSpan struct {
	traceID, spanID, parent []byte
	name                    string
	attrs                   [][]byte // encoded KeyValues
}

func encodeSpan(s testSpan) []byte {
	var b []byte
	if s.traceID != nil {
		b = appendBytesField(b, 1, s.traceID)
	}
	if s.spanID != nil {
		b = appendBytesField(b, 2, s.spanID)
	}
	if s.parent != nil {
		b = appendBytesField(b, 4, s.parent)
	}
	b = appendBytesField(b, 5, []byte(s.name))
	b = protowire.AppendTag(b, 6, protowire.VarintType) // kind
	b = protowire.AppendVarint(b, 2)                    // SERVER
	b = protowire.AppendTag(b, 7, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 1_700_000_000_000_000_000)
	b = protowire.AppendTag(b, 8, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 1_700_000_000_050_000_000)
	for _, a := range s.attrs {
		b = appendBytesField(b, 9, a)
	}
	return b
}

// encodeRequest encodes an ExportTraceServiceRequest with one
// resource_spans of the service and one scope_spans holding the spans.
func encodeRequest(service string, spans ...testSpan) []byte {
	resource := appendBytesField(nil, 1, kvString("service.name", service))
	scope := appendBytesField(nil, 1, []byte("test-scope"))
	ss := appendBytesField(nil, 1, scope)
	for _, s := range spans {
		ss = appendBytesField(ss, 2, encodeSpan(s))
	}
	rs := appendBytesField(nil, 1, resource)
	rs = appendBytesField(rs, 2, ss)
	return appendBytesField(nil, 1, rs)
}

// The IDs of the standard valid request.
var (
	validTraceID = "0102030405060708090a0b0c0d0e0f10"
	validSpanID  = "1112131415161718"
)

// validRequest is a one-span request from service "checkout".
func validRequest() []byte {
	return encodeRequest("checkout", testSpan{traceID: mustHex(validTraceID), spanID: mustHex(validSpanID), name: "GET /cart"})
}

func validSpans() []gotSpan {
	return []gotSpan{{TraceID: validTraceID, SpanID: validSpanID, Name: "GET /cart", Service: "checkout"}}
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// --- Clients ---

// newHTTPClient returns a client whose idle connections close at cleanup.
func newHTTPClient(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

type httpResult struct {
	status      int
	contentType string
	retryAfter  string
	allow       string
	body        []byte
}

func postHTTP(t testing.TB, c *http.Client, addr, method, contentType, contentEncoding string, body io.Reader) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+tracesPath, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, tracesPath, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return httpResult{
		status:      resp.StatusCode,
		contentType: resp.Header.Get("Content-Type"),
		retryAfter:  resp.Header.Get("Retry-After"),
		allow:       resp.Header.Get("Allow"),
		body:        b,
	}
}

// clientCodec sends and receives raw bytes on the client side.
type clientCodec struct{}

func (clientCodec) Name() string { return "proto" }

func (clientCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (clientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// dialRaw opens a gRPC connection that sends raw request bytes.
func dialRaw(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(clientCodec{}), grpc.MaxCallSendMsgSize(1<<30)),
	}, opts...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// export sends raw request bytes and returns the raw response bytes.
func export(ctx context.Context, cc *grpc.ClientConn, req []byte, opts ...grpc.CallOption) ([]byte, error) {
	var resp []byte
	err := cc.Invoke(ctx, exportMethod, &req, &resp, opts...)
	return resp, err
}

// newPost builds an OTLP/HTTP protobuf request.
func newPost(addr string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+tracesPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentTypeProtobuf)
	return req, nil
}
