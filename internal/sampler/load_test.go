package sampler

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func TestStressRelief(t *testing.T) {
	for _, tt := range []struct {
		name     string
		maxSpans int
		attrSize int
	}{
		{"spans", 1000, 0},
		{"bytes", 1_000_000, 2000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig() // default rules: errors, slow, 5%
				cfg.MaxBufferedSpans = tt.maxSpans
				cfg.MaxBufferedBytes = 1 << 20
				cfg.Overload.Policy = PolicyDecideEarly
				env := startEnv(t, cfg, Settings{})
				big := strings.Repeat("x", tt.attrSize)
				errorTraces := map[otlp.TraceID]int{}
				for i := range 500 {
					id := traceID(uint64(i), 0) // R = 0: never kept by the 5% rule
					spans := simpleTrace(id, 10, "svc", false)
					for j := range spans {
						spans[j].attrs = map[string]any{"payload": big}
					}
					if i%7 == 0 {
						spans[5].err = true
						errorTraces[id] = 10
					}
					if err := env.consume(t, spans); err != nil {
						t.Fatal(err)
					}
					synctest.Wait()
					if n := env.metric(t, "tailgate_sampler_buffered_spans"); n > float64(tt.maxSpans) {
						t.Fatalf("after trace %d: %v spans buffered, limit %d", i, n, tt.maxSpans)
					}
					if n := env.metric(t, "tailgate_sampler_buffered_bytes"); n > 1<<20 {
						t.Fatalf("after trace %d: %v bytes buffered, limit 1MiB", i, n)
					}
				}
				if n := env.metric(t, "tailgate_sampler_stress_relief_traces_total"); n == 0 {
					t.Error("no trace counted as decided by stress relief")
				}
				if n := env.metric(t, "tailgate_sampler_stress_relief_episodes_total"); n != 1 {
					t.Errorf("stress relief episodes = %v, want 1 (the buffer stayed over its limits without a pause)", n)
				}
				if n := strings.Count(env.log.String(), "stress relief"); n != 1 {
					t.Errorf("stress relief logged %d times, want once per episode:\n%s", n, env.log)
				}
				time.Sleep(31 * time.Second) // the rest are decided by decision_wait
				synctest.Wait()
				if diff := cmp.Diff(errorTraces, keptTraces(env.exp.kept(t))); diff != "" {
					t.Errorf("kept traces (-want +got):\n%s", diff)
				}
				// The episode ended once relief was no longer needed.
				if !strings.Contains(env.log.String(), "stress relief episode ended") {
					t.Errorf("episode end not logged:\n%s", env.log)
				}
			})
		})
	}
}

func TestBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(keepAll("all"))
		cfg.RootGrace = 0
		cfg.IntakeSpans = 100
		cfg.ExportBatchSpans = 10
		env := startEnv(t, cfg, Settings{})
		gate := make(chan struct{})
		env.exp.mu.Lock()
		env.exp.gate = gate
		env.exp.mu.Unlock()

		accepted := map[otlp.TraceID]int{}
		var bp *BackpressureError
		for i := range 1000 {
			id := traceID(uint64(i), 0)
			err := env.consume(t, simpleTrace(id, 10, "svc", true))
			if errors.As(err, &bp) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			accepted[id] = 10
			time.Sleep(200 * time.Millisecond)
		}
		if bp == nil {
			t.Fatal("Consume never pushed back while the exporter was blocked")
		}
		var ra interface{ RetryAfter() time.Duration }
		if !errors.As(error(bp), &ra) || ra.RetryAfter() != time.Second {
			t.Errorf("backpressure error %v has no 1s RetryAfter", bp)
		}
		if got := env.metric(t, "tailgate_sampler_backpressure_requests_total"); got != 1 {
			t.Errorf("backpressure_requests_total = %v", got)
		}
		close(gate)
		time.Sleep(time.Second)
		synctest.Wait()
		if diff := cmp.Diff(accepted, keptTraces(env.exp.kept(t))); diff != "" {
			t.Errorf("exported traces differ from accepted ones (-want +got):\n%s", diff)
		}
		// And the intake takes spans again.
		if err := env.consume(t, simpleTrace(traceID(5000, 0), 10, "svc", true)); err != nil {
			t.Errorf("Consume after the exporter drained: %v", err)
		}
	})
}

