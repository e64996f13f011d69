package otlptest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func traces(names ...string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	for i, n := range names {
		sp := ss.Spans().AppendEmpty()
		sp.SetName(n)
		sp.SetTraceID(pcommon.TraceID{1, byte(i % 2)})
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
	}
	return td
}

func grpcClient(t *testing.T, sink *Sink) ptraceotlp.GRPCClient {
	t.Helper()
	conn, err := grpc.NewClient(sink.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ptraceotlp.NewGRPCClient(conn)
}

func postHTTP(t *testing.T, sink *Sink, td ptrace.Traces, asJSON, gz bool) *http.Response {
	t.Helper()
	req := ptraceotlp.NewExportRequestFromTraces(td)
	var body []byte
	var err error
	ct := "application/x-protobuf"
	if asJSON {
		body, err = req.MarshalJSON()
		ct = "application/json"
	} else {
		body, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	if gz {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body)
		zw.Close()
		body = buf.Bytes()
	}
	hr, err := http.NewRequestWithContext(t.Context(), http.MethodPost, sink.HTTPEndpoint()+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", ct)
	if gz {
		hr.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func names(spans []Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Span.Name())
	}
	return out
}

func TestSinkReceives(t *testing.T) {
	sink := NewSink(t)
	defer http.DefaultClient.CloseIdleConnections()
	if _, err := grpcClient(t, sink).Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(traces("a", "b"))); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ json, gzip bool }{{false, false}, {true, false}, {false, true}} {
		if resp := postHTTP(t, sink, traces("c"), c.json, c.gzip); resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP status %d", resp.StatusCode)
		}
	}
	if err := sink.WaitSpans(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "c", "c"}, names(sink.Spans())); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	var protos, encodings []string
	for _, r := range sink.Requests() {
		protos = append(protos, string(r.Protocol))
		encodings = append(encodings, r.Encoding)
	}
	if diff := cmp.Diff([]string{"grpc", "http", "http", "http"}, protos); diff != "" {
		t.Errorf("protocols (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"", "", "", "gzip"}, encodings); diff != "" {
		t.Errorf("encodings (-want +got):\n%s", diff)
	}
	byTrace := sink.SpansByTrace()
	if got := len(byTrace[pcommon.TraceID{1, 0}]); got != 4 { // a, c, c, c
		t.Errorf("trace 0100.. has %d spans, want 4", got)
	}
	if got := sink.Spans()[0].Service(); got != "checkout" {
		t.Errorf("Service = %q", got)
	}
	if got := sink.Attempts(); got != 4 {
		t.Errorf("Attempts = %d, want 4", got)
	}
	sink.Reset()
	if sink.SpanCount() != 0 || len(sink.Requests()) != 0 || sink.Attempts() != 0 {
		t.Error("Reset left data behind")
	}
}

func TestSinkFaultsGRPC(t *testing.T) {
	sink := NewSink(t)
	client := grpcClient(t, sink)
	sink.Script(
		Fault{Code: codes.ResourceExhausted, RetryAfter: 2 * time.Second, Message: "slow down"},
		Fault{HTTPStatus: http.StatusServiceUnavailable},
		Fault{Rejected: 1, Message: "one bad"},
	)
	_, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(traces("a")))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || st.Message() != "slow down" {
		t.Errorf("first answer %v, want RESOURCE_EXHAUSTED slow down", st)
	}
	var delay time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if delay != 2*time.Second {
		t.Errorf("RetryInfo delay %v, want 2s", delay)
	}
	_, err = client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(traces("a")))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("second answer %v, want UNAVAILABLE (from HTTP 503)", err)
	}
	resp, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(traces("a", "b")))
	if err != nil {
		t.Fatal(err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedSpans() != 1 || ps.ErrorMessage() != "one bad" {
		t.Errorf("partial success %d %q, want 1 \"one bad\"", ps.RejectedSpans(), ps.ErrorMessage())
	}
	sink.Break(Fault{Code: codes.Internal})
	for range 2 {
		if _, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(traces("x"))); status.Code(err) != codes.Internal {
			t.Errorf("broken sink answered %v, want INTERNAL", err)
		}
	}
	sink.Heal()
	if _, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(traces("c"))); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, names(sink.Spans())); diff != "" {
		t.Errorf("accepted spans (-want +got):\n%s", diff)
	}
	if got := sink.Attempts(); got != 6 {
		t.Errorf("Attempts = %d, want 6", got)
	}
}

