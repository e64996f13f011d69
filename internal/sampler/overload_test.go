package sampler

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestFinalVerdict(t *testing.T) {
	yes, no := true, false
	rl := &RateLimitConfig{PerSecond: 10}
	// A trace whose spans span d, with or without an error span.
	trace := func(bad bool, d time.Duration) *Trace {
		return &Trace{bad: bad, spans: make([]spanRec, 3), minStart: 1000, maxEnd: 1000 + uint64(d), root: -1}
	}
	for _, tt := range []struct {
		name  string
		rules []RuleConfig
		tr    *Trace
		final bool
		want  Decision
		rule  int
	}{
		{"error keep matched", DefaultConfig().Rules, trace(true, 0), true, Keep, 0},
		{"no error yet: errors may still match", DefaultConfig().Rules, trace(false, 0), false, 0, 0},
		{"slow matched, errors may still match first", DefaultConfig().Rules, trace(false, 2*time.Second), false, 0, 0},
		{"duration over, first rule", []RuleConfig{{Name: "slow", When: &WhenConfig{DurationOver: dur(time.Second)}, Keep: true}, dropAll("rest")},
			trace(false, 2*time.Second), true, Keep, 0},
		{"duration not over yet", []RuleConfig{{Name: "slow", When: &WhenConfig{DurationOver: dur(time.Second)}, Keep: true}, dropAll("rest")},
			trace(false, time.Second/2), false, 0, 0},
		{"error:false fails for good, next rule decides", []RuleConfig{{Name: "ok", When: &WhenConfig{Error: &no}, Drop: true}, keepAll("all")},
			trace(true, 0), true, Keep, 1},
		{"error:false holds for now only", []RuleConfig{{Name: "ok", When: &WhenConfig{Error: &no}, Drop: true}, keepAll("all")},
			trace(false, 0), false, 0, 0},
		{"every rule fails for good: none, drop", []RuleConfig{{Name: "ok", When: &WhenConfig{Error: &no}, Keep: true}},
			trace(true, 0), true, Drop, -1},
		{"rate limit is never final", []RuleConfig{{Name: "rl", When: &WhenConfig{Error: &yes}, RateLimit: rl}},
			trace(true, 0), false, 0, 0},
		{"sample_percent is final once reached", []RuleConfig{{Name: "e", When: &WhenConfig{Error: &yes}, Keep: true}, percent("p", 100)},
			trace(true, 0), true, Keep, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := newPolicy(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			v, ok := p.final(tt.tr, epoch, &scratch{})
			if ok != tt.final {
				t.Fatalf("final = %v, want %v", ok, tt.final)
			}
			if ok && (v.decision != tt.want || v.rule != tt.rule) {
				t.Errorf("verdict = %v by rule %d, want %v by rule %d", v.decision, v.rule, tt.want, tt.rule)
			}
		})
	}
}

