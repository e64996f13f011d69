// Package otlptest runs an in-process OTLP trace receiver for tests: a Sink
// listens for OTLP/gRPC and OTLP/HTTP on 127.0.0.1, decodes every export
// request with pdata and keeps it, and can be told to fail, throttle, reject
// part of a request or hang, as a real tracing backend might.
//
// Typical use:
//
//	sink := otlptest.NewSink(t)               // stopped by t.Cleanup
//	// point the code under test at sink.GRPCAddr() or sink.HTTPEndpoint()
//	sink.Script(otlptest.Fault{Code: codes.Unavailable}) // the next request fails
//	if err := sink.WaitSpans(ctx, 10); err != nil { ... }
//	for _, s := range sink.Spans() { ... s.Span.Name(), s.Service() ... }
//
// A Sink is safe for concurrent use. What it returns are copies: callers may
// keep and modify them.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // accept gzip-compressed gRPC requests
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Protocol is the OTLP transport a request arrived on.
type Protocol string

// The OTLP transports a Sink serves.
const (
	GRPC Protocol = "grpc"
	HTTP Protocol = "http"
)

// maxBody bounds an OTLP/HTTP request body (after decompression).
const maxBody = 64 << 20

// Fault is a scripted answer to one export request in place of plain
// success. The zero Fault accepts the request normally.
type Fault struct {
	// Code is the gRPC status to fail with; codes.OK (the zero value) does
	// not fail. For an HTTP request it is mapped to the status code the
	// OTLP specification pairs with it (Unavailable 503, ResourceExhausted
	// 429, InvalidArgument 400, ...) unless HTTPStatus is set.
	Code codes.Code
	// HTTPStatus, when set, is the status of an HTTP request's answer (and,
	// for a gRPC request, mapped to a gRPC code when Code is OK).
	HTTPStatus int
	// RetryAfter adds a google.rpc.RetryInfo with this retry_delay to a gRPC
	// error, and a Retry-After header (whole seconds, rounded up) to an HTTP
	// error.
	RetryAfter time.Duration
	// Message is the error's message, or the partial_success error_message.
	Message string
	// Rejected, on a request that is not failed, answers with
	// partial_success.rejected_spans = Rejected (and Message). The request's
	// spans are all recorded anyway: the sink cannot know which ones a real
	// backend would have refused.
	Rejected int64
}

func (f Fault) fails() bool {
	return f.Code != codes.OK || (f.HTTPStatus != 0 && f.HTTPStatus != http.StatusOK)
}

// Request is one export request the sink accepted.
type Request struct {
	// Protocol is the transport it arrived on.
	Protocol Protocol
	// Traces is its content.
	Traces ptrace.Traces
	// Header holds the gRPC metadata or HTTP headers, keys in lower case.
	Header map[string][]string
	// Encoding is the request's compression ("gzip" or "").
	Encoding string
	// ContentType is the HTTP Content-Type or the gRPC content-type.
	ContentType string
}

// Span is a received span with the resource and scope it came with.
type Span struct {
	Resource pcommon.Resource
	Scope    pcommon.InstrumentationScope
	Span     ptrace.Span
}

// Service returns the resource's service.name, or "".
func (s Span) Service() string {
	v, ok := s.Resource.Attributes().Get("service.name")
	if !ok {
		return ""
	}
	return v.AsString()
}

// Sink is a running OTLP receiver. Create it with NewSink.
type Sink struct {
	grpcLis, httpLis net.Listener
	grpcSrv          *grpc.Server
	httpSrv          *http.Server
	wg               sync.WaitGroup
	closeOnce        sync.Once
	closed           chan struct{}

	mu       sync.Mutex
	requests []Request
	spans    int
	attempts int
	script   []Fault
	broken   *Fault
	paused   chan struct{} // non-nil while paused; closed by Resume
	held     int           // requests waiting in Pause
	changed  chan struct{} // closed (and replaced) when spans or held change
}

