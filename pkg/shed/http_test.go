package shed

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestMiddlewareCriticality(t *testing.T) {
	s := mustNew(t, Config{
		Header: "X-Priority",
		Routes: map[string]Criticality{
			"GET /batch/":  Sheddable,
			"/api/pay":     Critical,
			"/api/{x}/raw": Sheddable,
		},
	})
	var got Criticality
	h := s.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got, _ = FromContext(r.Context())
	}))
	tests := []struct {
		name, method, path, header string
		ctx                        *Criticality
		want                       Criticality
	}{
		{name: "route", method: "GET", path: "/batch/x", want: Sheddable},
		{name: "route by method only", method: "POST", path: "/batch/x", want: Default},
		{name: "route with wildcard", method: "GET", path: "/api/v1/raw", want: Sheddable},
		{name: "no route", method: "GET", path: "/other", want: Default},
		{name: "header over route", method: "GET", path: "/batch/x", header: "critical", want: Critical},
		{name: "header case", method: "GET", path: "/", header: "SHEDDABLE", want: Sheddable},
		{name: "bad header falls to route", method: "GET", path: "/api/pay", header: "urgent", want: Critical},
		{name: "context over header", method: "GET", path: "/api/pay", header: "critical", ctx: new(Sheddable), want: Sheddable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = 99
			r := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.header != "" {
				r.Header.Set("X-Priority", tt.header)
			}
			if tt.ctx != nil {
				r = r.WithContext(WithCriticality(r.Context(), *tt.ctx))
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tt.want {
				t.Errorf("handler saw %s, want %s", got, tt.want)
			}
		})
	}
}

// spanned wraps h in a handler that starts a span, as otelhttp would.
func spanned(tp *sdktrace.TracerProvider, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tp.Tracer("test").Start(r.Context(), r.URL.Path)
		defer span.End()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func TestMiddlewareRefusal(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	// Limit 2: sheddable may fill 1, default 1, critical 2.
	cfg := fixedLimit(2)
	cfg.RetryAfter = 1500 * time.Millisecond
	cfg.MeterProvider = mp
	s := mustNew(t, cfg)
	served := 0
	h := spanned(tp, s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served++
		w.WriteHeader(http.StatusOK)
	})))
	hold, r := s.Acquire(t.Context(), Default) // one of two in flight
	if r != None {
		t.Fatal(r)
	}
	defer hold.Done()

	do := func(c Criticality) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/"+c.String(), nil)
		req.Header.Set(DefaultHeader, c.String())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	w := do(Sheddable)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("sheddable at 1 of 2: status %d, want 503", w.Code)
	}
	// 1.5s rounds up to whole seconds.
	if got := w.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2", got)
	}
	if w := do(Critical); w.Code != http.StatusOK {
		t.Errorf("critical at 1 of 2: status %d, want 200", w.Code)
	}
	s.SetSheddablePercent(100)
	do(Sheddable)
	if served != 1 {
		t.Errorf("handler ran %d times, want 1", served)
	}

	spans := map[string]map[attribute.Key]string{}
	for _, sp := range rec.Ended() {
		attrs := map[attribute.Key]string{}
		for _, kv := range sp.Attributes() {
			attrs[kv.Key] = kv.Value.AsString()
		}
		spans[sp.Name()] = attrs
	}
	// The last sheddable span overwrites the first: the level refused it.
	want := map[string]map[attribute.Key]string{
		"/sheddable": {AttrCriticality: "sheddable", AttrReason: "shed_level"},
		"/critical":  {AttrCriticality: "critical"},
	}
	if diff := cmp.Diff(want, spans); diff != "" {
		t.Errorf("span attributes (-want +got):\n%s", diff)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					c, _ := p.Attributes.Value(AttrCriticality)
					r, _ := p.Attributes.Value(AttrReason)
					got[m.Name+"{"+c.AsString()+","+r.AsString()+"}"] = p.Value
				}
			case metricdata.Gauge[int64]:
				got[m.Name] = d.DataPoints[0].Value
			case metricdata.Gauge[float64]:
				got[m.Name] = int64(d.DataPoints[0].Value)
			}
		}
	}
	wantMetrics := map[string]int64{
		"tailgate.shed.refused{sheddable,concurrency_limit}": 1,
		"tailgate.shed.refused{sheddable,shed_level}":        1,
		"tailgate.shed.limit":                                2,
		"tailgate.shed.in_flight":                            1, // hold
		"tailgate.shed.sheddable_percent":                    100,
	}
	if diff := cmp.Diff(wantMetrics, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
