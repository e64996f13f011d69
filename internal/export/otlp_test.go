package export

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// waitRecorder replaces the exporter's retry wait: it records the delay and
// returns at once, so tests against a real sink check the delays chosen
// without spending them.
type waitRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
	onWait func()
}

func (w *waitRecorder) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.delays = append(w.delays, d)
	on := w.onWait
	w.mu.Unlock()
	if on != nil {
		on()
	}
	return ctx.Err()
}

func (w *waitRecorder) get() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.delays...)
}

// sinkConfig points a config at the sink with protocol proto.
func sinkConfig(sink *otlptest.Sink, proto string) Config {
	cfg := testConfig(sink.GRPCAddr())
	if proto == ProtocolHTTP {
		cfg.OTLP = &OTLPConfig{Endpoint: sink.HTTPEndpoint(), Protocol: ProtocolHTTP}
	}
	cfg.Queue.BatchTimeout = 0
	return cfg
}

func startReal(t *testing.T, cfg Config) (*Exporter, *prometheus.Registry, *waitRecorder) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(cfg, Settings{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	w := &waitRecorder{}
	e.wait = w.wait
	e.jitter = 0
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e, reg, w
}

func kindOf(proto string) string {
	if proto == ProtocolHTTP {
		return KindOTLPHTTP
	}
	return KindOTLPGRPC
}

func TestOTLPDelivers(t *testing.T) {
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		for _, compression := range []string{CompressionGzip, CompressionNone} {
			t.Run(proto+"/"+compression, func(t *testing.T) {
				sink := otlptest.NewSink(t)
				cfg := sinkConfig(sink, proto)
				cfg.OTLP.Compression = compression
				cfg.OTLP.Headers = map[string]string{"X-Api-Key": "secret"}
				e, reg, _ := startReal(t, cfg)
				var gen spanGen
				var want []string
				for range 5 {
					req, names := gen.request(t, 7)
					want = append(want, names...)
					if err := e.Export(t.Context(), req, 7); err != nil {
						t.Fatal(err)
					}
				}
				if err := e.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(sortedCopy(want), spanNames(sink.Traces())); diff != "" {
					t.Errorf("received spans (-want +got):\n%s", diff)
				}
				wantEncoding := ""
				if compression == CompressionGzip {
					wantEncoding = "gzip"
				}
				for _, r := range sink.Requests() {
					if r.Protocol != otlptest.Protocol(proto) {
						t.Errorf("request arrived over %s, want %s", r.Protocol, proto)
					}
					if got := r.Header["x-api-key"]; len(got) != 1 || got[0] != "secret" {
						t.Errorf("x-api-key header = %q, want [secret]", got)
					}
					if r.Encoding != wantEncoding {
						t.Errorf("encoding = %q, want %q", r.Encoding, wantEncoding)
					}
					if proto == ProtocolHTTP && r.ContentType != "application/x-protobuf" {
						t.Errorf("content type = %q, want application/x-protobuf", r.ContentType)
					}
					if proto == ProtocolGRPC && !strings.HasPrefix(r.ContentType, "application/grpc") {
						t.Errorf("content type = %q, want application/grpc", r.ContentType)
					}
				}
				if diff := cmp.Diff(counts{Sent: 35}, readCounts(t, reg, kindOf(proto))); diff != "" {
					t.Errorf("counters (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestOTLPFaults(t *testing.T) {
	tests := []struct {
		name       string
		proto      string
		faults     []otlptest.Fault
		wantSpans  int             // received by the sink
		wantTries  int             // requests that reached the sink
		wantDelays []time.Duration // retry waits chosen
		wantCounts counts
	}{
		{
			name:       "UNAVAILABLE then OK is retried after the backoff",
			proto:      ProtocolGRPC,
			faults:     []otlptest.Fault{{Code: codes.Unavailable}},
			wantSpans:  10,
			wantTries:  2,
			wantDelays: []time.Duration{time.Second},
			wantCounts: counts{Sent: 10, Retries: 1},
		},
		{
			name:       "RESOURCE_EXHAUSTED with RetryInfo waits the retry_delay",
			proto:      ProtocolGRPC,
			faults:     []otlptest.Fault{{Code: codes.ResourceExhausted, RetryAfter: 3 * time.Second}},
			wantSpans:  10,
			wantTries:  2,
			wantDelays: []time.Duration{3 * time.Second},
			wantCounts: counts{Sent: 10, Retries: 1},
		},
		{
			name:       "RESOURCE_EXHAUSTED without RetryInfo is permanent",
			proto:      ProtocolGRPC,
			faults:     []otlptest.Fault{{Code: codes.ResourceExhausted}},
			wantTries:  1,
			wantCounts: counts{Failed: 10},
		},
		{
			name:       "UNAVAILABLE with RetryInfo waits the retry_delay",
			proto:      ProtocolGRPC,
			faults:     []otlptest.Fault{{Code: codes.Unavailable, RetryAfter: 1500 * time.Millisecond}, {Code: codes.Aborted}},
			wantSpans:  10,
			wantTries:  3,
			wantDelays: []time.Duration{1500 * time.Millisecond, 1500 * time.Millisecond},
			wantCounts: counts{Sent: 10, Retries: 2},
		},
		{
			name:       "DEADLINE_EXCEEDED, DATA_LOSS, OUT_OF_RANGE are retried",
			proto:      ProtocolGRPC,
			faults:     []otlptest.Fault{{Code: codes.DeadlineExceeded}, {Code: codes.DataLoss}, {Code: codes.OutOfRange}},
			wantSpans:  10,
			wantTries:  4,
			wantDelays: []time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond},
			wantCounts: counts{Sent: 10, Retries: 3},
		},
		{
			name:       "INVALID_ARGUMENT is permanent",
			proto:      ProtocolGRPC,
			faults:     []otlptest.Fault{{Code: codes.InvalidArgument, Message: "bad span"}},
			wantTries:  1,
			wantCounts: counts{Failed: 10},
		},
		{
			name:       "UNAUTHENTICATED is permanent",
			proto:      ProtocolGRPC,
			faults:     []otlptest.Fault{{Code: codes.Unauthenticated}},
			wantTries:  1,
			wantCounts: counts{Failed: 10},
		},
		{
			name:       "gRPC partial success",
			proto:      ProtocolGRPC,
			faults:     []otlptest.Fault{{Rejected: 4, Message: "4 spans too old"}},
			wantSpans:  10,
			wantTries:  1,
			wantCounts: counts{Sent: 6, Failed: 4},
		},
		{
			name:       "HTTP 503 with Retry-After then 200",
			proto:      ProtocolHTTP,
			faults:     []otlptest.Fault{{HTTPStatus: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second}},
			wantSpans:  10,
			wantTries:  2,
			wantDelays: []time.Duration{2 * time.Second},
			wantCounts: counts{Sent: 10, Retries: 1},
		},
		{
			name:       "HTTP 429, 502, 504 are retried after the backoff",
			proto:      ProtocolHTTP,
			faults:     []otlptest.Fault{{HTTPStatus: 429}, {HTTPStatus: 502}, {HTTPStatus: 504}},
			wantSpans:  10,
			wantTries:  4,
			wantDelays: []time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond},
			wantCounts: counts{Sent: 10, Retries: 3},
		},
		{
			name:       "HTTP 400 is permanent",
			proto:      ProtocolHTTP,
			faults:     []otlptest.Fault{{HTTPStatus: http.StatusBadRequest, Message: "bad span"}},
			wantTries:  1,
			wantCounts: counts{Failed: 10},
		},
		{
			name:       "HTTP 500 is permanent",
			proto:      ProtocolHTTP,
			faults:     []otlptest.Fault{{HTTPStatus: http.StatusInternalServerError}},
			wantTries:  1,
			wantCounts: counts{Failed: 10},
		},
		{
			name:       "HTTP partial success",
			proto:      ProtocolHTTP,
			faults:     []otlptest.Fault{{Rejected: 4, Message: "4 spans too old"}},
			wantSpans:  10,
			wantTries:  1,
			wantCounts: counts{Sent: 6, Failed: 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := otlptest.NewSink(t)
			sink.Script(tt.faults...)
			e, reg, waits := startReal(t, sinkConfig(sink, tt.proto))
			var gen spanGen
			req, _ := gen.request(t, 10)
			if err := e.Export(t.Context(), req, 10); err != nil {
				t.Fatal(err)
			}
			if err := e.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := sink.SpanCount(); got != tt.wantSpans {
				t.Errorf("sink received %d spans, want %d", got, tt.wantSpans)
			}
			if got := sink.Attempts(); got != tt.wantTries {
				t.Errorf("sink saw %d attempts, want %d", got, tt.wantTries)
			}
			if diff := cmp.Diff(tt.wantDelays, waits.get()); diff != "" {
				t.Errorf("retry delays (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCounts, readCounts(t, reg, kindOf(tt.proto))); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOTLPAttemptTimeoutIsRetried(t *testing.T) {
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		t.Run(proto, func(t *testing.T) {
			sink := otlptest.NewSink(t)
			sink.Pause() // the backend hangs until the first retry
			cfg := sinkConfig(sink, proto)
			cfg.OTLP.Timeout = units.Duration(50 * time.Millisecond)
			reg := prometheus.NewRegistry()
			e, err := New(cfg, Settings{Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			w := &waitRecorder{onWait: sink.Resume}
			e.wait, e.jitter = w.wait, 0
			if err := e.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			var gen spanGen
			req, want := gen.request(t, 10)
			if err := e.Export(t.Context(), req, 10); err != nil {
				t.Fatal(err)
			}
			if err := e.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			// The timed-out attempt may have landed too (the sink may see
			// its cancellation late): delivery is at least once.
			got := spanNames(sink.Traces())
			if diff := cmp.Diff(sortedCopy(want), slices.Compact(got)); diff != "" {
				t.Errorf("received spans (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(counts{Sent: 10, Retries: 1}, readCounts(t, reg, kindOf(proto))); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShutdownFlushesToSink(t *testing.T) {
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		t.Run(proto, func(t *testing.T) {
			sink := otlptest.NewSink(t)
			cfg := sinkConfig(sink, proto)
			cfg.Queue.BatchTimeout = units.Duration(time.Hour)
			cfg.Queue.MaxBatchSpans = 100
			e, reg, _ := startReal(t, cfg)
			var gen spanGen
			var want []string
			for range 3 {
				req, names := gen.request(t, 10)
				want = append(want, names...)
				if err := e.Export(t.Context(), req, 10); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := len(sink.Requests()); got != 1 {
				t.Errorf("sink got %d requests, want the 3 exports in 1 batch", got)
			}
			if diff := cmp.Diff(sortedCopy(want), spanNames(sink.Traces())); diff != "" {
				t.Errorf("received spans (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(counts{Sent: 30}, readCounts(t, reg, kindOf(proto))); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}
}

// TestShutdownWithSinkDown spends real time: the shutdown deadline (100ms)
// must cut a retry wait of an hour.
func TestShutdownWithSinkDown(t *testing.T) {
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		t.Run(proto, func(t *testing.T) {
			sink := otlptest.NewSink(t)
			cfg := sinkConfig(sink, proto)
			sink.Close() // nothing listens there any more
			cfg.Retry.InitialInterval = units.Duration(time.Hour)
			cfg.Retry.MaxInterval = units.Duration(time.Hour)
			cfg.Retry.MaxElapsed = 0
			reg := prometheus.NewRegistry()
			e, err := New(cfg, Settings{Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			var gen spanGen
			for range 2 {
				req, _ := gen.request(t, 10)
				if err := e.Export(t.Context(), req, 10); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err = e.Shutdown(ctx)
			if err == nil || !strings.Contains(err.Error(), "20 spans dropped") {
				t.Errorf("Shutdown = %v, want 20 spans dropped", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Shutdown took %v despite its 100ms deadline", took)
			}
			got := readCounts(t, reg, kindOf(proto))
			got.Retries = 0
			if diff := cmp.Diff(counts{Dropped: 20}, got); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEncoderOutput exports what the sampler would: resource_spans entries
// written by otlp.Encoder with the sampling extension, concatenated.
func TestEncoderOutput(t *testing.T) {
	sink := otlptest.NewSink(t)
	e, _, _ := startReal(t, sinkConfig(sink, ProtocolGRPC))
	var gen spanGen
	src, names := gen.request(t, 6)
	var parsed otlp.Request
	if err := otlp.Parse(src, otlp.Limits{}, &parsed); err != nil {
		t.Fatal(err)
	}
	res := parsed.Resources[parsed.Scopes[0].Resource]
	group := &otlp.Group{Resource: res.Raw, ResourceSchemaURL: res.SchemaURL, Scope: parsed.Scopes[0].Raw, ScopeSchemaURL: parsed.Scopes[0].SchemaURL}
	var raws [][]byte
	for _, s := range parsed.Spans {
		raws = append(raws, s.Raw)
	}
	var enc otlp.Encoder
	req := enc.AppendResourceSpans(nil, group, raws[:2], &otlp.Extension{Rule: "errors", Rate: 1})
	req = enc.AppendResourceSpans(req, group, raws[2:], &otlp.Extension{Rule: "rest", Rate: 20})
	if err := e.Export(t.Context(), req, 6); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	type got struct {
		Name, Service, Rule string
		Rate                float64
	}
	var gots []got
	for _, s := range sink.Spans() {
		rule, _ := s.Span.Attributes().Get("sampling.rule")
		rate, _ := s.Span.Attributes().Get("sampling.rate")
		gots = append(gots, got{s.Span.Name(), s.Service(), rule.Str(), rate.Double()})
	}
	want := []got{
		{names[0], "checkout", "errors", 1}, {names[1], "checkout", "errors", 1},
		{names[2], "checkout", "rest", 20}, {names[3], "checkout", "rest", 20},
		{names[4], "checkout", "rest", 20}, {names[5], "checkout", "rest", 20},
	}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("received spans (-want +got):\n%s", diff)
	}
}