// NewSink starts a sink on two 127.0.0.1 ports (gRPC and HTTP) and stops it
// when the test ends.
func NewSink(tb testing.TB) *Sink {
	tb.Helper()
	s, err := start()
	if err != nil {
		tb.Fatalf("start OTLP sink: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

func start() (*Sink, error) {
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		gl.Close()
		return nil, err
	}
	s := &Sink{
		grpcLis: gl,
		httpLis: hl,
		grpcSrv: grpc.NewServer(grpc.StatsHandler(compressionRecorder{})),
		closed:  make(chan struct{}),
		changed: make(chan struct{}),
	}
	ptraceotlp.RegisterGRPCServer(s.grpcSrv, &grpcReceiver{sink: s})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", s.serveHTTP)
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.grpcSrv.Serve(gl)
	}()
	go func() {
		defer s.wg.Done()
		_ = s.httpSrv.Serve(hl)
	}()
	return s, nil
}

// GRPCAddr returns the OTLP/gRPC address, "127.0.0.1:port".
func (s *Sink) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr returns the OTLP/HTTP address, "127.0.0.1:port".
func (s *Sink) HTTPAddr() string { return s.httpLis.Addr().String() }

// HTTPEndpoint returns the OTLP/HTTP base URL, "http://127.0.0.1:port"
// (requests go to its /v1/traces).
func (s *Sink) HTTPEndpoint() string { return "http://" + s.HTTPAddr() }

// Close stops both servers at once (in-flight requests fail) and waits for
// them. It is idempotent; NewSink registers it with t.Cleanup.
func (s *Sink) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.grpcSrv.Stop()
		_ = s.httpSrv.Close()
		s.wg.Wait()
	})
}

// Script queues faults to answer the next requests with, one each, in
// order, on either protocol; once they are used up requests succeed again
// (or meet the Break fault).
func (s *Sink) Script(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, faults...)
}

// Break answers every request with f, after any scripted faults, until Heal.
func (s *Sink) Break(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken = &f
}

// Heal ends Break.
func (s *Sink) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken = nil
}

// Pause makes requests wait, unanswered, until Resume, the client gives up
// or the sink closes: a backend that hangs. WaitHeld tells when requests
// have arrived (or left).
func (s *Sink) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused == nil {
		s.paused = make(chan struct{})
	}
}

// Resume lets paused requests through.
func (s *Sink) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused != nil {
		close(s.paused)
		s.paused = nil
	}
}

// Reset forgets received requests and the attempt count (faults stay).
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.spans, s.attempts = nil, 0, 0
}

// Attempts returns how many export requests reached the sink, failed ones
// included.
func (s *Sink) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// SpanCount returns how many spans the accepted requests held.
func (s *Sink) SpanCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spans
}

// Requests returns copies of the accepted requests, in arrival order.
func (s *Sink) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = r
		out[i].Traces = ptrace.NewTraces()
		r.Traces.CopyTo(out[i].Traces)
		out[i].Header = cloneHeader(r.Header)
	}
	return out
}

// Traces returns every accepted span merged into one ptrace.Traces, one
// ResourceSpans per request's ResourceSpans, in arrival order.
func (s *Sink) Traces() ptrace.Traces {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ptrace.NewTraces()
	for _, r := range s.requests {
		rss := r.Traces.ResourceSpans()
		for i := range rss.Len() {
			rss.At(i).CopyTo(out.ResourceSpans().AppendEmpty())
		}
	}
	return out
}

// Spans returns every accepted span, in arrival order.
func (s *Sink) Spans() []Span {
	td := s.Traces()
	var out []Span
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			ss := sss.At(j)
			spans := ss.Spans()
			for k := range spans.Len() {
				out = append(out, Span{Resource: rs.Resource(), Scope: ss.Scope(), Span: spans.At(k)})
			}
		}
	}
	return out
}

