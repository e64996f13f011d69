package sampler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// startEnv makes and starts a sampler; it is shut down when the test (or
// synctest bubble function) ends.
func startEnv(t *testing.T, cfg Config, set Settings) *testEnv {
	t.Helper()
	env := newEnv(t, cfg, set)
	if err := env.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return env
}

// decisionLog records OnDecision calls.
type decisionLog struct {
	mu  sync.Mutex
	got []string
}

func (l *decisionLog) hook(tr *Trace, d Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, d.String()+" "+tr.Rule()+" "+tr.Trigger().String()+" "+time.Since(tr.FirstSeen()).String())
}

func (l *decisionLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

func TestRootGraceDecision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log decisionLog
		env := startEnv(t, testConfig(keepAll("all")), Settings{OnDecision: log.hook})
		if err := env.consume(t, simpleTrace(traceID(1, 0), 3, "svc", true)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2*time.Second - time.Millisecond)
		synctest.Wait()
		if n := env.exp.spanCount(); n != 0 {
			t.Fatalf("exported %d spans before root_grace passed", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := env.exp.spanCount(); n != 3 {
			t.Fatalf("exported %d spans at root_grace, want 3", n)
		}
		if diff := cmp.Diff([]string{"keep all root 2s"}, log.list()); diff != "" {
			t.Errorf("decisions (-want +got):\n%s", diff)
		}
		if got := env.metric(t, "tailgate_sampler_traces_decided_total", "decision", "keep", "rule", "all"); got != 1 {
			t.Errorf("traces_decided_total = %v", got)
		}
		if got := env.metric(t, "tailgate_sampler_decision_latency_seconds"); got != 1 {
			t.Errorf("decision latency observations = %v", got)
		}
	})
}

func TestDecisionWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log decisionLog
		env := startEnv(t, testConfig(keepAll("all")), Settings{OnDecision: log.hook})
		id := traceID(1, 0)
		if err := env.consume(t, simpleTrace(id, 3, "svc", false)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		// More spans later do not move the deadline.
		if err := env.consume(t, []spanSpec{{trace: id, id: 50, parent: 1, service: "other"}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20*time.Second - time.Millisecond)
		synctest.Wait()
		if n := env.exp.spanCount(); n != 0 {
			t.Fatalf("exported %d spans before decision_wait passed", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := env.exp.spanCount(); n != 4 {
			t.Fatalf("exported %d spans at decision_wait, want 4", n)
		}
		if diff := cmp.Diff([]string{"keep all decision_wait 30s"}, log.list()); diff != "" {
			t.Errorf("decisions (-want +got):\n%s", diff)
		}
	})
}

func TestRootArrivingLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log decisionLog
		env := startEnv(t, testConfig(keepAll("all")), Settings{OnDecision: log.hook})
		id := traceID(1, 0)
		spans := simpleTrace(id, 3, "svc", true)
		if err := env.consume(t, spans[1:]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		if intake, buffered := env.s.Pending(); intake != 0 || buffered != 2 {
			t.Errorf("Pending with the root missing = %d in the intake, %d buffered; want 0 and 2", intake, buffered)
		}
		if err := env.consume(t, spans[:1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if intake, buffered := env.s.Pending(); intake != 0 || buffered != 0 {
			t.Errorf("Pending after the decision = %d, %d; want 0, 0", intake, buffered)
		}
		if diff := cmp.Diff([]string{"keep all root 7s"}, log.list()); diff != "" {
			t.Errorf("decisions (-want +got):\n%s", diff)
		}
		if n := env.exp.spanCount(); n != 3 {
			t.Errorf("exported %d spans, want 3", n)
		}
	})
}

func TestLateSpans(t *testing.T) {
	for _, tt := range []struct {
		rule     RuleConfig
		decision string
		exported int
	}{
		{keepAll("all"), "keep", 3},
		{dropAll("none-wanted"), "drop", 0},
	} {
		t.Run(tt.decision, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				env := startEnv(t, testConfig(tt.rule), Settings{})
				id := traceID(7, 0)
				spans := simpleTrace(id, 3, "svc", true)
				if err := env.consume(t, spans[:2]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(3 * time.Second)
				if err := env.consume(t, spans[2:]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				if n := env.exp.spanCount(); n != tt.exported {
					t.Errorf("exported %d spans, want %d", n, tt.exported)
				}
				if got := env.metric(t, "tailgate_sampler_late_spans_total", "decision", tt.decision); got != 1 {
					t.Errorf("late_spans_total{decision=%s} = %v, want 1", tt.decision, got)
				}
				if tt.exported > 0 {
					for _, s := range env.exp.kept(t) {
						if s.Rule != "all" || s.Rate != 1 {
							t.Errorf("span %d: rule %q rate %v", s.Span, s.Rule, s.Rate)
						}
					}
				}
				if got := env.metric(t, "tailgate_sampler_traces_decided_total", "decision", tt.decision, "rule", tt.rule.Name); got != 1 {
					t.Errorf("traces decided = %v, want 1 (the late span does not start a new trace)", got)
				}
			})
		})
	}
}