func TestConsumeAllOrNothing(t *testing.T) {
	cfg := testConfig(keepAll("all"))
	cfg.IntakeSpans = 25
	cfg.Shards = 4
	env := newEnv(t, cfg, Settings{}) // not started: nothing drains the intake
	defer env.s.Shutdown(t.Context())
	var specs []spanSpec
	for i := range 4 {
		specs = append(specs, simpleTrace(traceID(uint64(i), 0), 5, "svc", true)...)
	}
	if err := env.consume(t, specs); err != nil { // 20 spans
		t.Fatal(err)
	}
	err := env.consume(t, simpleTrace(traceID(9, 0), 6, "svc", true))
	var bp *BackpressureError
	if !errors.As(err, &bp) || bp.Spans != 6 {
		t.Fatalf("Consume over the intake = %v", err)
	}
	if got := env.s.intake.Load(); got != 20 {
		t.Errorf("intake = %d after a refused request, want 20", got)
	}
	// A request larger than the whole intake still gets in when it is empty.
	env.s.processSync()
	if err := env.consume(t, simpleTrace(traceID(10, 0), 40, "svc", true)); err != nil {
		t.Errorf("oversized request into an empty intake: %v", err)
	}
}

func TestExportedRequestsDecode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := startEnv(t, testConfig(), Settings{}) // default rules
		errID := traceID(1, 0)
		slowID := traceID(2, 0)
		keptID := traceID(3, 0xF4000000000000)    // R >= 0xF3333333333333: kept at 5%
		droppedID := traceID(4, 0xF3333333333332) // R just below T: dropped
		mk := func(id otlp.TraceID) []spanSpec {
			return []spanSpec{
				{trace: id, id: 1, name: "GET /cart", service: "web", kind: ptrace.SpanKindServer, dur: 10 * time.Millisecond,
					attrs: map[string]any{"http.route": "/cart"}, state: "vendor=x"},
				{trace: id, id: 2, parent: 1, name: "charge", service: "payments", kind: ptrace.SpanKindClient, dur: time.Millisecond,
					res: map[string]any{"host.name": "h1"}},
				{trace: id, id: 3, parent: 1, name: "render", service: "web", dur: time.Millisecond},
			}
		}
		var specs []spanSpec
		e := mk(errID)
		e[1].err = true
		specs = append(specs, e...)
		s := mk(slowID)
		s[2].dur = 2 * time.Second
		specs = append(specs, s...)
		specs = append(specs, mk(keptID)...)
		specs = append(specs, mk(droppedID)...)
		if err := env.consume(t, specs); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()

		var want []keptSpan
		for _, c := range []struct {
			id         otlp.TraceID
			rule       string
			rate       float64
			rootState  string
			childState string
		}{
			{errID, "errors", 1, "vendor=x", ""},
			{slowID, "slow", 1, "vendor=x", ""},
			{keptID, "rest", 20, "ot=th:f3333333333333,vendor=x", "ot=th:f3333333333333"},
		} {
			want = append(want,
				keptSpan{c.id, 1, "GET /cart", "web", c.rule, c.rate, c.rootState, false},
				keptSpan{c.id, 3, "render", "web", c.rule, c.rate, c.childState, false},
				keptSpan{c.id, 2, "charge", "payments", c.rule, c.rate, c.childState, false},
			)
		}
		got := env.exp.kept(t)
		less := func(a, b keptSpan) bool {
			if a.Trace != b.Trace {
				return string(a.Trace[:]) < string(b.Trace[:])
			}
			return a.Span < b.Span
		}
		if diff := cmp.Diff(want, got, cmpopts.SortSlices(less)); diff != "" {
			t.Errorf("exported spans (-want +got):\n%s", diff)
		}
		// Attributes and resources survive unchanged.
		req := ptraceOf(t, env.exp)
		found := false
		rss := req.ResourceSpans()
		for i := range rss.Len() {
			rs := rss.At(i)
			if h, ok := rs.Resource().Attributes().Get("host.name"); ok && h.Str() == "h1" {
				found = true
			}
			ss := rs.ScopeSpans().At(0)
			if ss.Scope().Name() != "tailgate-test" || ss.Scope().Version() != "1.0" {
				t.Errorf("scope = %q %q", ss.Scope().Name(), ss.Scope().Version())
			}
			for j := range ss.Spans().Len() {
				sp := ss.Spans().At(j)
				if sp.Name() == "GET /cart" {
					if r, ok := sp.Attributes().Get("http.route"); !ok || r.Str() != "/cart" {
						t.Errorf("http.route lost: %v", sp.Attributes().AsRaw())
					}
				}
			}
		}
		if !found {
			t.Error("resource attribute host.name lost")
		}
		if got := env.metric(t, "tailgate_sampler_spans_kept_total", "rule", "rest"); got != 3 {
			t.Errorf("spans_kept_total{rule=rest} = %v", got)
		}
		if got := env.metric(t, "tailgate_sampler_spans_not_sampled_total", "rule", "rest"); got != 3 {
			t.Errorf("spans_not_sampled_total{rule=rest} = %v", got)
		}
		if got := env.metric(t, "tailgate_sampler_spans_received_total"); got != 12 {
			t.Errorf("spans_received_total = %v", got)
		}
	})
}