// TestPushBack fills the buffer with traces whose verdict is not final
// (no root, no error: the errors rule may still match) and some error
// traces (final: kept). Over its limit the sampler decides only the
// error traces early and then refuses requests until decision_wait
// drains the buffer; nothing accepted is lost and nothing is decided by
// stress relief.
func TestPushBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, perTrace = 1000, 10
		cfg := testConfig() // errors: keep, slow: keep, rest: 5%
		cfg.MaxBufferedSpans = limit
		env := startEnv(t, cfg, Settings{})

		// An independent model of the policy for one shard and one
		// trace per request: over the limit, the buffered error traces
		// go; if it is still over, refuse until the deadlines.
		spans, bufErr, early, over := 0, 0, 0, false
		accepted := map[otlp.TraceID]int{}
		refused, modelRefused := 0, 0
		for i := range 300 {
			id := traceID(uint64(i), 0) // R = 0: never kept by the 5% rule
			isErr := i%7 == 0
			if over {
				modelRefused++
			} else {
				spans += perTrace
				if isErr {
					bufErr++
				}
				if spans > limit {
					spans -= perTrace * bufErr
					early += bufErr
					bufErr = 0
					over = spans > limit
				}
			}
			tr := simpleTrace(id, perTrace, "svc", false)
			if isErr {
				tr[3].err = true
			}
			err := env.consume(t, tr)
			var bp *BackpressureError
			switch {
			case errors.As(err, &bp):
				if !bp.Buffer || bp.RetryAfter() != time.Second {
					t.Fatalf("backpressure %+v, want a buffer refusal with a 1s delay", bp)
				}
				refused++
			case err != nil:
				t.Fatal(err)
			default:
				if isErr {
					accepted[id] = perTrace
				}
			}
			synctest.Wait()
			if n := env.metric(t, "tailgate_sampler_buffered_spans"); n > limit+perTrace {
				t.Fatalf("after trace %d: %v spans buffered, limit %d + one request", i, n, limit)
			}
		}
		if refused != modelRefused || refused == 0 {
			t.Errorf("refused %d requests, the model says %d (> 0)", refused, modelRefused)
		}
		if got := env.metric(t, "tailgate_sampler_overload_refused_requests_total"); got != float64(refused) {
			t.Errorf("overload_refused_requests_total = %v, want %d", got, refused)
		}
		if got := env.metric(t, "tailgate_sampler_overload_early_traces_total"); got != float64(early) || early == 0 {
			t.Errorf("overload_early_traces_total = %v, the model says %d (> 0)", got, early)
		}
		if got := env.metric(t, "tailgate_sampler_stress_relief_traces_total"); got != 0 {
			t.Errorf("stress relief decided %v traces under push_back", got)
		}

		time.Sleep(31 * time.Second) // decision_wait drains the buffer
		synctest.Wait()
		if err := env.consume(t, simpleTrace(traceID(5000, 0), perTrace, "svc", false)); err != nil {
			t.Errorf("Consume after the buffer drained: %v", err)
		}
		if diff := cmp.Diff(accepted, keptTraces(env.exp.kept(t))); diff != "" {
			t.Errorf("kept traces differ from the accepted error traces (-want +got):\n%s", diff)
		}
	})
}

// TestPushBackLargeRequest: a request larger than the whole buffer is
// admitted when the buffer is under its limits (so a retrying client gets
// through), and the buffer then refuses until it drains.
func TestPushBackLargeRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxBufferedSpans = 100
		env := startEnv(t, cfg, Settings{})
		var big []spanSpec
		for i := range 30 {
			big = append(big, simpleTrace(traceID(uint64(i), 0), 10, "svc", false)...)
		}
		if err := env.consume(t, big); err != nil {
			t.Fatalf("a 300-span request into an empty 100-span buffer: %v", err)
		}
		synctest.Wait()
		var bp *BackpressureError
		if err := env.consume(t, simpleTrace(traceID(100, 0), 10, "svc", false)); !errors.As(err, &bp) {
			t.Fatalf("Consume over the limit = %v, want backpressure", err)
		}
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if err := env.consume(t, big); err != nil {
			t.Fatalf("the same request after the buffer drained: %v", err)
		}
	})
}