// TestDiscardingExporter: with an exporter that throws requests away, a
// kept trace and a late span of it are counted, handed over as a number
// of spans with nothing encoded, exactly as many as an encoding exporter
// receives.
func TestDiscardingExporter(t *testing.T) {
	for _, discards := range []bool{false, true} {
		t.Run(fmt.Sprintf("discards=%v", discards), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				exp := &fakeExporter{discards: discards}
				env := startEnv(t, testConfig(keepAll("all")), Settings{Exporter: exp})
				id := traceID(7, 0)
				spans := simpleTrace(id, 3, "svc", true)
				if err := env.consume(t, spans[:2]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(3 * time.Second)
				if err := env.consume(t, spans[2:]); err != nil { // late: follows the decision
					t.Fatal(err)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				if n := exp.spanCount(); n != 3 {
					t.Errorf("exporter got %d spans, want 3", n)
				}
				encoded := 0
				exp.mu.Lock()
				for _, r := range exp.reqs {
					encoded += otlp.CountSpans(r)
				}
				exp.mu.Unlock()
				if want := map[bool]int{false: 3, true: 0}[discards]; encoded != want {
					t.Errorf("%d spans encoded, want %d", encoded, want)
				}
				if got := env.metric(t, "tailgate_sampler_spans_kept_total", "rule", "all"); got != 3 {
					t.Errorf("spans_kept_total = %v, want 3", got)
				}
			})
		})
	}
}

// TestCacheAcrossRestart decides two traces, restarts with rules that
// would decide them the other way, and checks that late spans follow the
// first decisions.
func TestCacheAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "decisions.bin")
		keptID := traceID(1, 0xF0000000000000) // R >= T(50%) = 0x80000000000000
		dropID := traceID(2, 0x10000000000000) // R < T
		cfg := testConfig(percent("half", 50))

		env := newEnv(t, cfg, Settings{CachePath: path})
		if err := env.s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		for _, id := range []otlp.TraceID{keptID, dropID} {
			if err := env.consume(t, simpleTrace(id, 2, "svc", true)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * time.Second)
		if err := env.s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := keptTraces(env.exp.kept(t)); !cmp.Equal(got, map[otlp.TraceID]int{keptID: 2}) {
			t.Fatalf("first instance kept %v", got)
		}

		time.Sleep(time.Minute)
		// The second instance keeps everything and drops nothing by rule, but
		// its late spans follow the saved decisions.
		cfg2 := testConfig(keepAll("all"))
		cfg2.Shards = 2
		env2 := startEnv(t, cfg2, Settings{CachePath: path})
		for _, id := range []otlp.TraceID{keptID, dropID} {
			if err := env2.consume(t, []spanSpec{{trace: id, id: 9, parent: 1, service: "svc", name: "late"}}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		want := []keptSpan{{Trace: keptID, Span: 9, Name: "late", Service: "svc", Rule: "half", Rate: 2, TraceState: "ot=th:8"}}
		if diff := cmp.Diff(want, env2.exp.kept(t)); diff != "" {
			t.Errorf("second instance exported (-want +got):\n%s", diff)
		}
		if got := env2.metric(t, "tailgate_sampler_late_spans_total", "decision", "drop"); got != 1 {
			t.Errorf("late dropped spans = %v, want 1", got)
		}
	})
}

func TestCacheEntriesOlderThanTTLIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "decisions.bin")
		id := traceID(1, 0)
		env := startEnv(t, testConfig(dropAll("nothing")), Settings{CachePath: path})
		if err := env.consume(t, simpleTrace(id, 2, "svc", true)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if err := env.s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(11 * time.Minute) // beyond the 10m TTL
		env2 := startEnv(t, testConfig(keepAll("all")), Settings{CachePath: path})
		if err := env2.consume(t, simpleTrace(id, 2, "svc", true)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := env2.exp.spanCount(); n != 2 {
			t.Errorf("exported %d spans, want 2: an expired decision must not be followed", n)
		}
	})
}

