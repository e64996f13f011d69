package ingest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// emitSpans sends spans of two services through the OpenTelemetry SDK and
// returns what was sent: for each service a root span with two children,
// in several traces.
func emitSpans(t *testing.T, newExporter func() sdktrace.SpanExporter) []gotSpan {
	t.Helper()
	ctx := t.Context()
	var want []gotSpan
	for _, service := range []string{"checkout", "payments"} {
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithSyncer(newExporter()),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
		)
		tracer := tp.Tracer("ingest-test")
		record := func(s trace.Span, name, parent string) {
			sc := s.SpanContext()
			want = append(want, gotSpan{TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Parent: parent, Name: name, Service: service})
		}
		for i := range 3 {
			name := service + " root " + string(rune('a'+i))
			rctx, root := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
			for _, child := range []string{"db query", "cache get"} {
				_, c := tracer.Start(rctx, child, trace.WithSpanKind(trace.SpanKindClient))
				c.SetAttributes(attribute.Int("n", i))
				c.End()
				record(c, child, root.SpanContext().SpanID().String())
			}
			root.End()
			record(root, name, "")
		}
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatalf("tracer provider shutdown: %v", err)
		}
	}
	sortSpans(want)
	return want
}

func TestSDKExport(t *testing.T) {
	tests := []struct {
		name        string
		newExporter func(t *testing.T, r *Receiver) sdktrace.SpanExporter
		protocol    protocol
	}{
		{"grpc", func(t *testing.T, r *Receiver) sdktrace.SpanExporter {
			return mustExporter(t)(otlptracegrpc.New(t.Context(), otlptracegrpc.WithInsecure(), otlptracegrpc.WithEndpoint(r.GRPCAddr())))
		}, protocolGRPC},
		{"grpc gzip", func(t *testing.T, r *Receiver) sdktrace.SpanExporter {
			return mustExporter(t)(otlptracegrpc.New(t.Context(), otlptracegrpc.WithInsecure(), otlptracegrpc.WithEndpoint(r.GRPCAddr()),
				otlptracegrpc.WithCompressor("gzip")))
		}, protocolGRPC},
		{"http protobuf", func(t *testing.T, r *Receiver) sdktrace.SpanExporter {
			return mustExporter(t)(otlptracehttp.New(t.Context(), otlptracehttp.WithInsecure(), otlptracehttp.WithEndpoint(r.HTTPAddr()),
				otlptracehttp.WithHTTPClient(newHTTPClient(t))))
		}, protocolHTTP},
		{"http protobuf gzip", func(t *testing.T, r *Receiver) sdktrace.SpanExporter {
			return mustExporter(t)(otlptracehttp.New(t.Context(), otlptracehttp.WithInsecure(), otlptracehttp.WithEndpoint(r.HTTPAddr()),
				otlptracehttp.WithHTTPClient(newHTTPClient(t)), otlptracehttp.WithCompression(otlptracehttp.GzipCompression)))
		}, protocolHTTP},
		{"http json", func(t *testing.T, r *Receiver) sdktrace.SpanExporter {
			return mustExporter(t)(otlptracehttp.New(t.Context(), otlptracehttp.WithInsecure(), otlptracehttp.WithEndpoint(r.HTTPAddr()),
				otlptracehttp.WithHTTPClient(newHTTPClient(t)), otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON)))
		}, protocolHTTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			r, _ := startReceiver(t, testConfig(), rec)
			want := emitSpans(t, func() sdktrace.SpanExporter { return tt.newExporter(t, r) })
			if diff := cmp.Diff(want, rec.take()); diff != "" {
				t.Errorf("spans received (-sent +got):\n%s", diff)
			}
			// Two providers, one per service, each exporting 9 spans one
			// at a time (a syncer exports every span as it ends).
			if got, wantReqs := requestCount(r, tt.protocol, outcomeOK), float64(len(want)); got != wantReqs {
				t.Errorf("requests_total{outcome=ok} = %v, want %v", got, wantReqs)
			}
		})
	}
}

func mustExporter(t *testing.T) func(*otlptrace.Exporter, error) sdktrace.SpanExporter {
	return func(e *otlptrace.Exporter, err error) sdktrace.SpanExporter {
		t.Helper()
		if err != nil {
			t.Fatalf("new exporter: %v", err)
		}
		return e
	}
}

func TestHealthService(t *testing.T) {
	r, _ := startReceiver(t, testConfig(), &recorder{})
	cc, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	for _, service := range []string{"", traceServiceName} {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health check %q: %v", service, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q = %v, want SERVING", service, resp.GetStatus())
		}
	}
}

