package signals

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func ptr(v float64) *float64 { return &v }

// metricValues gathers reg and returns the samples of a metric family by
// their labels ("k=v,k=v", sorted); histograms give _count, _sum and
// _bucket samples.
func metricValues(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(ls)
			key := strings.Join(ls, ",")
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[key+" count"] = float64(h.GetSampleCount())
				out[key+" sum"] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[fmt.Sprintf("%s le=%g", key, b.GetUpperBound())] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

// goldenRequest is checkout with four requests (two operations), a client
// span that is no request, and a worker consuming one message.
func goldenRequest(t testing.TB) []byte {
	at := t0.Add(10 * time.Second)
	return buildRequest(t,
		spanSpec{service: "checkout", kind: ptrace.SpanKindServer, name: "GET /api/orders/1", start: at, end: at.Add(ms(10)),
			attrs: map[string]any{"http.response.status_code": 200}},
		spanSpec{service: "checkout", kind: ptrace.SpanKindServer, name: "GET /api/orders/2", start: at, end: at.Add(ms(20)),
			attrs: map[string]any{"http.response.status_code": 200}},
		spanSpec{service: "checkout", kind: ptrace.SpanKindServer, name: "GET /api/orders/3", start: at, end: at.Add(ms(30)),
			attrs: map[string]any{"http.response.status_code": 500}},
		spanSpec{service: "checkout", kind: ptrace.SpanKindServer, name: "POST /api/cart/77", start: at, end: at.Add(ms(40)),
			status: ptrace.StatusCodeError, attrs: map[string]any{"http.route": "/api/cart/{id}"}},
		spanSpec{service: "checkout", kind: ptrace.SpanKindClient, name: "GET payments", start: at, end: at.Add(ms(5)),
			status: ptrace.StatusCodeError},
		spanSpec{service: "worker", kind: ptrace.SpanKindConsumer, name: "process order", start: at, end: at.Add(ms(100))},
	)
}

func TestObserveGoldenSignals(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(DefaultConfig(), Settings{Store: &memStore{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.Observe(parseRequest(t, goldenRequest(t)), t0.Add(15*time.Second))

	now := t0.Add(time.Minute)
	got, err := s.Services(t.Context(), Query{From: t0, To: t0.Add(time.Minute), Step: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	// checkout: durations 10, 20, 30, 40ms, two bad (the 500 and the ERROR).
	// Rank floor(q·3): p50 -> 20ms, p90 and p99 -> 30ms.
	checkout := Stats{
		Requests: 4, Errors: 2, RatePerSecond: 4.0 / 60, ErrorRatio: ptr(0.5),
		P50Seconds: ptr(0.020), P90Seconds: ptr(0.030), P99Seconds: ptr(0.030), MaxSeconds: ptr(0.040),
		InFlight: 0.100 / 60,
	}
	worker := Stats{
		Requests: 1, Errors: 0, RatePerSecond: 1.0 / 60, ErrorRatio: ptr(0),
		P50Seconds: ptr(0.1), P90Seconds: ptr(0.1), P99Seconds: ptr(0.1), MaxSeconds: ptr(0.1),
		InFlight: 0.1 / 60,
	}
	want := ServicesResponse{
		Range: Range{From: t0, To: t0.Add(time.Minute), Step: "1m"},
		Services: []ServiceSummary{
			{Service: "checkout", Stats: checkout, Series: []Point{{Time: t0, Stats: checkout}}},
			{Service: "worker", Stats: worker, Series: []Point{{Time: t0, Stats: worker}}},
		},
	}
	approx := cmpopts.EquateApprox(SketchRelativeAccuracy, 1e-12)
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}

	ops, err := s.Operations(t.Context(), "checkout", Query{From: t0, To: t0.Add(time.Minute)}, now)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range ops.Operations {
		names = append(names, fmt.Sprintf("%s %d/%d", o.Operation, o.Errors, o.Requests))
	}
	if diff := cmp.Diff([]string{"GET /api/orders/{id} 1/3", "/api/cart/{id} 1/1"}, names); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}

	wantReq := map[string]float64{
		"operation=/api/cart/{id},service_name=checkout,status_class=error":     1,
		"operation=GET /api/orders/{id},service_name=checkout,status_class=2xx": 2,
		"operation=GET /api/orders/{id},service_name=checkout,status_class=5xx": 1,
		"operation=process order,service_name=worker,status_class=ok":           1,
	}
	if diff := cmp.Diff(wantReq, metricValues(t, reg, "tailgate_service_requests_total")); diff != "" {
		t.Errorf("requests_total (-want +got):\n%s", diff)
	}
	wantErr := map[string]float64{
		"operation=/api/cart/{id},service_name=checkout,status_class=error":     1,
		"operation=GET /api/orders/{id},service_name=checkout,status_class=2xx": 0,
		"operation=GET /api/orders/{id},service_name=checkout,status_class=5xx": 1,
		"operation=process order,service_name=worker,status_class=ok":           0,
	}
	if diff := cmp.Diff(wantErr, metricValues(t, reg, "tailgate_service_errors_total")); diff != "" {
		t.Errorf("errors_total (-want +got):\n%s", diff)
	}
	hist := metricValues(t, reg, "tailgate_service_request_duration_seconds")
	const ok2xx = "operation=GET /api/orders/{id},service_name=checkout,status_class=2xx"
	// 10ms and 20ms: 10ms is within le=0.01 (bounds are inclusive).
	wantHist := map[string]float64{
		ok2xx + " count": 2, ok2xx + " sum": 0.030,
		ok2xx + " le=0.005": 0, ok2xx + " le=0.01": 1, ok2xx + " le=0.025": 2, ok2xx + " le=0.05": 2,
		ok2xx + " le=10": 2,
	}
	for k, v := range wantHist {
		if g, ok := hist[k]; !ok || math.Abs(g-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	self := metricValues(t, reg, "tailgate_signals_spans_total")
	if self[""] != 6 {
		t.Errorf("tailgate_signals_spans_total = %v, want 6", self[""])
	}
}

// countingHandler counts log records whose message contains a substring.
type countingHandler struct {
	substr string
	n      *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.substr) {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

func TestSeriesLimitFoldsIntoOverflow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SeriesLimit = 3 // two label sets and the overflow series
	reg := prometheus.NewRegistry()
	var warnings atomic.Int64
	s, err := New(cfg, Settings{
		Store: &memStore{}, Registerer: reg,
		Logger: slog.New(countingHandler{substr: "series limit", n: &warnings}),
	})
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Second)
	for batch := range 2 {
		var spans []spanSpec
		for i := range 5 {
			spans = append(spans, spanSpec{service: "api", kind: ptrace.SpanKindServer,
				name: fmt.Sprintf("op%c", 'a'+batch*5+i), start: at, end: at.Add(ms(1))})
		}
		s.Observe(parseRequest(t, buildRequest(t, spans...)), at)
	}
	want := map[string]float64{
		"operation=opa,service_name=api,status_class=ok": 1,
		"operation=opb,service_name=api,status_class=ok": 1,
		"otel_metric_overflow=true":                      8,
	}
	if diff := cmp.Diff(want, metricValues(t, reg, "tailgate_service_requests_total")); diff != "" {
		t.Errorf("requests_total (-want +got):\n%s", diff)
	}
	if got := metricValues(t, reg, "tailgate_signals_overflow_requests_total")[""]; got != 8 {
		t.Errorf("overflow_requests_total = %v, want 8", got)
	}
	if got := metricValues(t, reg, "tailgate_signals_series")[""]; got != 3 {
		t.Errorf("tailgate_signals_series = %v, want 3", got)
	}
	if got := warnings.Load(); got != 1 {
		t.Errorf("overflow logged %d times, want once", got)
	}
	// The golden signals themselves are not limited by the metric series.
	ops, err := s.Operations(t.Context(), "api", Query{From: t0, To: t0.Add(time.Minute)}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops.Operations) != 10 {
		t.Errorf("operations = %d, want 10", len(ops.Operations))
	}
}

func TestAttributeLabels(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Labels = []string{"service", "span_kind", "deployment.environment", "http.request.method"}
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Settings{Store: &memStore{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Second)
	s.Observe(parseRequest(t, buildRequest(t,
		spanSpec{service: "api", resource: map[string]any{"deployment.environment": "prod"}, kind: ptrace.SpanKindServer,
			name: "a", start: at, end: at.Add(ms(1)), attrs: map[string]any{"http.request.method": "GET"}},
		spanSpec{service: "api", kind: ptrace.SpanKindServer, name: "b", start: at, end: at.Add(ms(1)),
			attrs: map[string]any{"http.request.method": "POST"}},
		spanSpec{service: "api", kind: ptrace.SpanKindServer, name: "c", start: at, end: at.Add(ms(1)),
			attrs: map[string]any{"http.request.method": "GET"}},
	)), at)
	want := map[string]float64{
		"deployment_environment=prod,http_request_method=GET,service_name=api,span_kind=server":  2,
		"deployment_environment=prod,http_request_method=POST,service_name=api,span_kind=server": 1,
	}
	if diff := cmp.Diff(want, metricValues(t, reg, "tailgate_service_requests_total")); diff != "" {
		t.Errorf("requests_total (-want +got):\n%s", diff)
	}
}

func TestOperationLimitFoldsIntoOther(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxOperationsPerService = 2
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Settings{Store: &memStore{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Second)
	var spans []spanSpec
	for _, name := range []string{"/a/1", "/b", "/a/2", "/c", "/d", "/b"} {
		spans = append(spans, spanSpec{service: "api", kind: ptrace.SpanKindServer, name: name, start: at, end: at.Add(ms(1))})
	}
	s.Observe(parseRequest(t, buildRequest(t, spans...)), at)
	ops, err := s.Operations(t.Context(), "api", Query{From: t0, To: t0.Add(time.Minute)}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, o := range ops.Operations {
		got[o.Operation] = o.Requests
	}
	if diff := cmp.Diff(map[string]uint64{"/a/{id}": 2, "/b": 2, "other": 2}, got); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
	if v := metricValues(t, reg, "tailgate_signals_other_operation_requests_total")[""]; v != 2 {
		t.Errorf("other_operation_requests_total = %v, want 2", v)
	}
}

func TestServiceLimitFoldsIntoOther(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxServices = 2
	s := newTestSignals(t, cfg, nil)
	at := t0.Add(time.Second)
	var spans []spanSpec
	for _, svc := range []string{"a", "b", "c", "d", ""} {
		spans = append(spans, spanSpec{service: svc, kind: ptrace.SpanKindServer, name: "x", start: at, end: at.Add(ms(1))})
	}
	s.Observe(parseRequest(t, buildRequest(t, spans...)), at)
	got, err := s.Services(t.Context(), Query{From: t0, To: t0.Add(time.Minute)}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range got.Services {
		names = append(names, fmt.Sprintf("%s=%d", svc.Service, svc.Requests))
	}
	if diff := cmp.Diff([]string{"a=1", "b=1", "other=3"}, names); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
}

func TestLateAndFutureSpansCountAtArrival(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(DefaultConfig(), Settings{Store: &memStore{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(10*time.Minute + 30*time.Second)
	s.Observe(parseRequest(t, buildRequest(t,
		// Within max_lateness (1m): counted in its own minute 10:09.
		spanSpec{service: "a", kind: ptrace.SpanKindServer, name: "x", start: now.Add(-50 * time.Second), end: now.Add(-40 * time.Second)},
		// Five minutes late and two minutes in the future: counted at 10:10.
		spanSpec{service: "a", kind: ptrace.SpanKindServer, name: "x", start: now.Add(-5 * time.Minute), end: now.Add(-5 * time.Minute)},
		spanSpec{service: "a", kind: ptrace.SpanKindServer, name: "x", start: now.Add(2 * time.Minute), end: now.Add(2 * time.Minute)},
	)), now)
	got, err := s.Services(t.Context(), Query{From: t0, To: t0.Add(15 * time.Minute), Step: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, p := range got.Services[0].Series {
		if p.Requests > 0 {
			counts[p.Time.Format("15:04")] = p.Requests
		}
	}
	if diff := cmp.Diff(map[string]uint64{"12:09": 1, "12:10": 2}, counts); diff != "" {
		t.Errorf("requests per minute (-want +got):\n%s", diff)
	}
	if v := metricValues(t, reg, "tailgate_signals_late_spans_total")[""]; v != 2 {
		t.Errorf("late_spans_total = %v, want 2", v)
	}
}

func TestFlushWritesClosedMinutesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		cfg := DefaultConfig()
		s := newTestSignals(t, cfg, store)
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		start := time.Now() // the bubble's clock: 2000-01-01T00:00:00Z
		time.Sleep(10 * time.Second)
		at := time.Now()
		s.Observe(parseRequest(t, buildRequest(t,
			spanSpec{service: "a", kind: ptrace.SpanKindServer, name: "x", start: at.Add(-ms(30)), end: at.Add(-ms(5))},
		)), at)

		requests := func() uint64 {
			got, err := s.Services(t.Context(), Query{From: start, To: start.Add(time.Hour)}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			for _, svc := range got.Services {
				n += svc.Requests
			}
			return n
		}
		// The minute ends at 1m and is written at the first tick at or
		// after 1m + max_lateness = 2m.
		time.Sleep(time.Until(start.Add(time.Minute + 55*time.Second)))
		synctest.Wait()
		if n := len(store.storedBuckets()); n != 0 {
			t.Errorf("%d buckets written before the minute closed", n)
		}
		if n := requests(); n != 1 {
			t.Errorf("requests read from memory = %d, want 1", n)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		b := store.storedBuckets()
		if len(b) != 1 || b[0].Requests != 1 || !b[0].Start.Equal(start) || b[0].Step != time.Minute || b[0].Service != "a" || b[0].Operation != "x" {
			t.Fatalf("stored buckets after the minute closed = %+v, want one of a/x at %s", b, start)
		}
		if n := requests(); n != 1 {
			t.Errorf("requests read after the flush = %d, want 1 (from the store, not twice)", n)
		}

		at = time.Now()
		s.Observe(parseRequest(t, buildRequest(t,
			spanSpec{service: "a", kind: ptrace.SpanKindServer, name: "x", start: at.Add(-ms(30)), end: at.Add(-ms(5))},
		)), at)
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(t.Context()); err != nil {
			t.Errorf("second Shutdown: %v", err)
		}
		if n := len(store.storedBuckets()); n != 2 {
			t.Errorf("buckets after Shutdown = %d, want 2", n)
		}
		if n := requests(); n != 2 {
			t.Errorf("requests after Shutdown = %d, want 2", n)
		}
	})
}

func TestFlushRetriesAfterStoreFailure(t *testing.T) {
	store := &memStore{failNext: 1}
	s := newTestSignals(t, DefaultConfig(), store)
	at := t0.Add(time.Second)
	s.Observe(parseRequest(t, buildRequest(t,
		spanSpec{service: "a", kind: ptrace.SpanKindServer, name: "x", start: at, end: at.Add(ms(3))},
	)), at)
	now := t0.Add(5 * time.Minute)
	if err := s.flush(t.Context(), now, false); err == nil {
		t.Fatal("flush did not report the store failure")
	}
	q := Query{From: t0, To: t0.Add(time.Hour)}
	got, err := s.Services(t.Context(), q, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Services) != 1 || got.Services[0].Requests != 1 {
		t.Errorf("after a failed write, services = %+v, want the request still visible", got.Services)
	}
	if err := s.flush(t.Context(), now, false); err != nil {
		t.Fatal(err)
	}
	if b := store.storedBuckets(); len(b) != 1 || b[0].Requests != 1 {
		t.Errorf("stored after retry = %+v", b)
	}
	got, err = s.Services(t.Context(), q, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Services[0].Requests != 1 {
		t.Errorf("requests after retry = %d, want 1", got.Services[0].Requests)
	}
}

func TestMaintenanceRollsUpAndExpires(t *testing.T) {
	store := &memStore{}
	cfg := DefaultConfig()
	s := newTestSignals(t, cfg, store)
	now := t0
	mk := func(start time.Time, req, errs uint64, durs ...uint64) Bucket {
		var sk Sketch
		for _, d := range durs {
			sk.Add(d)
		}
		lat, _ := sk.MarshalBinary()
		return Bucket{Service: "a", Operation: "x", Start: start, Step: time.Minute, Requests: req, Errors: errs, Latency: lat}
	}
	old := t0.Add(-72 * time.Hour).Truncate(time.Hour)
	store.buckets = []Bucket{
		mk(old.Add(time.Minute), 2, 1, 10e6, 20e6),
		mk(old.Add(59*time.Minute), 1, 0, 30e6),
		mk(old.Add(time.Hour), 1, 1, 40e6),      // the next hour, rolled up separately
		mk(t0.Add(-time.Hour), 1, 0, 5e6),       // recent: stays minutely
		mk(t0.Add(-40*24*time.Hour), 1, 0, 5e6), // beyond retention
	}
	if err := s.maintain(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Start    time.Time
		Step     time.Duration
		Requests uint64
		Errors   uint64
		Max      uint64
	}
	var got []row
	for _, b := range store.storedBuckets() {
		var sk Sketch
		if err := sk.UnmarshalBinary(b.Latency); err != nil {
			t.Fatal(err)
		}
		got = append(got, row{b.Start, b.Step, b.Requests, b.Errors, sk.Max()})
	}
	want := []row{
		{old, time.Hour, 3, 1, 30e6},
		{old.Add(time.Hour), time.Hour, 1, 1, 40e6},
		{t0.Add(-time.Hour), time.Minute, 1, 0, 5e6},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("buckets after maintenance (-want +got):\n%s", diff)
	}
	// A query reaching into rolled-up hours is answered hourly.
	resp, err := s.Services(t.Context(), Query{From: old, To: old.Add(3 * time.Hour), Step: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Step != "1h" || len(resp.Services) != 1 || len(resp.Services[0].Series) != 3 || resp.Services[0].Requests != 4 {
		t.Errorf("rolled-up query = step %s, %+v", resp.Step, resp.Services)
	}
}

func TestQueryValidation(t *testing.T) {
	s := newTestSignals(t, DefaultConfig(), nil)
	now := t0
	tests := []struct {
		name string
		q    Query
		want Range
		err  string
	}{
		{"defaults: last hour in 1m steps", Query{}, Range{From: t0.Add(-time.Hour), To: t0, Step: "1m"}, ""},
		{"day: 24m steps", Query{From: t0.Add(-24 * time.Hour)}, Range{From: t0.Add(-24 * time.Hour), To: t0, Step: "24m"}, ""},
		{"from aligned down to the step", Query{From: t0.Add(-time.Hour - 90*time.Second), Step: 5 * time.Minute}, Range{From: t0.Add(-65 * time.Minute), To: t0, Step: "5m"}, ""},
		{"from after to", Query{From: t0, To: t0.Add(-time.Minute)}, Range{}, "must be before"},
		{"sub-minute step", Query{Step: 30 * time.Second}, Range{}, "whole number of minutes"},
		{"too many points", Query{From: t0.Add(-30 * time.Hour), Step: time.Minute}, Range{}, "more than 1440"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := s.resolve(tc.q, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, rangeOf(q)); diff != "" {
				t.Errorf("range (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnknownService(t *testing.T) {
	s := newTestSignals(t, DefaultConfig(), nil)
	for name, call := range map[string]func() error{
		"service":       func() error { _, err := s.Service(t.Context(), "nope", Query{}, t0); return err },
		"operations":    func() error { _, err := s.Operations(t.Context(), "nope", Query{}, t0); return err },
		"error origins": func() error { _, err := s.ErrorOrigins(t.Context(), "nope", Query{}, t0); return err },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), "unknown service") {
			t.Errorf("%s: err = %v, want ErrUnknownService", name, err)
		}
	}
}

// paymentsTimeout is the trace of a checkout request that failed because
// its call to payments timed out while payments was still working.
func paymentsTimeout() []TraceSpan {
	return []TraceSpan{
		http5xx(ts("checkout", "POST /checkout", server, 1, 0, 0, 1000, true)),
		timeout(ts("checkout", "POST payments", client, 2, 1, 10, 510, true)),
		{Service: "payments", Name: "POST /charge", Route: "/charge", Kind: server, SpanID: otlp.SpanID(spanID(3)), ParentSpanID: otlp.SpanID(spanID(2)), Start: 12e6, End: 900e6},
	}
}

func TestErrorOriginsSummary(t *testing.T) {
	store := &memStore{}
	s := newTestSignals(t, DefaultConfig(), store)
	now := t0.Add(30 * time.Second)
	for range 11 {
		s.ObserveTrace(paymentsTimeout(), now)
	}
	// One failure of checkout's own: a bad internal span under the request.
	s.ObserveTrace([]TraceSpan{
		http5xx(ts("checkout", "POST /checkout", server, 1, 0, 0, 100, true)),
		ts("checkout", "validate cart", internal, 2, 1, 1, 5, true),
	}, now)
	// Half of the next minute's origins are written to the store, so the
	// read must merge memory and store.
	if err := s.flush(t.Context(), now, true); err != nil {
		t.Fatal(err)
	}
	s.ObserveTrace(paymentsTimeout(), now.Add(time.Minute))

	q := Query{From: t0, To: t0.Add(5 * time.Minute)}
	got, err := s.ErrorOrigins(t.Context(), "checkout", q, t0.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := ErrorOrigins{
		Service: "checkout", From: t0, To: t0.Add(5 * time.Minute),
		FailedRequests: 13, OriginatedHere: 1, Propagated: 12,
		Origins: []Origin{
			{Service: "payments", Operation: "/charge", Reason: "timeout", Requests: 12, Share: 12.0 / 13},
			{Service: "checkout", Operation: "validate cart", Reason: "error", Requests: 1, Share: 1.0 / 13},
		},
		CausedElsewhere: []Caused{},
		Summary:         "checkout: 92% of its 5xx originate in payments /charge (timeout)",
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(1e-12, 0)); diff != "" {
		t.Errorf("checkout origins (-want +got):\n%s", diff)
	}

	pay, err := s.ErrorOrigins(t.Context(), "payments", q, t0.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Caused{{Service: "checkout", Requests: 12}}, pay.CausedElsewhere); diff != "" {
		t.Errorf("payments caused elsewhere (-want +got):\n%s", diff)
	}
	if pay.Summary != "payments: no failed requests in analysed error traces" {
		t.Errorf("payments summary = %q", pay.Summary)
	}
}

func TestOriginSentences(t *testing.T) {
	tests := []struct {
		name string
		rows []OriginRow
		want string
	}{
		{"own errors", []OriginRow{{Service: "a", OriginService: "a", OriginOperation: "/x", Reason: "error", Requests: 3}},
			"a: 100% of its errors originate in a itself, /x (error)"},
		{"dependency", []OriginRow{
			{Service: "a", OriginService: "a", OriginOperation: "SELECT", Reason: "timeout", Dependency: true, Requests: 3, Requests5xx: 3},
			{Service: "a", OriginService: "b", OriginOperation: "/y", Reason: "5xx", Requests: 1, Requests5xx: 1},
		}, "a: 75% of its 5xx originate in a dependency without spans called by a as SELECT (timeout)"},
		{"mixed 5xx and errors", []OriginRow{
			{Service: "a", OriginService: "b", OriginOperation: "/y", Reason: "5xx", Requests: 1, Requests5xx: 1},
			{Service: "a", OriginService: "b", OriginOperation: "/y", Reason: "5xx", Requests: 1},
		}, "a: 100% of its errors originate in b /y (5xx)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := summarizeOrigins("a", t0, t0, tc.rows).Summary
			if got != tc.want {
				t.Errorf("summary = %q\nwant      %q", got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := func() *Config { c := DefaultConfig(); return &c }().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c := DefaultConfig()
	c.Labels = []string{"service", "service", "", "9bad", "otel_metric_overflow", "service_name", "service.name"}
	c.SeriesLimit = 1
	c.HistogramBuckets = []float64{0.1, 0.05}
	c.MaxServices = 0
	c.MaxOperationsPerService = 0
	c.FlushInterval = 0
	c.MaxLateness = units.Duration(2 * time.Hour)
	c.Retention = units.Duration(time.Minute)
	c.RollupAfter = units.Duration(90 * time.Minute)
	c.Cardinality = CardinalityConfig{FlagThreshold: 0, MaxKeysPerService: 0, Window: 0, MaxMemory: -1}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`labels[1]: "service" is listed twice`,
		"labels[2]: must not be empty",
		`labels[3]: "9bad" does not make a valid Prometheus label name`,
		`labels[4]: "otel_metric_overflow" is reserved`,
		`labels[5]: "service_name" is the label of the built-in entry "service"; list "service"`,
		`labels[6]: "service.name" is listed twice`,
		"series_limit: must be at least 2 (one series is kept for the overflow), got 1",
		"histogram_buckets[1]: must be greater than the bound before it, got 0.05 after 0.1",
		"max_services: must be at least 1, got 0",
		"max_operations_per_service: must be at least 1, got 0",
		"flush_interval: must be positive, got 0s",
		"max_lateness: must be between 0 and 1h, got 2h",
		"retention: must be at least 1h, got 1m",
		"rollup_after: must be 0 (never) or a whole number of hours of at least 1h, got 1h30m",
		"cardinality.flag_threshold: must be at least 1, got 0",
		"cardinality.max_keys_per_service: must be between 1 and 4096, got 0",
		"cardinality.window: must be at least 1m, got 0s",
		"cardinality.max_memory: must not be negative, got -1B",
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// TestConcurrentUse runs Observe, ObserveTrace, reads, Collect, flushes and
// window rotations at once; run with -race.
func TestConcurrentUse(t *testing.T) {
	reg := prometheus.NewRegistry()
	store := &memStore{}
	cfg := DefaultConfig()
	cfg.Cardinality.Window = units.Duration(time.Minute)
	s, err := New(cfg, Settings{Store: store, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	req := goldenRequest(t)
	done := make(chan struct{})
	errs := make(chan error, 8)
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				now := t0.Add(time.Duration(i) * time.Second)
				var parsed otlp.Request
				if err := otlp.Parse(req, otlp.Limits{}, &parsed); err != nil {
					errs <- err
					return
				}
				switch w {
				case 0, 1:
					s.Observe(&parsed, now)
				case 2:
					s.ObserveTrace(paymentsTimeout(), now)
					if _, err := s.Services(context.Background(), Query{From: t0, To: t0.Add(time.Hour)}, now); err != nil {
						errs <- err
						return
					}
					if _, err := s.ErrorOrigins(context.Background(), "checkout", Query{From: t0, To: t0.Add(time.Hour)}, now); err != nil {
						errs <- err
						return
					}
					s.Cardinality("", 5)
				case 3:
					if _, err := reg.Gather(); err != nil {
						errs <- err
						return
					}
					if err := s.flush(context.Background(), now, false); err != nil {
						errs <- err
						return
					}
					s.rotateCardinality(now)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := s.flush(t.Context(), t0.Add(time.Hour), true); err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, b := range store.storedBuckets() {
		total += b.Requests
	}
	// Two observers, 200 requests of 5 entry spans each.
	if total != 2*200*5 {
		t.Errorf("stored requests = %d, want %d", total, 2*200*5)
	}
}

// FuzzObserve feeds whatever otlp.Parse accepts to Observe, reading every
// span in full and scanning hot keys, so that the hand-written protobuf
// walks never panic on valid input.
func FuzzObserve(f *testing.F) {
	f.Add(goldenRequest(f))
	f.Add(sdkRequest("a", [][][2]string{{{"user.id", "1"}, {"k", strings.Repeat("v", 200)}}, {{"user.id", "2"}}}))
	s := newTestSignals(f, DefaultConfig(), nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		var req otlp.Request
		if otlp.Parse(b, otlp.Limits{}, &req) != nil {
			return
		}
		for _, stride := range []uint64{1, sampleStride} {
			s.stride = stride
			s.Observe(&req, t0)
		}
		var tb TraceBuilder
		for i := range req.Spans {
			tb.Add(&req.Spans[i], req.SpanResource(&req.Spans[i]).ServiceName)
		}
		s.ObserveTrace(tb.Spans(), t0)
	})
}

// TestConfigYAML decodes the section as documented in docs/signals.md,
// strictly, and finds the defaults.
func TestConfigYAML(t *testing.T) {
	const doc = `
labels: [service, operation, status_class]
series_limit: 2000
histogram_buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
max_services: 1000
max_operations_per_service: 200
flush_interval: 10s
max_lateness: 1m
retention: 35d
rollup_after: 48h
cardinality:
  flag_threshold: 1000
  max_keys_per_service: 256
  window: 1h
  max_memory: 64MiB
`
	var got Config
	if err := yaml.UnmarshalWithOptions([]byte(doc), &got, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultConfig(), got); diff != "" {
		t.Errorf("documented config differs from the defaults (-defaults +doc):\n%s", diff)
	}
}

// A query's end is now, to the nanosecond; the minute that began less
// than a second ago holds buckets too. The stores compare whole seconds,
// so an end of 12:10:00.5 read as 12:10:00 left out the minute of 12:10
// (the kill -9 harness lost its last requests that way when its final
// query ran in the first second of a minute).
func TestQueryInTheFirstSecondOfAMinute(t *testing.T) {
	store := &memStore{}
	s := newTestSignals(t, DefaultConfig(), store)
	minute := t0.Add(10 * time.Minute)
	now := minute.Add(500 * time.Millisecond)
	span := func(service string, end time.Time) spanSpec {
		return spanSpec{service: service, kind: ptrace.SpanKindServer, name: "x", start: end.Add(-time.Millisecond), end: end}
	}
	s.Observe(parseRequest(t, buildRequest(t,
		span("a", minute.Add(-time.Second)), span("a", minute.Add(100*time.Millisecond)), span("checkout", minute))), now)
	s.ObserveTrace(paymentsTimeout(), now)
	for _, stored := range []bool{false, true} {
		if stored {
			if err := s.flush(t.Context(), now, true); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Service(t.Context(), "a", Query{From: now.Add(-time.Hour)}, now)
		if err != nil {
			t.Fatal(err)
		}
		if got.Requests != 2 {
			t.Errorf("stored %v: %d requests in the last hour, want 2 (one at 12:09:59, one at 12:10:00.1)", stored, got.Requests)
		}
		eo, err := s.ErrorOrigins(t.Context(), "checkout", Query{From: now.Add(-time.Hour)}, now)
		if err != nil {
			t.Fatal(err)
		}
		if eo.FailedRequests != 1 {
			t.Errorf("stored %v: %v failed checkout requests, want 1", stored, eo.FailedRequests)
		}
	}
}