func TestCorruptCacheIgnored(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"garbage":   []byte("not a cache file at all"),
		"truncated": append([]byte(cacheMagic), 1, 0, 0, 0, 1, 2, 3),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			env := newEnv(t, testConfig(), Settings{CachePath: path})
			if !strings.Contains(env.log.String(), "ignoring the decision cache file") {
				t.Errorf("no warning logged: %s", env.log)
			}
			if err := env.s.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			// Shutdown replaced the corrupt file with a valid one.
			if _, err := readCacheFile(path); err != nil {
				t.Errorf("file after shutdown: %v", err)
			}
		})
	}
}

func TestCacheFileBitFlipsNeverPanic(t *testing.T) {
	snap := &cacheSnapshot{savedAt: 5, kept: []savedKept{{id: traceID(1, 2), at: 7, rate: 20, ext: otlp.Extension{Rule: "r", Threshold: "f"}}}}
	var shape bloomShape
	shape.bitsPerID, shape.k = bloomSize(0.01)
	f := newBloom(10, shape, 9)
	f.add(&snap.kept[0].id, 9)
	snap.filters = []*bloom{f}
	path := filepath.Join(t.TempDir(), "c")
	if _, err := writeCacheFile(path, snap); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snap.kept, got.kept, cmp.AllowUnexported(savedKept{})); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if len(got.filters) != 1 || !got.filters[0].has(&snap.kept[0].id) || got.filters[0].newest != 9 {
		t.Errorf("filters = %+v", got.filters)
	}
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x41
		if _, err := decodeSnapshot(bad); !errors.Is(err, errCorrupt) {
			t.Fatalf("flipped byte %d: err = %v", i, err)
		}
	}
	for n := range len(data) {
		if _, err := decodeSnapshot(data[:n]); !errors.Is(err, errCorrupt) {
			t.Fatalf("truncated to %d: err = %v", n, err)
		}
	}
}

func TestShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log decisionLog
		env := newEnv(t, testConfig(keepAll("all")), Settings{OnDecision: log.hook})
		if err := env.s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := env.consume(t, simpleTrace(traceID(1, 0), 4, "svc", false)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := env.s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := env.exp.spanCount(); n != 4 {
			t.Errorf("exported %d spans at shutdown, want 4", n)
		}
		if diff := cmp.Diff([]string{"keep all shutdown 1s"}, log.list()); diff != "" {
			t.Errorf("decisions (-want +got):\n%s", diff)
		}
		if err := env.consume(t, simpleTrace(traceID(2, 0), 1, "svc", true)); !errors.Is(err, ErrShuttingDown) {
			t.Errorf("Consume after Shutdown = %v", err)
		}
		if err := env.s.Shutdown(t.Context()); err != nil {
			t.Errorf("second Shutdown = %v", err)
		}
		if err := env.s.Start(t.Context()); err == nil {
			t.Error("Start after Shutdown succeeded")
		}
	})
}

func TestShutdownWithoutStart(t *testing.T) {
	env := newEnv(t, testConfig(keepAll("all")), Settings{})
	if err := env.consume(t, simpleTrace(traceID(1, 0), 2, "svc", false)); err != nil {
		t.Fatal(err)
	}
	if err := env.s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := env.exp.spanCount(); n != 2 {
		t.Errorf("exported %d spans, want 2", n)
	}
}

// TestShutdownDeadline: an exporter that never takes anything cannot hold
// Shutdown past its context.
func TestShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newEnv(t, testConfig(keepAll("all")), Settings{})
		env.exp.gate = make(chan struct{})
		if err := env.s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := env.consume(t, simpleTrace(traceID(1, 0), 2, "svc", true)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := env.s.Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("Shutdown took %v, want the 5s deadline", d)
		}
		if got := env.metric(t, "tailgate_sampler_export_failed_spans_total"); got != 2 {
			t.Errorf("export_failed_spans_total = %v, want 2", got)
		}
	})
}