func TestSinkFaultsHTTP(t *testing.T) {
	sink := NewSink(t)
	defer http.DefaultClient.CloseIdleConnections()
	sink.Script(
		Fault{HTTPStatus: http.StatusServiceUnavailable, RetryAfter: 1500 * time.Millisecond},
		Fault{Code: codes.InvalidArgument, Message: "bad"},
		Fault{Rejected: 2},
	)
	resp := postHTTP(t, sink, traces("a"), false, false)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("first answer %d Retry-After %q, want 503 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp = postHTTP(t, sink, traces("a"), true, false)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Contains(body, []byte(`"bad"`)) {
		t.Errorf("second answer %d %s %s, want a JSON 400 saying bad", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp = postHTTP(t, sink, traces("a", "b"), false, false)
	body, _ = io.ReadAll(resp.Body)
	er := ptraceotlp.NewExportResponse()
	if err := er.UnmarshalProto(body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || er.PartialSuccess().RejectedSpans() != 2 {
		t.Errorf("third answer %d rejected %d, want 200 and 2", resp.StatusCode, er.PartialSuccess().RejectedSpans())
	}
	if got := sink.SpanCount(); got != 2 {
		t.Errorf("SpanCount = %d, want 2", got)
	}
}

func TestSinkPause(t *testing.T) {
	sink := NewSink(t)
	client := grpcClient(t, sink)
	export := func(ctx context.Context, name string) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(traces(name)))
			done <- err
		}()
		return done
	}
	sink.Pause()

	// A client that gives up while held is not recorded.
	ctx, cancel := context.WithCancel(t.Context())
	lost := export(ctx, "lost")
	if err := sink.WaitHeld(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-lost; status.Code(err) != codes.Canceled {
		t.Errorf("cancelled export = %v, want CANCELED", err)
	}
	if err := sink.WaitHeld(t.Context(), 0); err != nil {
		t.Fatal(err)
	}

	kept := export(context.Background(), "kept")
	if err := sink.WaitHeld(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if got := sink.SpanCount(); got != 0 {
		t.Errorf("SpanCount while paused = %d, want 0", got)
	}
	sink.Resume()
	if err := <-kept; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"kept"}, names(sink.Spans())); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}

func TestSinkWaitSpans(t *testing.T) {
	sink := NewSink(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := sink.WaitSpans(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitSpans on an idle sink = %v, want DeadlineExceeded", err)
	}
	sink.Close()
	if err := sink.WaitSpans(t.Context(), 1); err == nil {
		t.Error("WaitSpans on a closed sink succeeded")
	}
	sink.Close() // idempotent
}

// TestSinkWithOTelSDK sends through the OpenTelemetry Go SDK's OTLP
// exporters, as end-to-end tests do.
func TestSinkWithOTelSDK(t *testing.T) {
	sink := NewSink(t)
	ctx := t.Context()
	g, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(sink.GRPCAddr()), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	h, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(sink.HTTPEndpoint()+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("frontend"))
	for _, exp := range []sdktrace.SpanExporter{g, h} {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
		_, span := tp.Tracer("test").Start(ctx, "GET /")
		span.End()
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.WaitSpans(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range sink.Spans() {
		services = append(services, s.Service()+" "+s.Span.Name())
	}
	slices.Sort(services)
	if diff := cmp.Diff([]string{"frontend GET /", "frontend GET /"}, services); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}
