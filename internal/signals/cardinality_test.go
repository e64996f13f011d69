package signals

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestCardinalityReport(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cardinality.FlagThreshold = 10
	s := newTestSignals(t, cfg, nil)
	s.stride = 1 // read every span in full: exact counts
	at := t0.Add(time.Second)
	var spans []spanSpec
	for i := range 100 {
		attrs := map[string]any{
			"user.id":             fmt.Sprintf("u%d", i%50),
			"http.request.method": []string{"GET", "POST"}[i%2],
		}
		if i%10 == 0 {
			attrs["rare"] = true
		}
		spans = append(spans, spanSpec{service: "api", resource: map[string]any{"host.name": "h1"},
			kind: ptrace.SpanKindServer, name: "x", start: at, end: at.Add(ms(1)), attrs: attrs})
	}
	s.Observe(parseRequest(t, buildRequest(t, spans...)), at)

	got := s.Cardinality("", 0)
	// One series (api, x, ok) today. user.id: 50 values × 1 series.
	want := CardinalityReport{
		WindowStart: at, FlagThreshold: 10, SeriesLimit: 2000, Series: 1,
		Services: []ServiceCardinality{{
			Service: "api", Spans: 100, Series: 1, KeysTracked: 5, Flagged: 1,
			Keys: []KeyCardinality{
				{Key: "user.id", Source: "span", Distinct: 50, CurrentWindowDistinct: 50, Share: 1, SeriesAsLabel: 50, AddedSeries: 49,
					Flagged: true, Suggestion: "an identifier: keep it on spans to search traces and use exemplars, never as a metric label"},
				{Key: "http.request.method", Source: "span", Distinct: 2, CurrentWindowDistinct: 2, Share: 1, SeriesAsLabel: 2, AddedSeries: 1},
				{Key: "host.name", Source: "resource", Distinct: 1, CurrentWindowDistinct: 1, Share: 1, SeriesAsLabel: 1},
				{Key: "rare", Source: "span", Distinct: 1, CurrentWindowDistinct: 1, Share: 0.1, SeriesAsLabel: 1},
				{Key: "service.name", Source: "resource", Distinct: 1, CurrentWindowDistinct: 1, Share: 1, SeriesAsLabel: 1},
			},
		}},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(1e-12, 0)); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if top := s.Cardinality("api", 2); len(top.Services) != 1 || len(top.Services[0].Keys) != 2 {
		t.Errorf("top 2 = %+v", top.Services)
	}
	if none := s.Cardinality("nope", 0); len(none.Services) != 0 {
		t.Errorf("unknown service report = %+v", none.Services)
	}

	// A new window: the counts of the last one stay as the previous window's
	// until the key is seen again; keys and services not seen for a whole
	// window are forgotten.
	next := at.Add(cfg.Cardinality.Window.Std())
	s.rotateCardinality(next)
	s.Observe(parseRequest(t, buildRequest(t,
		spanSpec{service: "api", kind: ptrace.SpanKindInternal, name: "y", start: next, end: next, attrs: map[string]any{"user.id": "u1"}},
	)), next)
	rep := s.Cardinality("api", 1)
	k := rep.Services[0].Keys[0]
	if k.Key != "user.id" || k.Distinct != 50 || k.CurrentWindowDistinct != 1 || k.PreviousWindowDistinct != 50 || !k.Flagged {
		t.Errorf("user.id after rotation = %+v", k)
	}
	if rep.PreviousWindowStart == nil || !rep.PreviousWindowStart.Equal(at) {
		t.Errorf("previous window start = %v, want %v", rep.PreviousWindowStart, at)
	}
	s.rotateCardinality(next.Add(cfg.Cardinality.Window.Std()))
	if n := s.Cardinality("api", 0).Services[0].KeysTracked; n != 2 {
		t.Errorf("keys after a window without them = %d, want 2 (user.id, service.name)", n)
	}
	// Buckets not yet written keep a service alive; once written, it goes.
	if err := s.flush(t.Context(), next, true); err != nil {
		t.Fatal(err)
	}
	s.rotateCardinality(next.Add(2 * cfg.Cardinality.Window.Std()))
	if n := len(s.Cardinality("", 0).Services); n != 0 {
		t.Errorf("services after an idle window = %d, want 0", n)
	}
}

func TestCardinalityKeyLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cardinality.MaxKeysPerService = 3
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Settings{Store: &memStore{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.stride = 1
	attrs := map[string]any{}
	for i := range 10 {
		attrs[fmt.Sprintf("k%d", i)] = i
	}
	s.Observe(parseRequest(t, buildRequest(t, spanSpec{service: "a", kind: ptrace.SpanKindInternal, name: "x", start: t0, end: t0, attrs: attrs})), t0)
	sc := s.Cardinality("a", 0).Services[0]
	// Three span keys, and service.name in the resource table.
	if sc.KeysTracked != 4 || sc.UntrackedKeys != 7 {
		t.Errorf("tracked %d, untracked %d; want 4 and 7", sc.KeysTracked, sc.UntrackedKeys)
	}
	if v := metricValues(t, reg, "tailgate_signals_cardinality_untracked_attributes_total")[""]; v != 7 {
		t.Errorf("untracked_attributes_total = %v, want 7", v)
	}
}

func TestCardinalityMemoryBudget(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cardinality.MaxMemory = hllRegisters // one dense sketch
	s := newTestSignals(t, cfg, nil)
	s.stride = 1
	var spans []spanSpec
	for i := range 200 {
		spans = append(spans, spanSpec{service: "a", kind: ptrace.SpanKindInternal, name: "x", start: t0, end: t0,
			attrs: map[string]any{"a.id": fmt.Sprintf("a%d", i), "b.id": fmt.Sprintf("b%d", i)}})
	}
	s.Observe(parseRequest(t, buildRequest(t, spans...)), t0)
	keys := map[string]KeyCardinality{}
	for _, k := range s.Cardinality("a", 0).Services[0].Keys {
		keys[k.Key] = k
	}
	if k := keys["a.id"]; k.DistinctIsLowerBound || k.Distinct < 196 || k.Distinct > 204 {
		t.Errorf("a.id (got the sketch) = %+v", k)
	}
	if k := keys["b.id"]; !k.DistinctIsLowerBound || k.Distinct != hllSetMax {
		t.Errorf("b.id (no memory left) = %+v, want a lower bound of %d", k, hllSetMax)
	}
}

// TestCardinalitySampling checks the sampled reading of span attributes:
// a key with many values sees (nearly) all of them, a settled key is read
// on sampled spans only and still notices a new value, and shares are
// estimated from the sample.
func TestCardinalitySampling(t *testing.T) {
	s := newTestSignals(t, DefaultConfig(), nil)
	const n = 5000
	var spans []spanSpec
	for i := range n {
		spans = append(spans, spanSpec{service: "a", kind: ptrace.SpanKindInternal, name: "x", start: t0, end: t0,
			attrs: map[string]any{"request.id": fmt.Sprintf("r%d", i), "method": []string{"GET", "POST"}[i%2]}})
	}
	s.Observe(parseRequest(t, buildRequest(t, spans...)), t0)
	keys := func() map[string]KeyCardinality {
		out := map[string]KeyCardinality{}
		for _, k := range s.Cardinality("a", 0).Services[0].Keys {
			out[k.Key] = k
		}
		return out
	}
	k := keys()
	if id := k["request.id"]; math.Abs(float64(id.Distinct)-n)/n > 0.02 || id.Share < 0.98 {
		t.Errorf("request.id = %+v, want about %d values on every span", id, n)
	}
	if m := k["method"]; m.Distinct != 2 || math.Abs(m.Share-1) > 0.15 {
		t.Errorf("method = %+v, want 2 values, share about 1", m)
	}
	st := s.st.services["a"].spanKeys
	for _, key := range st.keys {
		if key.name == "method" && !key.settled {
			t.Errorf("method did not settle after %d spans", n)
		}
		if key.name == "request.id" && key.settled {
			t.Errorf("request.id settled")
		}
	}
	// A new method value on 400 spans is found on a sampled one.
	spans = spans[:0]
	for range 400 {
		spans = append(spans, spanSpec{service: "a", kind: ptrace.SpanKindInternal, name: "x", start: t0, end: t0,
			attrs: map[string]any{"method": "PATCH"}})
	}
	s.Observe(parseRequest(t, buildRequest(t, spans...)), t0)
	if m := keys()["method"]; m.Distinct != 3 {
		t.Errorf("method after PATCH = %+v, want 3 values", m)
	}
}

// letters writes n in base 26 with letters, so that route normalisation
// keeps every value distinct.
func letters(n int) string {
	b := []byte{}
	for {
		b = append(b, byte('a'+n%26))
		n /= 26
		if n == 0 {
			return string(b)
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestCardinalityFlood sends 1,000,000 distinct user.id values and 100,000
// distinct routes through the real path (pdata, protobuf, otlp.Parse,
// Observe): the metric series stay at the limit, memory stays bounded, and
// the report names user.id within 2% of the truth.
func TestCardinalityFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a million spans")
	}
	const (
		spans   = 1_000_000
		routes  = 100_000
		perReq  = 1000
		maxHeap = 48 << 20
	)
	cfg := DefaultConfig()
	// Let operations through so that the series limit (2000) is what
	// binds: 5000 operations would make 5000 series.
	cfg.MaxOperationsPerService = 5000
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Settings{Store: &memStore{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	before := heapInUse()
	at := t0.Add(time.Second)
	for batch := range spans / perReq {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "shop")
		rs.Resource().Attributes().PutStr("host.name", "node-1")
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		ss.EnsureCapacity(perReq)
		for j := range perReq {
			i := batch*perReq + j
			sp := ss.AppendEmpty()
			sp.SetTraceID([16]byte{1, byte(i >> 16), byte(i >> 8), byte(i)})
			sp.SetSpanID([8]byte{1, byte(i >> 16), byte(i >> 8), byte(i)})
			sp.SetKind(ptrace.SpanKindServer)
			route := "/items/" + letters(i%routes)
			sp.SetName("GET " + route)
			sp.SetStartTimestamp(pcommonTime(at))
			sp.SetEndTimestamp(pcommonTime(at.Add(time.Duration(1+i%500) * time.Millisecond)))
			a := sp.Attributes()
			a.PutStr("user.id", fmt.Sprintf("user-%d", i))
			a.PutStr("http.route", route)
			a.PutStr("http.request.method", "GET")
			a.PutInt("http.response.status_code", 200)
		}
		raw, err := marshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		s.Observe(parseRequest(t, raw), at)
	}
	after := heapInUse()
	grown := int64(after) - int64(before)
	t.Logf("heap grew by %.1f MiB over %d spans", float64(grown)/(1<<20), spans)
	if grown > maxHeap {
		t.Errorf("heap grew by %d bytes, more than %d", grown, maxHeap)
	}

	if got := metricValues(t, reg, "tailgate_signals_series")[""]; got != float64(cfg.SeriesLimit) {
		t.Errorf("series = %v, want the limit %d", got, cfg.SeriesLimit)
	}
	req := metricValues(t, reg, "tailgate_service_requests_total")
	if len(req) != cfg.SeriesLimit {
		t.Errorf("requests_total has %d series, want %d", len(req), cfg.SeriesLimit)
	}
	var total float64
	for _, v := range req {
		total += v
	}
	if total != spans {
		t.Errorf("requests_total sums to %v, want %d", total, spans)
	}

	rep := s.Cardinality("shop", 3)
	keys := rep.Services[0].Keys
	if len(keys) < 2 || keys[0].Key != "user.id" || keys[1].Key != "http.route" {
		t.Fatalf("top keys = %+v, want user.id then http.route", keys)
	}
	for _, tc := range []struct {
		k    KeyCardinality
		want float64
	}{{keys[0], spans}, {keys[1], routes}} {
		relErr := math.Abs(float64(tc.k.Distinct)-tc.want) / tc.want
		t.Logf("%s: estimate %d, truth %.0f, error %.2f%%", tc.k.Key, tc.k.Distinct, tc.want, 100*relErr)
		if relErr > 0.02 || !tc.k.Flagged || tc.k.Suggestion == "" {
			t.Errorf("%s = %+v, want within 2%% of %.0f and flagged", tc.k.Key, tc.k, tc.want)
		}
	}
}

// sdkRequest encodes spans the way the OpenTelemetry SDKs (protobuf-go) do:
// fields in ascending order, a KeyValue's key before its value. Each span
// is a list of string attributes.
func sdkRequest(service string, spans [][][2]string) []byte {
	kv := func(k, v string) []byte {
		var any []byte
		any = protowire.AppendTag(any, 1, protowire.BytesType)
		any = protowire.AppendString(any, v)
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		return protowire.AppendBytes(b, any)
	}
	var ss []byte
	for i, attrs := range spans {
		var sp []byte
		sp = protowire.AppendTag(sp, 1, protowire.BytesType)
		sp = protowire.AppendBytes(sp, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		sp = protowire.AppendTag(sp, 2, protowire.BytesType)
		sp = protowire.AppendBytes(sp, []byte{0, 0, 0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i) | 1})
		sp = protowire.AppendTag(sp, 5, protowire.BytesType)
		sp = protowire.AppendString(sp, "GET /x")
		sp = protowire.AppendTag(sp, 6, protowire.VarintType)
		sp = protowire.AppendVarint(sp, 1)
		sp = protowire.AppendTag(sp, 7, protowire.Fixed64Type)
		sp = protowire.AppendFixed64(sp, uint64(t0.UnixNano()))
		sp = protowire.AppendTag(sp, 8, protowire.Fixed64Type)
		sp = protowire.AppendFixed64(sp, uint64(t0.UnixNano()))
		for _, a := range attrs {
			sp = protowire.AppendTag(sp, 9, protowire.BytesType)
			sp = protowire.AppendBytes(sp, kv(a[0], a[1]))
		}
		ss = protowire.AppendTag(ss, 2, protowire.BytesType)
		ss = protowire.AppendBytes(ss, sp)
	}
	var res []byte
	res = protowire.AppendTag(res, 1, protowire.BytesType)
	res = protowire.AppendBytes(res, kv("service.name", service))
	var rs []byte
	rs = protowire.AppendTag(rs, 1, protowire.BytesType)
	rs = protowire.AppendBytes(rs, res)
	rs = protowire.AppendTag(rs, 2, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rs)
}

// TestHotPathMatchesFullRead checks the hot scan against reading every
// attribute of every span: once the keys exist, a key with many values
// gets the same distinct count and span count either way, whatever the
// encoding (pdata's value-first KeyValues, the SDKs' key-first ones, values
// of 128 bytes and more whose lengths take two bytes) and whether or not a
// span fits its name's learned layout (optional attributes move positions).
func TestHotPathMatchesFullRead(t *testing.T) {
	const n = 3000
	long := strings.Repeat("L", 200)
	attrsOf := func(i int) [][2]string {
		a := [][2]string{{"method", "GET"}}
		if i%3 == 0 {
			a = append(a, [2]string{"optional", "x"})
		}
		if i%5 == 0 {
			a = append(a, [2]string{"long", long})
		}
		a = append(a, [2]string{"user.id", fmt.Sprintf("u%d", i)})
		if i%7 == 0 {
			a = append(a, [2]string{"late.id", fmt.Sprintf("l%d", i)}, [2]string{"long2", long + fmt.Sprint(i)})
		}
		return append(a, [2]string{"scheme", "https"})
	}
	encodings := map[string]func(lo, hi int) []byte{
		"pdata": func(lo, hi int) []byte {
			var spans []spanSpec
			for i := lo; i < hi; i++ {
				attrs := map[string]any{}
				for _, a := range attrsOf(i) {
					attrs[a[0]] = a[1]
				}
				spans = append(spans, spanSpec{service: "a", kind: ptrace.SpanKindInternal, name: "GET /x", start: t0, end: t0, attrs: attrs})
			}
			return buildRequest(t, spans...)
		},
		"sdk": func(lo, hi int) []byte {
			var spans [][][2]string
			for i := lo; i < hi; i++ {
				spans = append(spans, attrsOf(i))
			}
			return sdkRequest("a", spans)
		},
	}
	for name, enc := range encodings {
		t.Run(name, func(t *testing.T) {
			full := newTestSignals(t, DefaultConfig(), nil)
			full.stride = 1
			hot := newTestSignals(t, DefaultConfig(), nil)
			// The first spans create the keys in both.
			hot.stride = 1
			warm := parseRequest(t, enc(0, 21))
			full.Observe(warm, t0)
			hot.Observe(warm, t0)
			hot.stride = sampleStride
			for lo := 21; lo < n; lo += 500 {
				req := parseRequest(t, enc(lo, min(lo+500, n)))
				full.Observe(req, t0)
				hot.Observe(req, t0)
			}
			get := func(s *Signals) map[string]KeyCardinality {
				out := map[string]KeyCardinality{}
				for _, k := range s.Cardinality("a", 0).Services[0].Keys {
					out[k.Key] = k
				}
				return out
			}
			f, h := get(full), get(hot)
			for _, key := range []string{"user.id", "late.id", "long2"} {
				if f[key].Distinct != h[key].Distinct || f[key].Share != h[key].Share {
					t.Errorf("%s: full read %d values share %.4f, hot scan %d values share %.4f",
						key, f[key].Distinct, f[key].Share, h[key].Distinct, h[key].Share)
				}
			}
			if d := f["user.id"].Distinct; math.Abs(float64(d)-n)/n > 0.02 {
				t.Errorf("user.id distinct = %d, want about %d", d, n)
			}
		})
	}
}