// TestDroppedFilterOverride fills a small, loose dropped-trace filter to
// capacity with dropped OK traces, then sends thousands of new error
// traces: every one is kept, and the overrides counted are exactly the
// new IDs the filter claims (checked with the filter's own has()).
func TestDroppedFilterOverride(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		yes := true
		cfg := testConfig(RuleConfig{Name: "errors", When: &WhenConfig{Error: &yes}, Keep: true}, dropAll("rest"))
		cfg.DecisionCache.MaxDroppedTraces = 2000
		cfg.DecisionCache.FalsePositiveRate = 0.05
		env := startEnv(t, cfg, Settings{})
		const fill, fresh = 2000, 5000
		for i := range fill {
			if err := env.consume(t, simpleTrace(traceID(uint64(i), uint64(i)), 3, "svc", true)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * time.Second) // root_grace: all dropped
		synctest.Wait()
		sh := env.s.shards[0]
		if c := sh.cache.cur; c.count != fill || !c.full() || sh.cache.prev != nil {
			t.Fatalf("filter holds %d of %d IDs (prev %v), want exactly full", c.count, c.capacity, sh.cache.prev)
		}
		want := map[otlp.TraceID]int{}
		hits := 0
		for i := range fresh {
			id := traceID(uint64(fill+i), uint64(7919*i+13))
			if sh.cache.cur.has(&id) {
				hits++
			}
			tr := simpleTrace(id, 3, "svc", true)
			tr[0].err = true // the first span met carries the error
			if err := env.consume(t, tr); err != nil {
				t.Fatal(err)
			}
			want[id] = 3
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if hits == 0 {
			t.Fatal("no false positive among the fresh IDs: the test proves nothing")
		}
		if diff := cmp.Diff(want, keptTraces(env.exp.kept(t))); diff != "" {
			t.Errorf("kept traces (-want +got):\n%s", diff)
		}
		if got := env.metric(t, "tailgate_sampler_dropped_filter_overrides_total", "reason", "error"); got != float64(hits) {
			t.Errorf("overrides = %v, want %d (the filter's false positives)", got, hits)
		}
		if got := env.metric(t, "tailgate_sampler_dropped_filter_hits_total"); got != float64(hits) {
			t.Errorf("filter hits = %v, want %d", got, hits)
		}
		t.Logf("%d of %d fresh error traces were false positives of the filter; all kept", hits, fresh)
	})
}

// TestPartialSpan: under decide_early, a late error span of a trace that
// stress relief dropped is exported alone, marked sampling.partial=true;
// a late OK span of it is not.
func TestPartialSpan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		yes := true
		cfg := testConfig(RuleConfig{Name: "errors", When: &WhenConfig{Error: &yes}, Keep: true}, dropAll("rest"))
		cfg.MaxBufferedSpans = 100
		cfg.Overload.Policy = PolicyDecideEarly
		env := startEnv(t, cfg, Settings{})
		for i := range 20 {
			if err := env.consume(t, simpleTrace(traceID(uint64(i), 0), 10, "svc", false)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		if n := env.metric(t, "tailgate_sampler_stress_relief_traces_total"); n == 0 {
			t.Fatal("no stress relief")
		}
		first := traceID(0, 0) // the oldest: decided first
		late := []spanSpec{
			{trace: first, id: 100, parent: 1, name: "late-ok", service: "svc"},
			{trace: first, id: 101, parent: 1, name: "late-error", service: "svc", err: true},
		}
		if err := env.consume(t, late); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		var got []keptSpan
		for _, s := range env.exp.kept(t) {
			if s.Trace == first {
				got = append(got, s)
			}
		}
		want := []keptSpan{{Trace: first, Span: 101, Name: "late-error", Service: "svc", Rate: 1, Partial: true}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("exported spans of the stress-dropped trace (-want +got):\n%s", diff)
		}
		if n := env.metric(t, "tailgate_sampler_partial_spans_total"); n != 1 {
			t.Errorf("partial_spans_total = %v, want 1", n)
		}
	})
}