// TestCacheFileSparseFilters checks that Bloom filters are saved by their
// non-zero words: a filter sized for ten million IDs that holds a thousand
// must not cost its full size on disk, and every ID it held, in a sparse or
// a full filter, must still be found after loading.
func TestCacheFileSparseFilters(t *testing.T) {
	var shape bloomShape
	shape.bitsPerID, shape.k = bloomSize(0.001)
	sparse := newBloom(10_000_000, shape, 1)
	dense := newBloom(1000, shape, 2)
	var ids []otlp.TraceID
	for i := range 1000 {
		id := traceID(uint64(i)+1, mix64(uint64(i)))
		ids = append(ids, id)
		sparse.add(&id, 1)
		dense.add(&id, 2)
	}
	path := filepath.Join(t.TempDir(), "decisions.bin")
	if _, err := writeCacheFile(path, &cacheSnapshot{savedAt: 3, filters: []*bloom{sparse, dense}}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The full size of the sparse filter is len(words)*8 bytes (about 19
	// MB); at most k words change per ID, each saved in at most 8+3 bytes.
	limit := int64(2*1000*int(shape.k)*11) + int64(len(dense.words))*11
	if fi.Size() > limit {
		t.Errorf("cache file is %d bytes, want at most %d (the sparse filter alone is %d bytes dense)", fi.Size(), limit, len(sparse.words)*8)
	}
	snap, err := readCacheFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.filters) != 2 {
		t.Fatalf("loaded %d filters, want 2", len(snap.filters))
	}
	for i, f := range snap.filters {
		if !slices.Equal(f.words, []*bloom{sparse, dense}[i].words) {
			t.Errorf("filter %d: words differ after loading", i)
		}
		for _, id := range ids {
			if !f.has(&id) {
				t.Fatalf("filter %d lost trace %s", i, id)
			}
		}
	}
}

// TestSnapshotCopy: a filter's snapshot copy (its non-zero words only)
// encodes to the same file as the filter, and IDs the filter takes after
// the copy do not reach it.
func TestSnapshotCopy(t *testing.T) {
	f := filledBloom(1_000_000, 500, 5)
	var cb copyBuf
	c := f.snapshotCopy(&cb)
	want := filterFile(t, f)
	if got := filterFile(t, c); !bytes.Equal(got, want) {
		t.Errorf("the copy's file (%d bytes) differs from the filter's (%d bytes)", len(got), len(want))
	}
	if c.words != nil || len(c.sparseWords) != f.nonzero() || len(c.sparseWords) == 0 {
		t.Errorf("copy holds %d words densely and %d sparsely, want only the filter's %d non-zero ones", len(c.words), len(c.sparseWords), f.nonzero())
	}
	// IDs the filter takes after the copy do not reach the copy's file.
	for i := range 500 {
		id := traceID(uint64(i)+1000, mix64(uint64(i)+1000))
		f.add(&id, 6)
	}
	if got := filterFile(t, c); !bytes.Equal(got, want) {
		t.Error("the copy's file changed after the filter took more IDs")
	}
	if got := filterFile(t, f); bytes.Equal(got, want) {
		t.Error("the filter's file did not change after it took more IDs: the check above proves nothing")
	}
}

// TestBloomUsedBlocks checks the bookkeeping that spares a snapshot the
// scan of a whole filter against a plain scan of its words: the count of
// non-zero words, and a copy that holds exactly those words in order, for
// a filter that takes IDs, is reset by a rotation and takes IDs again.
func TestBloomUsedBlocks(t *testing.T) {
	f := filledBloom(1_000_000, 3000, 5)
	var cb copyBuf // reused by every copy, as a shard reuses its own
	check := func(when string) {
		t.Helper()
		var idx []uint32
		var words []uint64
		for i, w := range f.words {
			if w != 0 {
				idx = append(idx, uint32(i))
				words = append(words, w)
			}
		}
		if f.nonzero() != len(words) {
			t.Errorf("%s: nonzero() = %d, a scan of the words finds %d", when, f.nonzero(), len(words))
		}
		c := f.snapshotCopy(&cb)
		if c.words != nil {
			t.Fatalf("%s: a filter with %d of %d words set was copied densely", when, len(words), len(f.words))
		}
		if cb.memBytes() > len(f.words)*8+96 {
			t.Errorf("%s: the copy storage holds %d bytes, over the filter's %d and 96", when, cb.memBytes(), len(f.words)*8)
		}
		if !slices.Equal(c.sparseIdx, idx) || !slices.Equal(c.sparseWords, words) {
			t.Errorf("%s: the copy holds %d words, a scan of the filter finds %d (or they differ)", when, len(c.sparseWords), len(words))
		}
		var got []uint32
		f.eachNonzero(func(i int, _ uint64) bool { got = append(got, uint32(i)); return true })
		if !slices.Equal(got, idx) {
			t.Errorf("%s: eachNonzero visits %d words, a scan finds %d (or they differ)", when, len(got), len(idx))
		}
	}
	check("filled")
	if f.nonzero() < 3000 {
		t.Fatalf("3,000 IDs set only %d words: the check above proves little", f.nonzero())
	}
	f.reset(6)
	check("reset")
	if f.nonzero() != 0 || f.count != 0 {
		t.Errorf("after reset: %d non-zero words, count %d; want 0 and 0", f.nonzero(), f.count)
	}
	for i := range 50 {
		id := traceID(uint64(i)+7000, mix64(uint64(i)+7000))
		f.add(&id, 7)
	}
	check("refilled")
}

// TestSnapshotCopyDense: once a filter's sparse form would be larger than
// the filter itself, its snapshot copy is a plain copy of its words, and
// still encodes to the same file as the filter.
func TestSnapshotCopyDense(t *testing.T) {
	f := filledBloom(2000, 2000, 5) // full: most words are set
	var cb copyBuf
	c := f.snapshotCopy(&cb)
	if 3*f.nonzero() <= 2*len(f.words) {
		t.Fatalf("the filter has %d of %d words set: not dense enough for this test", f.nonzero(), len(f.words))
	}
	if !slices.Equal(c.words, f.words) || c.sparseWords != nil {
		t.Fatalf("dense copy: %d words (want the filter's %d) and %d sparse ones (want none)", len(c.words), len(f.words), len(c.sparseWords))
	}
	if cb.memBytes() > len(f.words)*8+96 {
		t.Errorf("the copy storage holds %d bytes, over the filter's %d and 96", cb.memBytes(), len(f.words)*8)
	}
	if !bytes.Equal(filterFile(t, c), filterFile(t, f)) {
		t.Error("the dense copy's file differs from the filter's")
	}
}

// filterFile returns the bytes of a cache file that holds filter b alone.
func filterFile(t *testing.T, b *bloom) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "decisions.cache")
	size, err := writeCacheFile(path, &cacheSnapshot{savedAt: 7, filters: []*bloom{b}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(data)) {
		t.Fatalf("writeCacheFile reported %d bytes, the file has %d", size, len(data))
	}
	return data
}