// SpansByTrace groups Spans by trace ID.
func (s *Sink) SpansByTrace() map[pcommon.TraceID][]Span {
	out := map[pcommon.TraceID][]Span{}
	for _, sp := range s.Spans() {
		id := sp.Span.TraceID()
		out[id] = append(out[id], sp)
	}
	return out
}

// WaitSpans blocks until the sink has accepted at least n spans, ctx is
// done or the sink is closed.
func (s *Sink) WaitSpans(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, changed := s.spans, s.changed
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d spans (have %d): %w", n, got, ctx.Err())
		case <-s.closed:
			return fmt.Errorf("wait for %d spans (have %d): sink closed", n, got)
		}
	}
}

// answer counts an attempt and picks its fault, then waits while paused.
func (s *Sink) answer(ctx context.Context) (Fault, error) {
	s.mu.Lock()
	s.attempts++
	var f Fault
	switch {
	case len(s.script) > 0:
		f = s.script[0]
		s.script = s.script[1:]
	case s.broken != nil:
		f = *s.broken
	}
	paused := s.paused
	if paused != nil {
		s.held++
		s.notify()
	}
	s.mu.Unlock()
	if paused == nil {
		return f, nil
	}
	var err error
	select {
	case <-paused:
		// A client that gave up while the sink was paused gets nothing.
		err = ctx.Err()
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.closed:
		err = errors.New("sink closed")
	}
	s.mu.Lock()
	s.held--
	s.notify()
	s.mu.Unlock()
	return f, err
}

// notify wakes WaitSpans and WaitHeld. s.mu is held.
func (s *Sink) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitHeld blocks until exactly n requests are waiting in Pause (a request
// leaves when Resume lets it through, its client gives up or the sink
// closes), or ctx is done.
func (s *Sink) WaitHeld(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, changed := s.held, s.changed
		s.mu.Unlock()
		if got == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d held requests (have %d): %w", n, got, ctx.Err())
		}
	}
}

func (s *Sink) record(r Request) {
	n := r.Traces.SpanCount()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	s.spans += n
	s.notify()
}

// compressionKey holds, in an RPC's context, the *string its request's
// compression is written to (gRPC strips grpc-encoding from the metadata a
// handler sees; its stats handler still reports it).
type compressionKey struct{}

// compressionRecorder is a stats.Handler that records each RPC's request
// compression.
type compressionRecorder struct{}

func (compressionRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressionKey{}, new(string))
}

func (compressionRecorder) HandleRPC(ctx context.Context, st stats.RPCStats) {
	if h, ok := st.(*stats.InHeader); ok {
		if c, ok := ctx.Value(compressionKey{}).(*string); ok {
			*c = h.Compression
		}
	}
}

func (compressionRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (compressionRecorder) HandleConn(context.Context, stats.ConnStats) {}

// grpcReceiver serves TraceService/Export.
type grpcReceiver struct {
	ptraceotlp.UnimplementedGRPCServer
	sink *Sink
}

func (g *grpcReceiver) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	resp := ptraceotlp.NewExportResponse()
	f, err := g.sink.answer(ctx)
	if err != nil {
		return resp, status.Error(codes.Unavailable, err.Error())
	}
	if f.fails() {
		code := f.Code
		if code == codes.OK {
			code = grpcCodeForHTTP(f.HTTPStatus)
		}
		st := status.New(code, f.Message)
		if f.RetryAfter > 0 {
			if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(f.RetryAfter)}); err == nil {
				st = d
			}
		}
		return resp, st.Err()
	}
	md, _ := metadata.FromIncomingContext(ctx)
	r := Request{Protocol: GRPC, Traces: ptrace.NewTraces(), Header: cloneHeader(md)}
	req.Traces().CopyTo(r.Traces)
	if c, ok := ctx.Value(compressionKey{}).(*string); ok && *c != "identity" {
		r.Encoding = *c
	}
	if v := md.Get("content-type"); len(v) > 0 {
		r.ContentType = v[0]
	}
	g.sink.record(r)
	if f.Rejected != 0 || f.Message != "" {
		resp.PartialSuccess().SetRejectedSpans(f.Rejected)
		resp.PartialSuccess().SetErrorMessage(f.Message)
	}
	return resp, nil
}