// TestSnapshotInterval: the decision cache file is written every
// snapshot_interval while the sampler runs (virtual time), not only on
// shutdown.
func TestSnapshotInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "decisions.cache")
		cfg := snapshotConfig(keepAll("all"))
		env := startEnv(t, cfg, Settings{CachePath: path})
		a := traceID(1, 0)
		if err := env.consume(t, simpleTrace(a, 3, "svc", true)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("cache file before the first interval: %v", err)
		}
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		keptIDs := func() []otlp.TraceID {
			t.Helper()
			snap, err := readCacheFile(path)
			if err != nil || snap == nil {
				t.Fatalf("read the cache file: %v (%v)", err, snap)
			}
			var ids []otlp.TraceID
			for _, k := range snap.kept {
				ids = append(ids, k.id)
			}
			return ids
		}
		if diff := cmp.Diff([]otlp.TraceID{a}, keptIDs()); diff != "" {
			t.Errorf("first snapshot (-want +got):\n%s", diff)
		}
		b := traceID(2, 0)
		if err := env.consume(t, simpleTrace(b, 3, "svc", true)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if diff := cmp.Diff([]otlp.TraceID{a}, keptIDs()); diff != "" {
			t.Errorf("between snapshots (-want +got):\n%s", diff)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if diff := cmp.Diff([]otlp.TraceID{a, b}, keptIDs()); diff != "" {
			t.Errorf("second snapshot (-want +got):\n%s", diff)
		}
	})
}

// TestSnapshotOnlyAfterDecisions: a periodic snapshot is written only when
// something was decided since the file was last written or loaded; an
// idle daemon rewrote it every interval.
func TestSnapshotOnlyAfterDecisions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "decisions.cache")
		cfg := snapshotConfig(keepAll("all"))
		// idle removes the file, lets three intervals pass without a
		// decision and checks that none wrote it again.
		idle := func(when string) {
			t.Helper()
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			time.Sleep(30 * time.Second)
			synctest.Wait()
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s: the cache file was written (stat: %v)", when, err)
			}
		}
		// decide keeps one more trace and checks that the next interval's
		// snapshot holds every kept trace so far.
		var kept []otlp.TraceID
		decide := func(env *testEnv, when string) {
			t.Helper()
			id := traceID(uint64(len(kept)+1), 0)
			if err := env.consume(t, simpleTrace(id, 3, "svc", true)); err != nil {
				t.Fatal(err)
			}
			kept = append(kept, id)
			snap := snapshotAfter(t, 10*time.Second, path, when)
			var ids []otlp.TraceID
			for _, k := range snap.kept {
				ids = append(ids, k.id)
			}
			if diff := cmp.Diff(kept, ids); diff != "" {
				t.Fatalf("%s: kept IDs in the snapshot (-want +got):\n%s", when, diff)
			}
		}

		env := startEnv(t, cfg, Settings{CachePath: path})
		idle("nothing decided")
		decide(env, "a first decision")
		idle("unchanged since the last snapshot")
		decide(env, "another decision")

		// A sampler that loads the file does not write it back unchanged.
		if err := env.s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		restarted := startEnv(t, cfg, Settings{CachePath: path})
		idle("unchanged since it was loaded")
		decide(restarted, "a decision after the restart")
	})
}

// TestSnapshotsOfDroppedIDs: every periodic snapshot holds the dropped-ID
// filter as it was, while the copies' storage is reused from one
// snapshot to the next, grown, and switched to a plain copy once the
// filter is dense; the gauge of the last snapshot's size follows the file.
func TestSnapshotsOfDroppedIDs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "decisions.cache")
		cfg := snapshotConfig(dropAll("rest"))
		env := startEnv(t, cfg, Settings{CachePath: path})
		cache := env.s.shards[0].cache
		var dropped []otlp.TraceID
		for _, batch := range []struct {
			n     int
			dense bool // the filter's sparse form is larger than itself
		}{{20, false}, {200, false}, {2000, true}, {10, true}} {
			for range batch.n {
				id := traceID(uint64(len(dropped))+1, mix64(uint64(len(dropped))))
				if err := env.consume(t, simpleTrace(id, 1, "svc", true)); err != nil {
					t.Fatal(err)
				}
				dropped = append(dropped, id)
			}
			when := fmt.Sprintf("after %d dropped", len(dropped))
			snap := snapshotAfter(t, 10*time.Second, path, when)
			if len(snap.filters) != 1 {
				t.Fatalf("%s: %d filters saved, want 1", when, len(snap.filters))
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := env.metric(t, "tailgate_sampler_decision_cache_last_snapshot_bytes"); got != float64(fi.Size()) {
				t.Errorf("%s: last snapshot bytes gauge %v, the file has %d", when, got, fi.Size())
			}
			f := snap.filters[0]
			if !slices.Equal(f.words, cache.cur.words) || f.count != len(dropped) {
				t.Fatalf("%s: the saved filter (count %d) is not the shard's", when, f.count)
			}
			for _, id := range dropped {
				if !f.has(&id) {
					t.Fatalf("%s: the saved filter lost %s", when, id)
				}
			}
			dense := 3*cache.cur.nonzero() > 2*len(cache.cur.words)
			if dense != batch.dense || (cache.copies[0].idx == nil) != dense {
				t.Fatalf("%s: dense %v (copy storage plain: %v), want %v", when, dense, cache.copies[0].idx == nil, batch.dense)
			}
		}
	})
}