// A shard inserts a small inbox at its next tick, not at each request, and
// that tick inserts before it decides: the error span that arrives a
// millisecond before its trace's deadline still keeps the trace. A large
// inbox wakes the shard at once.
func TestInboxWaitsForTheTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		yes := true
		cfg := testConfig(RuleConfig{Name: "errors", When: &WhenConfig{Error: &yes}, Keep: true}, dropAll("rest"))
		env := startEnv(t, cfg, Settings{})
		id := traceID(1, 0)
		spans := simpleTrace(id, 3, "svc", false) // no root: decided at decision_wait
		spans[2].err = true
		if err := env.consume(t, spans[:2]); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if intake, buffered := env.s.Pending(); intake != 2 || buffered != 0 {
			t.Errorf("before a tick: %d spans in the intake, %d buffered; want 2 and 0", intake, buffered)
		}
		tick := cfg.Tick.Std()
		time.Sleep(tick)
		synctest.Wait()
		if intake, buffered := env.s.Pending(); intake != 0 || buffered != 2 {
			t.Errorf("after a tick: %d spans in the intake, %d buffered; want 0 and 2", intake, buffered)
		}
		time.Sleep(cfg.DecisionWait.Std() - tick - time.Millisecond)
		if err := env.consume(t, spans[2:]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the deadline's tick
		synctest.Wait()
		if got := keptTraces(env.exp.kept(t)); got[id] != 3 {
			t.Errorf("kept %v, want all 3 spans of the trace whose error span came last", got)
		}

		var many []spanSpec
		for i := range ceilDiv(maxWakeSpans, 10) {
			many = append(many, simpleTrace(traceID(uint64(i+10), 0), 10, "svc", true)...)
		}
		if err := env.consume(t, many); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if intake, _ := env.s.Pending(); intake != 0 {
			t.Errorf("%d spans: %d still in the intake, want all inserted at once", len(many), intake)
		}
	})
}