// ptraceOf merges what the exporter received into one pdata Traces.
func ptraceOf(t *testing.T, e *fakeExporter) ptrace.Traces {
	t.Helper()
	e.mu.Lock()
	var all []byte
	for _, r := range e.reqs {
		all = append(all, r...)
	}
	e.mu.Unlock()
	req := ptraceotlpNewExportRequest()
	if err := req.UnmarshalProto(all); err != nil {
		t.Fatal(err)
	}
	return req.Traces()
}

// TestManyResources sends a request whose scopes times shards is beyond the
// dense group table, with every span under its own resource.
func TestManyResources(t *testing.T) {
	cfg := testConfig(keepAll("all"))
	cfg.Shards = 256
	cfg.DecisionCache.MaxDroppedTraces = 256
	env := newEnv(t, cfg, Settings{})
	var specs []spanSpec
	want := map[otlp.TraceID]int{}
	for i := range 300 {
		id := traceID(uint64(i%30), 0)
		specs = append(specs, spanSpec{trace: id, id: uint64(i + 1), parent: uint64(1000 + i), service: "svc",
			res: map[string]any{"host.name": strings.Repeat("h", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))}})
		want[id]++
	}
	if err := env.consume(t, specs); err != nil {
		t.Fatal(err)
	}
	if err := env.s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, keptTraces(env.exp.kept(t))); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	hosts := map[string]bool{}
	rss := ptraceOf(t, env.exp).ResourceSpans()
	for i := range rss.Len() {
		h, _ := rss.At(i).Resource().Attributes().Get("host.name")
		hosts[h.Str()] = true
	}
	if len(hosts) != 300 {
		t.Errorf("%d distinct resources exported, want 300", len(hosts))
	}
}

func TestConcurrentConsume(t *testing.T) {
	cfg := testConfig(keepAll("all"))
	cfg.Shards = 4
	cfg.IntakeSpans = 1 << 20
	env := newEnv(t, cfg, Settings{})
	if err := env.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	const workers, traces = 4, 200
	reqs := make([][][]byte, workers)
	for w := range workers {
		for i := range traces {
			reqs[w] = append(reqs[w], marshal(t, simpleTrace(traceID(uint64(w*traces+i), uint64(i)), 5, "svc", true)))
		}
	}
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var req otlp.Request
			for _, b := range reqs[w] {
				req.Reset()
				if err := otlp.Parse(b, otlp.Limits{}, &req); err != nil {
					errs <- err
					return
				}
				if err := env.s.Consume(t.Context(), &req); err != nil {
					errs <- err
					return
				}
				// The request's bytes are reused after Consume returns.
				clear(b)
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := env.s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := keptTraces(env.exp.kept(t))
	if len(got) != workers*traces {
		t.Fatalf("kept %d traces, want %d", len(got), workers*traces)
	}
	for id, n := range got {
		if n != 5 {
			t.Errorf("trace %v: %d spans, want 5", id, n)
		}
	}
}