func (s *Sink) serveHTTP(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isJSON := mt == "application/json"
	if mt != "application/x-protobuf" && !isJSON {
		writeHTTPError(w, false, http.StatusUnsupportedMediaType, "unsupported content type "+mt, 0)
		return
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, maxBody)
	encoding := ""
	switch ce := strings.ToLower(r.Header.Get("Content-Encoding")); ce {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			writeHTTPError(w, isJSON, http.StatusBadRequest, "bad gzip body: "+err.Error(), 0)
			return
		}
		body, encoding = io.LimitReader(zr, maxBody), "gzip"
	default:
		writeHTTPError(w, isJSON, http.StatusUnsupportedMediaType, "unsupported content encoding "+ce, 0)
		return
	}
	data, err := io.ReadAll(body)
	if err != nil {
		writeHTTPError(w, isJSON, http.StatusBadRequest, "read body: "+err.Error(), 0)
		return
	}
	f, err := s.answer(r.Context())
	if err != nil {
		writeHTTPError(w, isJSON, http.StatusServiceUnavailable, err.Error(), 0)
		return
	}
	if f.fails() {
		code := f.HTTPStatus
		if code == 0 {
			code = httpStatusForGRPC(f.Code)
		}
		writeHTTPError(w, isJSON, code, f.Message, f.RetryAfter)
		return
	}
	req := ptraceotlp.NewExportRequest()
	if isJSON {
		err = req.UnmarshalJSON(data)
	} else {
		err = req.UnmarshalProto(data)
	}
	if err != nil {
		writeHTTPError(w, isJSON, http.StatusBadRequest, "decode request: "+err.Error(), 0)
		return
	}
	rec := Request{Protocol: HTTP, Traces: ptrace.NewTraces(), Header: cloneHeader(r.Header), Encoding: encoding, ContentType: mt}
	req.Traces().CopyTo(rec.Traces)
	s.record(rec)

	resp := ptraceotlp.NewExportResponse()
	if f.Rejected != 0 || f.Message != "" {
		resp.PartialSuccess().SetRejectedSpans(f.Rejected)
		resp.PartialSuccess().SetErrorMessage(f.Message)
	}
	var out []byte
	if isJSON {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		writeHTTPError(w, isJSON, http.StatusInternalServerError, err.Error(), 0)
		return
	}
	w.Header().Set("Content-Type", mt)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// writeHTTPError answers with a google.rpc.Status body in the request's
// encoding, as the OTLP/HTTP specification asks.
func writeHTTPError(w http.ResponseWriter, isJSON bool, code int, msg string, retryAfter time.Duration) {
	st := &spb.Status{Code: int32(grpcCodeForHTTP(code)), Message: msg}
	var body []byte
	ct := "application/x-protobuf"
	if isJSON {
		body, _ = protojson.Marshal(st)
		ct = "application/json"
	} else {
		body, _ = proto.Marshal(st)
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(code)
	_, _ = io.Copy(w, bytes.NewReader(body))
}

// httpStatusForGRPC maps a gRPC code to the HTTP status OTLP pairs with it.
func httpStatusForGRPC(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable, codes.Aborted:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unimplemented:
		return http.StatusNotImplemented
	default:
		return http.StatusInternalServerError
	}
}

// grpcCodeForHTTP maps an HTTP status to a gRPC code.
func grpcCodeForHTTP(code int) codes.Code {
	switch code {
	case http.StatusOK:
		return codes.OK
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codes.Unavailable
	case http.StatusNotImplemented:
		return codes.Unimplemented
	default:
		return codes.Unknown
	}
}

func cloneHeader[M ~map[string][]string](h M) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		k = strings.ToLower(k)
		out[k] = append(out[k], v...)
	}
	return out
}
