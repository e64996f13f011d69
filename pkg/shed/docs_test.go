package shed_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/pkg/shed"
)

// yamlBlock finds the fenced YAML blocks of a Markdown page.
var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestDocsSLOsCountShedRequests loads the SLOs of docs/shedding.md into
// tailgate's SLO engine, sends requests of every criticality through the
// middleware with some of them shed, and checks what each SLO counts: the
// page's claim that shed requests are bad events of availability unless
// the filter leaves them out.
func TestDocsSLOsCountShedRequests(t *testing.T) {
	page, err := os.ReadFile("../../docs/shedding.md")
	if err != nil {
		t.Fatal(err)
	}
	var sloYAML string
	for _, m := range yamlBlock.FindAllStringSubmatch(string(page), -1) {
		// A tailgate config block may start with its "# tailgate.yaml" mark.
		if b := strings.TrimPrefix(m[1], "# tailgate.yaml\n"); strings.HasPrefix(b, "slos:") {
			sloYAML = b
		}
	}
	if sloYAML == "" {
		t.Fatal("docs/shedding.md has no slos: block")
	}
	path := filepath.Join(t.TempDir(), "slos.yaml")
	if err := os.WriteFile(path, []byte(sloYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	specs, _, err := slo.LoadFiles(path)
	if err != nil {
		t.Fatalf("the page's SLOs do not load: %v", err)
	}
	engine, err := slo.NewEngine(specs, slo.Settings{})
	if err != nil {
		t.Fatal(err)
	}

	// Limit 10: default may fill 8, sheddable 5.
	s, err := shed.New(shed.Config{Limit: shed.LimitConfig{Initial: 10, Min: 10, Max: 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := otelLike(tp, s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})))
	// 7 default requests hold places, so sheddable ones (share 5) are
	// refused by the limit and critical ones still fit.
	for range 7 {
		tok, r := s.Acquire(t.Context(), shed.Default)
		if r != shed.None {
			t.Fatal(r)
		}
		defer tok.Done()
	}
	send := func(c shed.Criticality, n int) {
		for range n {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set(shed.DefaultHeader, c.String())
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	send(shed.Critical, 3)  // admitted one after the other: 8 in flight of 10
	send(shed.Sheddable, 4) // refused: 7 in flight, over sheddable's 5
	send(shed.Default, 1)   // admitted: 8 in flight of default's 8

	now := time.Now()
	engine.Observe(request(t, rec.Ended()), now)
	// Worked out by hand: 8 requests, the 4 sheddable ones shed (503);
	// the critical SLO counts only the 3 critical requests, all served.
	for name, want := range map[string][2]float64{
		"checkout-availability":          {4, 8},
		"checkout-critical-availability": {3, 3},
	} {
		st, ok := engine.Status(name, now)
		if !ok {
			t.Fatalf("no SLO %s", name)
		}
		if st.Good != want[0] || st.Total != want[1] {
			t.Errorf("%s: good %g of %g, want %g of %g", name, st.Good, st.Total, want[0], want[1])
		}
	}
}

// otelLike starts a SERVER span around h and records the HTTP status on
// it, as otelhttp does.
func otelLike(tp trace.TracerProvider, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tp.Tracer("test").Start(r.Context(), "GET /", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, "")
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// request encodes spans of the service checkout as OTLP and parses them as
// tailgate's ingest does.
func request(t *testing.T, spans []sdktrace.ReadOnlySpan) *otlp.Request {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	for _, in := range spans {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(in.SpanContext().TraceID()))
		sp.SetSpanID(pcommon.SpanID(in.SpanContext().SpanID()))
		sp.SetName(in.Name())
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(in.StartTime()))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(in.EndTime()))
		if in.Status().Code == codes.Error {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		for _, kv := range in.Attributes() {
			switch kv.Value.Type() {
			case attribute.STRING:
				sp.Attributes().PutStr(string(kv.Key), kv.Value.AsString())
			case attribute.INT64:
				sp.Attributes().PutInt(string(kv.Key), kv.Value.AsInt64())
			default:
				t.Fatalf("attribute %s of type %s", kv.Key, kv.Value.Type())
			}
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	var req otlp.Request
	if err := otlp.Parse(bytes.Clone(b), otlp.Limits{}, &req); err != nil {
		t.Fatal(fmt.Errorf("parse OTLP: %w", err))
	}
	return &req
}