// snapshotConfig is a one-shard config with rule, no root grace and a
// snapshot every 10 seconds.
func snapshotConfig(rule RuleConfig) Config {
	cfg := testConfig(rule)
	cfg.RootGrace = 0
	cfg.DecisionCache.SnapshotInterval = units.Duration(10 * time.Second)
	return cfg
}

// snapshotAfter lets d of virtual time pass and reads the cache file the
// sampler wrote meanwhile.
func snapshotAfter(t *testing.T, d time.Duration, path, when string) *cacheSnapshot {
	t.Helper()
	time.Sleep(d)
	synctest.Wait()
	snap, err := readCacheFile(path)
	if err != nil || snap == nil {
		t.Fatalf("%s: read the cache file: %v (%v)", when, err, snap)
	}
	return snap
}

// TestDroppedFilterRootOverride: a root span (without an error) whose
// trace ID the full filter claims still starts a buffered trace, which
// the rules then decide; spans with neither signal are discarded.
func TestDroppedFilterRootOverride(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log decisionLog
		cfg := testConfig(dropAll("rest"))
		cfg.DecisionCache.MaxDroppedTraces = 2000
		cfg.DecisionCache.FalsePositiveRate = 0.05
		env := startEnv(t, cfg, Settings{OnDecision: log.hook})
		const fill, fresh = 2000, 3000
		for i := range fill {
			if err := env.consume(t, simpleTrace(traceID(uint64(i), uint64(i)), 1, "svc", true)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		sh := env.s.shards[0]
		rootHits, childHits := 0, 0
		for i := range fresh {
			id := traceID(uint64(fill+i), uint64(104729*i+7))
			var spans []spanSpec
			if i%2 == 0 {
				spans = simpleTrace(id, 1, "svc", true) // a lone root span
			} else {
				spans = simpleTrace(id, 2, "svc", false) // a child, no root
			}
			if sh.cache.cur.has(&id) {
				if i%2 == 0 {
					rootHits++
				} else {
					childHits++
				}
			}
			if err := env.consume(t, spans); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if rootHits == 0 || childHits == 0 {
			t.Fatalf("hits: %d roots, %d children; the test needs both", rootHits, childHits)
		}
		if got := env.metric(t, "tailgate_sampler_dropped_filter_overrides_total", "reason", "root"); got != float64(rootHits) {
			t.Errorf("root overrides = %v, want %d", got, rootHits)
		}
		// Hits count spans: a claimed child trace has two.
		if got := env.metric(t, "tailgate_sampler_dropped_filter_hits_total"); got != float64(rootHits+2*childHits) {
			t.Errorf("filter hits = %v, want %d", got, rootHits+2*childHits)
		}
		// Every fresh trace but the children the filter claimed was decided.
		if got, want := len(log.list()), fill+fresh-childHits; got != want {
			t.Errorf("%d decisions, want %d", got, want)
		}
	})
}