// TestIdleShardsTickOncePerSecond hands ticks to the shards of a sampler
// whose goroutines do not run, so that each tick stays in its channel
// where the test can see it.
func TestIdleShardsTickOncePerSecond(t *testing.T) {
	cfg := testConfig(dropAll("rest"))
	cfg.Shards = 2
	env := newEnv(t, cfg, Settings{})
	s := env.s
	got := func() [2]bool {
		var r [2]bool
		for i, sh := range s.shards {
			select {
			case <-sh.tick:
				r[i] = true
			default:
			}
		}
		return r
	}
	// The shards' timing wheels start at New's clock: t0 is the first
	// instant at or after it, and the batches arrive at t0.
	t0 := time.Now()
	s.now = func() time.Time { return t0 }
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ticked := make([]time.Time, len(s.shards))

	s.tickShards(at(0), ticked)
	if r := got(); r != [2]bool{true, true} {
		t.Fatalf("first tick %v, want both shards (never ticked)", r)
	}
	s.tickShards(at(100*time.Millisecond), ticked)
	if r := got(); r != [2]bool{} {
		t.Fatalf("idle shards ticked again after 100ms: %v", r)
	}

	id := traceID(7, 0)
	k := s.shardOf(&id)
	if err := env.consume(t, simpleTrace(id, 3, "svc", false)); err != nil {
		t.Fatal(err)
	}
	want := [2]bool{}
	want[k] = true
	s.tickShards(at(200*time.Millisecond), ticked)
	if r := got(); r != want {
		t.Fatalf("with spans in shard %d's inbox: ticks %v, want %v", k, r, want)
	}
	s.processSync() // the trace is buffered now, the inbox empty
	s.tickShards(at(300*time.Millisecond), ticked)
	if r := got(); r != want {
		t.Fatalf("with a trace buffered in shard %d: ticks %v, want %v", k, r, want)
	}
	s.tickShards(at(time.Second), ticked)
	if r := got(); r != [2]bool{true, true} {
		t.Fatalf("a second after the idle shard's last tick: %v, want both", r)
	}

	s.tickSync(at(time.Minute)) // past decision_wait: decides and drops the trace
	if _, buffered := s.Pending(); buffered != 0 {
		t.Fatalf("%d spans buffered after the decision", buffered)
	}
	s.tickShards(at(time.Minute), ticked)
	if r := got(); r != [2]bool{true, true} {
		t.Fatalf("idle for a minute: %v, want both ticked", r)
	}
	s.tickShards(at(time.Minute+100*time.Millisecond), ticked)
	if r := got(); r != [2]bool{} {
		t.Fatalf("both idle again, ticked after 100ms: %v", r)
	}
	other := 1 - k
	s.shards[other].gOut.Store(5) // kept spans waiting for the exporter
	s.tickShards(at(time.Minute+200*time.Millisecond), ticked)
	want = [2]bool{}
	want[other] = true
	if r := got(); r != want {
		t.Fatalf("with kept spans to export in shard %d: ticks %v, want %v", other, r, want)
	}
	s.shards[other].gOut.Store(0)
	sh := s.shards[k] // as drain leaves it while it inserts what it took
	sh.inMu.Lock()
	sh.inserting = true
	sh.inMu.Unlock()
	s.tickShards(at(time.Minute+300*time.Millisecond), ticked)
	want = [2]bool{}
	want[k] = true
	if r := got(); r != want {
		t.Fatalf("with shard %d inserting batches from its inbox: ticks %v, want %v", k, r, want)
	}
}

// TestTickLoopDozesWhileIdle checks that the tick loop waits a second
// between ticks once every shard is idle, and that a request wakes it so
// that its spans are buffered at the next regular tick, not a second
// later.
func TestTickLoopDozesWhileIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(dropAll("rest"))
		cfg.Shards = 2
		env := startEnv(t, cfg, Settings{})
		tick := cfg.Tick.Std()
		time.Sleep(2 * tick)
		synctest.Wait()
		if !env.s.dozing.Load() {
			t.Fatal("idle for two ticks: the tick loop does not doze")
		}
		time.Sleep(3 * idleTickEvery / 2) // lands between two dozing ticks
		synctest.Wait()
		if err := env.consume(t, simpleTrace(traceID(3, 0), 2, "svc", false)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if env.s.dozing.Load() {
			t.Fatal("a request did not rouse the tick loop")
		}
		time.Sleep(tick)
		synctest.Wait()
		if intake, buffered := env.s.Pending(); intake != 0 || buffered != 2 {
			t.Fatalf("a tick after the request: %d spans in the intake, %d buffered; want 0 and 2", intake, buffered)
		}
		time.Sleep(2 * tick)
		synctest.Wait()
		if env.s.dozing.Load() {
			t.Fatal("dozing with a trace buffered")
		}
	})
}