func TestLifecycle(t *testing.T) {
	t.Run("start twice", func(t *testing.T) {
		r, _ := startReceiver(t, testConfig(), &recorder{})
		if err := r.Start(t.Context()); !errors.Is(err, ErrStarted) {
			t.Errorf("second Start = %v, want ErrStarted", err)
		}
	})
	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		for _, key := range []string{"otlp_grpc", "otlp_http"} {
			cfg := testConfig()
			if key == "otlp_grpc" {
				cfg.OTLPGRPC = ln.Addr().String()
			} else {
				cfg.OTLPHTTP = ln.Addr().String()
			}
			r, err := New(cfg, Settings{Consumer: &recorder{}})
			if err != nil {
				t.Fatal(err)
			}
			err = r.Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("Start with %s taken = %v, want an address-in-use error naming %s", key, err, key)
			}
			if got := r.GRPCAddr() + r.HTTPAddr(); got != "" {
				t.Errorf("after a failed Start, addresses = %q, want none bound", got)
			}
			if err := r.Shutdown(t.Context()); err != nil {
				t.Errorf("Shutdown after failed Start: %v", err)
			}
		}
	})
	t.Run("shutdown before start, twice, then start", func(t *testing.T) {
		r, err := New(testConfig(), Settings{Consumer: &recorder{}})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := r.Shutdown(t.Context()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		}
		if err := r.Start(t.Context()); !errors.Is(err, ErrStopped) {
			t.Errorf("Start after Shutdown = %v, want ErrStopped", err)
		}
	})
	t.Run("disabled protocols", func(t *testing.T) {
		cfg := testConfig()
		cfg.OTLPGRPC = ""
		r, _ := startReceiver(t, cfg, &recorder{})
		if r.GRPCAddr() != "" || r.HTTPAddr() == "" {
			t.Errorf("GRPCAddr = %q, HTTPAddr = %q; want only HTTP bound", r.GRPCAddr(), r.HTTPAddr())
		}
	})
	t.Run("nil consumer", func(t *testing.T) {
		if _, err := New(testConfig(), Settings{}); err == nil {
			t.Error("New without a consumer succeeded")
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxMessageSize = 0
		if _, err := New(cfg, Settings{Consumer: &recorder{}}); err == nil || !strings.Contains(err.Error(), "max_message_size") {
			t.Errorf("New with max_message_size 0 = %v, want an error naming the key", err)
		}
	})
	t.Run("shutdown deadline with requests in flight", func(t *testing.T) {
		rec := &recorder{entered: make(chan struct{}, 2), block: make(chan struct{})}
		r, err := New(testConfig(), Settings{Consumer: rec})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		cc := dialRaw(t, r.GRPCAddr())
		hc := newHTTPClient(t)
		grpcDone := make(chan error, 1)
		go func() {
			_, err := export(context.Background(), cc, validRequest())
			grpcDone <- err
		}()
		httpDone := make(chan struct{})
		go func() {
			defer close(httpDone)
			req, _ := newPost(r.HTTPAddr(), validRequest())
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		<-rec.entered
		<-rec.entered
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown with blocked requests = %v, want a deadline error", err)
		}
		// A forced gRPC stop cancels the RPC's context.
		if err := <-grpcDone; status.Code(err) == codes.OK {
			t.Errorf("in-flight export after forced stop = %v, want an error", err)
		}
		close(rec.block)
		<-httpDone
		// Later calls return the first call's result.
		if err := r.Shutdown(t.Context()); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second Shutdown = %v, want the first call's error", err)
		}
	})
}

func TestMetrics(t *testing.T) {
	rec := &recorder{}
	r, reg := startReceiver(t, testConfig(), rec)
	client := newHTTPClient(t)
	// One full success (1 span), one partial (2 accepted, 1 rejected), one
	// malformed: over HTTP; one full success over gRPC.
	postHTTP(t, client, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader(validRequest()))
	postHTTP(t, client, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader(threeSpans()))
	postHTTP(t, client, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader([]byte{0xff}))
	if _, err := export(t.Context(), dialRaw(t, r.GRPCAddr()), validRequest()); err != nil {
		t.Fatal(err)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				if v := m.GetCounter().GetValue(); v != 0 {
					got[name] = v
				}
			case m.Gauge != nil:
				got[name] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				got[name+",count"] = float64(m.GetHistogram().GetSampleCount())
				got[name+",sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	want := map[string]float64{
		"tailgate_ingest_requests_total,outcome=ok,protocol=http":      1,
		"tailgate_ingest_requests_total,outcome=partial,protocol=http": 1,
		"tailgate_ingest_requests_total,outcome=invalid,protocol=http": 1,
		"tailgate_ingest_requests_total,outcome=ok,protocol=grpc":      1,
		"tailgate_ingest_spans_accepted_total,protocol=http":           3,
		"tailgate_ingest_spans_rejected_total,protocol=http":           1,
		"tailgate_ingest_spans_accepted_total,protocol=grpc":           1,
		"tailgate_ingest_request_bytes,protocol=http,count":            3,
		"tailgate_ingest_request_bytes,protocol=http,sum":              float64(len(validRequest()) + len(threeSpans()) + 1),
		"tailgate_ingest_request_bytes,protocol=grpc,count":            1,
		"tailgate_ingest_request_bytes,protocol=grpc,sum":              float64(len(validRequest())),
		"tailgate_ingest_inflight_requests,protocol=http":              0,
		"tailgate_ingest_inflight_requests,protocol=grpc":              0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
