package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Levels of jsonDeepAttribute: the request object is level 1, then
// resourceSpans [2, {3, scopeSpans [4, {5, spans [6, the span {7,
// attributes [8, the KeyValue {9 and its AnyValue {10. Each arrayValue
// wrapping adds three: {"arrayValue":{"values":[ <AnyValue>.
const (
	jsonDeepPrefix = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},` +
		`"scopeSpans":[{"scope":{"name":"test-scope"},"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"1112131415161718",` +
		`"name":"GET /cart","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000050000000",` +
		`"attributes":[{"key":"deep","value":`
	jsonWrapOpen  = `{"arrayValue":{"values":[`
	jsonWrapClose = `]}}`
)

// jsonDeepAttribute is a valid one-span OTLP/JSON request whose span has an
// attribute of arrays nested k times: its deepest level is 10+3k.
func jsonDeepAttribute(k int) string {
	return jsonDeepPrefix + strings.Repeat(jsonWrapOpen, k) + `{"intValue":"1"}` + strings.Repeat(jsonWrapClose, k) + `}]}]}]}]}`
}

func postJSON(t testing.TB, c *http.Client, addr string, body []byte) httpResult {
	t.Helper()
	return postHTTP(t, c, addr, http.MethodPost, contentTypeJSON, "", bytes.NewReader(body))
}

func TestJSONDepthLimit(t *testing.T) {
	rec := &recorder{}
	r, _ := startReceiver(t, testConfig(), rec)
	hc := newHTTPClient(t)

	// 10+3*5 = 25 levels: decoded and consumed.
	if res := postJSON(t, hc, r.HTTPAddr(), []byte(jsonDeepAttribute(5))); res.status != http.StatusOK {
		t.Fatalf("25 levels: HTTP %d %s, want 200", res.status, res.body)
	}
	if got := len(rec.take()); got != 1 {
		t.Errorf("25 levels: %d spans consumed, want 1", got)
	}
	// 10+3*18 = 64 levels: past the depth check, to be refused by the OTLP
	// parser's own limit of 16 nested values.
	res := postJSON(t, hc, r.HTTPAddr(), []byte(jsonDeepAttribute(18)))
	if msg := decodeHTTPStatus(t, res).GetMessage(); res.status != http.StatusBadRequest || !strings.Contains(msg, "values nested deeper than 16") {
		t.Errorf("64 levels: HTTP %d %q, want 400 from the OTLP parser's nesting limit", res.status, msg)
	}

	// 67 levels: refused at the second brace of the 19th wrapping, whose
	// first brace is level 64.
	res = postJSON(t, hc, r.HTTPAddr(), []byte(jsonDeepAttribute(19)))
	offset := len(jsonDeepPrefix) + 18*len(jsonWrapOpen) + len(`{"arrayValue":`)
	wantMsg := fmt.Sprintf("invalid OTLP/JSON: OTLP/JSON nested deeper than 64 levels at byte offset %d", offset)
	st := decodeHTTPStatus(t, res)
	if res.status != http.StatusBadRequest || codes.Code(st.GetCode()) != codes.InvalidArgument || st.GetMessage() != wantMsg {
		t.Errorf("67 levels: HTTP %d %v %q, want 400 InvalidArgument %q", res.status, codes.Code(st.GetCode()), st.GetMessage(), wantMsg)
	}
	if got := rec.callCount(); got != 1 {
		t.Errorf("consumer called %d times, want once (for the 25-level request only)", got)
	}
	if got := requestCount(r, protocolHTTP, outcomeInvalid); got != 2 {
		t.Errorf("requests_total{outcome=invalid} = %v, want 2", got)
	}
}

// TestDeepJSONBodiesConcurrently sends bodies of nothing but opening
// brackets from many clients at once: each is refused, either for its depth
// or for the OTLP/JSON concurrency limit, and valid requests of both
// encodings are accepted afterwards.
func TestDeepJSONBodiesConcurrently(t *testing.T) {
	const clients = 16
	rec := &recorder{}
	cfg := testConfig()
	cfg.MaxConcurrentJSONRequests = 2
	r, _ := startReceiver(t, cfg, rec)
	hc := newHTTPClient(t)

	brackets := bytes.Repeat([]byte("["), 1<<20)
	attribute := deepAttributeBody(1 << 20) // issue 10's shape
	var wg sync.WaitGroup
	statuses := make([]int, clients)
	for i := range clients {
		wg.Go(func() {
			body := brackets
			if i%2 == 1 {
				body = attribute
			}
			req, err := http.NewRequest(http.MethodPost, "http://"+r.HTTPAddr()+tracesPath, bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Content-Type", contentTypeJSON)
			resp, err := hc.Do(req)
			if err != nil {
				// Answering 429 without reading the body, the server may
				// close the connection under the client's write.
				statuses[i] = http.StatusTooManyRequests
				return
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
			if resp.StatusCode == http.StatusBadRequest && !bytes.Contains(msg, []byte("nested deeper than 64 levels")) {
				t.Errorf("client %d: 400 for another reason: %s", i, msg)
			}
		})
	}
	wg.Wait()
	var depth, busy int
	for i, s := range statuses {
		switch s {
		case http.StatusBadRequest:
			depth++
		case http.StatusTooManyRequests:
			busy++
		default:
			t.Errorf("client %d: HTTP %d, want 400 or 429", i, s)
		}
	}
	if depth == 0 {
		t.Errorf("no body was refused for its depth (%d refused as busy)", busy)
	}
	if got := requestCount(r, protocolHTTP, outcomeInvalid); int(got) != depth {
		t.Errorf("requests_total{outcome=invalid} = %v, want %d", got, depth)
	}
	if got := requestCount(r, protocolHTTP, outcomeBackpressure); int(got) != busy {
		t.Errorf("requests_total{outcome=backpressure} = %v, want %d", got, busy)
	}
	if rec.callCount() != 0 {
		t.Errorf("consumer called %d times for refused bodies", rec.callCount())
	}
	if got := r.inflightJSON.Load(); got != 0 {
		t.Errorf("OTLP/JSON slots still taken: %d", got)
	}

	if res := postJSON(t, hc, r.HTTPAddr(), []byte(jsonRequest(validTraceID, validSpanID))); res.status != http.StatusOK {
		t.Errorf("valid JSON afterwards: HTTP %d %s", res.status, res.body)
	}
	if res := postHTTP(t, hc, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader(validRequest())); res.status != http.StatusOK {
		t.Errorf("valid protobuf afterwards: HTTP %d %s", res.status, res.body)
	}
	want := append(validSpans(), validSpans()...)
	if diff := cmp.Diff(want, rec.take()); diff != "" {
		t.Errorf("spans consumed (-want +got):\n%s", diff)
	}
}

// TestJSONConcurrencyLimit holds max_concurrent_json_requests JSON requests
// inside the consumer: one more JSON request gets backpressure, and a
// protobuf request is still taken.
func TestJSONConcurrencyLimit(t *testing.T) {
	rec := &recorder{entered: make(chan struct{}, 2), block: make(chan struct{})}
	cfg := testConfig()
	cfg.MaxConcurrentJSONRequests = 1
	r, _ := startReceiver(t, cfg, rec)
	hc := newHTTPClient(t)

	done := make(chan int, 2)
	post := func(contentType string, body []byte) {
		req, err := http.NewRequest(http.MethodPost, "http://"+r.HTTPAddr()+tracesPath, bytes.NewReader(body))
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := hc.Do(req)
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}
	go post(contentTypeJSON, []byte(jsonRequest(validTraceID, validSpanID)))
	<-rec.entered // the JSON slot is taken

	res := postJSON(t, hc, r.HTTPAddr(), []byte(jsonRequest(validTraceID, validSpanID)))
	st := decodeHTTPStatus(t, res)
	wantMsg := "too many concurrent OTLP/JSON requests (max_concurrent_json_requests is 1); protobuf is not limited by it"
	if res.status != http.StatusTooManyRequests || res.retryAfter != "1" || st.GetMessage() != wantMsg {
		t.Errorf("second JSON request: HTTP %d Retry-After %q %q, want 429 Retry-After 1 %q", res.status, res.retryAfter, st.GetMessage(), wantMsg)
	}

	go post(contentTypeProtobuf, validRequest())
	<-rec.entered // protobuf got past every limit into the consumer

	close(rec.block)
	for range 2 {
		if s := <-done; s != http.StatusOK {
			t.Errorf("request within the limits: HTTP %d, want 200", s)
		}
	}
	if got := requestCount(r, protocolHTTP, outcomeBackpressure); got != 1 {
		t.Errorf("requests_total{outcome=backpressure} = %v, want 1", got)
	}
}

// TestMemoryAdmission refuses requests of every kind while Settings.Admit
// says memory is short, with the backpressure answers a retrying client
// understands, and takes them again once it no longer does.
func TestMemoryAdmission(t *testing.T) {
	var short atomic.Bool
	short.Store(true)
	rec := &recorder{}
	r, err := New(testConfig(), Settings{Consumer: rec, Registerer: prometheus.NewRegistry(), Admit: func() bool { return !short.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	cc := dialRaw(t, r.GRPCAddr())
	hc := newHTTPClient(t)

	_, err = export(t.Context(), cc, validRequest())
	st := status.Convert(err)
	var retry time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri.GetRetryDelay().AsDuration()
		}
	}
	if st.Code() != codes.ResourceExhausted || retry != time.Second || st.Message() != errMemoryShort {
		t.Errorf("gRPC while short = %v %q RetryInfo %v, want RESOURCE_EXHAUSTED %q RetryInfo 1s", st.Code(), st.Message(), retry, errMemoryShort)
	}
	// Only exports are refused: health checks still answer.
	hcc, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer hcc.Close()
	if resp, err := healthpb.NewHealthClient(hcc).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check while short = %v, %v; want SERVING", resp.GetStatus(), err)
	}
	for _, ct := range []string{contentTypeProtobuf, contentTypeJSON} {
		body := validRequest()
		if ct == contentTypeJSON {
			body = []byte(jsonRequest(validTraceID, validSpanID))
		}
		res := postHTTP(t, hc, r.HTTPAddr(), http.MethodPost, ct, "", bytes.NewReader(body))
		if res.status != http.StatusTooManyRequests || res.retryAfter != "1" {
			t.Errorf("HTTP %s while short = %d Retry-After %q, want 429 Retry-After 1", ct, res.status, res.retryAfter)
		}
	}
	for p, want := range map[protocol]float64{protocolGRPC: 1, protocolHTTP: 2} {
		if got := metricValue(r.metrics.by[p].memoryRefused); got != want {
			t.Errorf("%s memory_backpressure_requests_total = %v, want %v", p, got, want)
		}
		if got := requestCount(r, p, outcomeBackpressure); got != want {
			t.Errorf("%s requests_total{outcome=backpressure} = %v, want %v", p, got, want)
		}
	}
	if rec.callCount() != 0 {
		t.Errorf("consumer called %d times while memory was short", rec.callCount())
	}

	short.Store(false)
	if _, err := export(t.Context(), cc, validRequest()); err != nil {
		t.Errorf("gRPC after recovery: %v", err)
	}
	if res := postHTTP(t, hc, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader(validRequest())); res.status != http.StatusOK {
		t.Errorf("HTTP after recovery: %d", res.status)
	}
	if got := rec.callCount(); got != 2 {
		t.Errorf("consumer called %d times after recovery, want 2", got)
	}
}

// TestJSONDecodeBudget refuses a body whose decoding would take more than
// the whole OTLP/JSON budget outright, and asks a client to retry while
// other requests hold the budget.
func TestJSONDecodeBudget(t *testing.T) {
	rec := &recorder{}
	r, _ := startReceiver(t, testConfig(), rec)
	hc := newHTTPClient(t)

	// 700,000 empty resource spans: 2,100,019 bytes and 700,002 objects and
	// arrays (with the request object and the list), estimated at
	// 2,100,019 + 700,002*384 = 270,900,787 bytes, over the 256MiB budget.
	const n = 700_000
	wide := `{"resourceSpans":[{}` + strings.Repeat(`,{}`, n-1) + `]}`
	if len(wide) != 2_100_019 {
		t.Fatalf("body is %d bytes", len(wide))
	}
	res := postJSON(t, hc, r.HTTPAddr(), []byte(wide))
	wantMsg := "decoding this OTLP/JSON request (2100019 bytes, 700002 objects and arrays) would take about 270900787B, more than the 256MiB allowed; send smaller requests, or protobuf"
	if msg := decodeHTTPStatus(t, res).GetMessage(); res.status != http.StatusRequestEntityTooLarge || msg != wantMsg {
		t.Errorf("wide body: HTTP %d %q, want 413 %q", res.status, msg, wantMsg)
	}
	if got := requestCount(r, protocolHTTP, outcomeTooLarge); got != 1 {
		t.Errorf("requests_total{outcome=too_large} = %v, want 1", got)
	}

	// Others hold all of the budget but 1KiB: a small valid request
	// (its own estimate is well over 1KiB: 12 objects and arrays) waits.
	held := int64(jsonDecodeBudget - 1<<10)
	if !r.jsonBudget.TryAcquire(held) {
		t.Fatal("budget not free")
	}
	res = postJSON(t, hc, r.HTTPAddr(), []byte(jsonRequest(validTraceID, validSpanID)))
	if res.status != http.StatusTooManyRequests || res.retryAfter != "1" {
		t.Errorf("while the budget is held: HTTP %d Retry-After %q, want 429 Retry-After 1", res.status, res.retryAfter)
	}
	r.jsonBudget.Release(held)
	if res := postJSON(t, hc, r.HTTPAddr(), []byte(jsonRequest(validTraceID, validSpanID))); res.status != http.StatusOK {
		t.Errorf("once released: HTTP %d %s", res.status, res.body)
	}
	if diff := cmp.Diff(validSpans(), rec.take()); diff != "" {
		t.Errorf("spans consumed (-want +got):\n%s", diff)
	}
}
