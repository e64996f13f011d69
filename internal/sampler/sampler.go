package sampler

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// Exporter takes kept traces.
type Exporter interface {
	// Export hands an encoded ExportTraceServiceRequest (concatenated
	// resource_spans) with n spans to the export queue. It blocks while the
	// queue is full and returns only when queued or ctx is done. The
	// exporter owns req after the call.
	Export(ctx context.Context, req []byte, spans int) error
}

// Discarder is implemented by an Exporter that may throw every request
// away (tailgate's export kind none). When Discards reports true, the
// sampler counts kept spans and hands the exporter their number with an
// empty request, without encoding them.
type Discarder interface {
	Discards() bool
}

// Settings are the sampler's dependencies.
type Settings struct {
	// Logger receives the sampler's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the sampler's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Exporter is where kept traces go; required.
	Exporter Exporter
	// CachePath is the file the decision cache is saved to every
	// decision_cache.snapshot_interval and on Shutdown, and loaded from by
	// New; "" means no persistence.
	CachePath string
	// OnDecision, when set, is called for every decided trace (not for late
	// spans), on the goroutine of the trace's shard, after the rules ran and
	// before the trace is exported or discarded. The Trace is valid only
	// during the call. It must be fast and must not block: it holds up
	// that shard.
	OnDecision func(t *Trace, d Decision)
}

// Sampler is the tail sampler. Consume may be called from any goroutine.
type Sampler struct {
	cfg Config
	log *slog.Logger
	exp Exporter
	// discard: the exporter throws requests away; kept spans are counted,
	// not encoded.
	discard bool
	hook    func(*Trace, Decision)
	path    string
	policy  *policy
	m       *metrics
	now     func() time.Time

	// exts are the extensions kept traces are exported with: one per rule,
	// then any only known from a loaded decision cache.
	exts []otlp.Extension
	// restored holds the Bloom filters of dropped IDs restored from the cache
	// file: read-only, shared by all shards, and replaced (without the
	// expired ones) by the ticker.
	restored atomic.Pointer[[]*bloom]

	shards []*shard
	// pushBack is the overload policy push_back; overShards counts the
	// shards over their limits (Consume refuses while it is positive).
	pushBack   bool
	overShards atomic.Int32
	// snapping is set while a periodic snapshot is being taken; fileMu
	// serializes writes of the cache file. saved is what cacheAdded
	// returned when the file was last written (or loaded): the tick loop
	// reads it and a snapshot's goroutine writes it only while holding
	// snapping.
	snapping atomic.Bool
	fileMu   sync.Mutex
	saved    uint64
	intake   atomic.Int64
	failed   atomic.Int64 // kept spans the exporter did not take
	// dozing is set while the tick loop waits idleTickEvery instead of a
	// tick because every shard is idle; the first enqueue then rouses it
	// through wake.
	dozing atomic.Bool
	wake   chan struct{}

	// mu guards closed against Consume: Consume holds it shared while it
	// enqueues, so no batch can slip in after Shutdown closed the intake.
	mu      sync.RWMutex
	closed  bool
	started bool

	runCtx    context.Context
	cancelRun context.CancelFunc
	stop      chan struct{}
	wg        sync.WaitGroup

	stressActive  atomic.Bool
	stressLast    atomic.Int64
	stressDecided atomic.Int64

	shutdownOnce sync.Once
	shutdownErr  error

	batchPool   sync.Pool
	consumePool sync.Pool
}

// New builds a sampler from a validated config and loads the decision cache
// from set.CachePath (a missing or corrupt file is logged, never fatal).
func New(cfg Config, set Settings) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sampler config: %w", err)
	}
	if set.Exporter == nil {
		return nil, errors.New("sampler: no exporter")
	}
	cfg = cfg.settled(runtime.GOMAXPROCS(0))
	pol, err := newPolicy(cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("sampler rules: %w", err)
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sampler{
		cfg:    cfg,
		log:    log,
		exp:    set.Exporter,
		hook:   set.OnDecision,
		path:   set.CachePath,
		policy: pol,
		now:    time.Now,

		pushBack: cfg.Overload.Policy == PolicyPushBack,
		stop:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
	if d, ok := set.Exporter.(Discarder); ok {
		s.discard = d.Discards()
	}
	s.runCtx, s.cancelRun = context.WithCancel(context.Background())
	s.batchPool.New = func() any { return new(batch) }
	s.consumePool.New = func() any { return &consumeScratch{batches: make([]*batch, len(s.shards))} }
	for _, r := range pol.rules {
		s.exts = append(s.exts, r.ext)
	}

	var snap *cacheSnapshot
	if s.path != "" {
		snap, err = readCacheFile(s.path)
		if err != nil {
			s.log.Warn("ignoring the decision cache file", "path", s.path, "err", err)
			snap = nil
		}
		for i := range snap.keptList() {
			s.extIndex(snap.kept[i].ext)
		}
	}
	names := make([]string, len(s.exts))
	for i, e := range s.exts {
		names[i] = e.Rule
	}

	now := s.now().UnixNano()
	n := cfg.Shards
	var shape bloomShape
	shape.bitsPerID, shape.k = bloomSize(cfg.DecisionCache.FalsePositiveRate)
	for i := range n {
		s.shards = append(s.shards, newShard(s, i, n, shape, now))
	}
	if s.m, err = newMetrics(set.Registerer, names, s); err != nil {
		s.cancelRun()
		return nil, err
	}
	if snap != nil {
		s.restore(snap, now)
		s.saved = s.cacheAdded() // the file holds what was just loaded
	}
	for _, sh := range s.shards {
		sh.gCache.Store(int64(sh.cache.memBytes()))
	}
	return s, nil
}

// keptList returns the kept entries, nil-safe.
func (c *cacheSnapshot) keptList() []savedKept {
	if c == nil {
		return nil
	}
	return c.kept
}

// extIndex returns the index of an extension (rule and threshold) in
// s.exts, adding it when new.
func (s *Sampler) extIndex(e otlp.Extension) uint32 {
	for i, x := range s.exts {
		if x.Rule == e.Rule && x.Threshold == e.Threshold {
			return uint32(i)
		}
	}
	s.exts = append(s.exts, otlp.Extension{Rule: e.Rule, Rate: 1, Threshold: e.Threshold})
	return uint32(len(s.exts) - 1)
}

// restore loads a saved cache: kept IDs into their shards, dropped-ID
// filters as shared read-only filters, skipping what is older than ttl.
func (s *Sampler) restore(snap *cacheSnapshot, now int64) {
	ttl := int64(s.cfg.DecisionCache.TTL)
	kept := 0
	// Oldest first, so each shard's FIFO expires in order.
	slices.SortStableFunc(snap.kept, func(a, b savedKept) int { return cmp.Compare(a.at, b.at) })
	for i := range snap.kept {
		k := &snap.kept[i]
		if k.at+ttl < now {
			continue
		}
		sh := s.shards[s.shardOf(&k.id)]
		sh.cache.addKept(k.id, keptEntry{at: k.at, rate: k.rate, ext: s.extIndex(k.ext)})
		kept++
	}
	var restored []*bloom
	for _, f := range snap.filters {
		if f.newest+ttl >= now {
			restored = append(restored, f)
		}
	}
	if len(restored) > 0 {
		s.restored.Store(&restored)
	}
	s.log.Info("loaded the decision cache", "path", s.path, "kept_traces", kept, "dropped_filters", len(restored),
		"saved_at", time.Unix(0, snap.savedAt).UTC())
}

// Start starts the shard goroutines and the ticker; it returns at once.
func (s *Sampler) Start(_ context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("sampler: start after shutdown")
	}
	if s.started {
		return errors.New("sampler: already started")
	}
	s.started = true
	for _, sh := range s.shards {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sh.run()
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.tickLoop()
	}()
	return nil
}

// tickLoop is the one ticker: it hands the time to the shards (see
// tickShards), ends stress episodes and starts the periodic snapshots of
// the decision cache. While every shard is idle it ticks once every
// idleTickEvery (see doze) until a request comes.
func (s *Sampler) tickLoop() {
	tick := s.cfg.Tick.Std()
	t := time.NewTimer(tick)
	defer t.Stop()
	lastSnap := s.now().UnixNano()
	interval := int64(s.cfg.DecisionCache.SnapshotInterval)
	ticked := make([]time.Time, len(s.shards))
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
			// A request came while dozing: its inbox waits for a tick,
			// as at any other time.
			t.Reset(tick)
		case now := <-t.C:
			s.tickShards(now, ticked)
			s.endStressEpisode(now.UnixNano())
			s.expireRestored(now.UnixNano())
			if at := now.UnixNano(); s.path != "" && at-lastSnap >= interval && s.snapping.CompareAndSwap(false, true) {
				lastSnap = at
				if added := s.cacheAdded(); added == s.saved {
					// Nothing decided since the file was written: what
					// expired since is skipped on loading anyway.
					s.snapping.Store(false)
				} else {
					s.wg.Add(1)
					go func() {
						defer s.wg.Done()
						defer s.snapping.Store(false)
						if s.saveSnapshot(at) {
							s.saved = added
						}
					}()
				}
			}
			next := tick
			if s.doze(tick) {
				next = idleTickEvery
				if s.path != "" { // the snapshot stays on time
					next = min(next, max(time.Duration(lastSnap+interval-now.UnixNano()), tick))
				}
			}
			t.Reset(next)
		}
	}
}

// idleTickEvery is how often an idle shard is ticked all the same, for
// its upkeep: the decision cache's expiry and its gauge, leaving overload
// mode.
const idleTickEvery = time.Second

// tickShards hands now to every shard that has work, and to an idle one
// (see shard.idle) only when its last tick is idleTickEvery old: waking
// a shard's goroutine ten times a second for nothing was more than half
// of an idle daemon's CPU. ticked holds each shard's last tick. A shard
// that is busy catches up on its next tick.
func (s *Sampler) tickShards(now time.Time, ticked []time.Time) {
	for i, sh := range s.shards {
		if sh.idle() && now.Sub(ticked[i]) < idleTickEvery {
			continue
		}
		select {
		case sh.tick <- now:
			ticked[i] = now
		default:
		}
	}
}

// doze reports whether the tick loop may wait idleTickEvery for its next
// tick: every shard is idle. Under load the first check fails and dozing
// is never touched, so no enqueue sees it set; otherwise dozing is set
// and the shards are checked again, so that a batch enqueued meanwhile is
// either seen then or sees dozing set and rouses the loop.
func (s *Sampler) doze(tick time.Duration) bool {
	if tick >= idleTickEvery || !s.allIdle() {
		return false
	}
	s.dozing.Store(true)
	if !s.allIdle() {
		s.dozing.Store(false)
		return false
	}
	return true
}

func (s *Sampler) allIdle() bool {
	for _, sh := range s.shards {
		if !sh.idle() {
			return false
		}
	}
	return true
}

// rouse ends the tick loop's doze, if it dozes.
func (s *Sampler) rouse() {
	if s.dozing.Load() && s.dozing.CompareAndSwap(true, false) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// snapRequest asks a shard for its part of a snapshot.
type snapRequest struct {
	now int64
	out chan<- snapshotPart
}

// snapshotPart is a shard's part of a snapshot (filters cloned).
type snapshotPart struct {
	kept    []savedKept
	filters []*bloom
}

// cacheAdded returns how many IDs the shards' decision caches took so
// far; it grows with every decision the cache file would hold.
func (s *Sampler) cacheAdded() uint64 {
	var n uint64
	for _, sh := range s.shards {
		n += sh.cache.added.Load()
	}
	return n
}

// saveSnapshot saves the decision cache while the shards run: each shard
// copies its part on its own goroutine (a copy of its kept IDs and
// filters, between two batches), and this goroutine encodes and writes
// the file. It gives up when the sampler stops (Shutdown saves it then).
// It reports whether the file was written.
func (s *Sampler) saveSnapshot(now int64) bool {
	start := s.now()
	out := make(chan snapshotPart, len(s.shards))
	for _, sh := range s.shards {
		select {
		case sh.snap <- snapRequest{now: now, out: out}:
		case <-s.stop:
			return false
		}
	}
	snap := &cacheSnapshot{savedAt: now}
	for range s.shards {
		select {
		case p := <-out:
			snap.kept = append(snap.kept, p.kept...)
			snap.filters = append(snap.filters, p.filters...)
		case <-s.stop:
			return false
		}
	}
	s.addRestored(snap, now)
	s.fileMu.Lock()
	size, err := writeCacheFile(s.path, snap)
	s.fileMu.Unlock()
	if err != nil {
		s.m.snapshotFailed.Inc()
		s.log.Warn("could not save the decision cache", "path", s.path, "err", err)
		return false
	}
	s.m.snapshotSeconds.Set(s.now().Sub(start).Seconds())
	s.m.snapshotBytes.Set(float64(size))
	return true
}

// addRestored adds the loaded filters still within the TTL to snap.
func (s *Sampler) addRestored(snap *cacheSnapshot, now int64) {
	ttl := int64(s.cfg.DecisionCache.TTL)
	for _, f := range s.restoredFilters() {
		if f.newest+ttl >= now {
			snap.filters = append(snap.filters, f)
		}
	}
}

// restoredFilters returns the loaded dropped-ID filters.
func (s *Sampler) restoredFilters() []*bloom {
	if p := s.restored.Load(); p != nil {
		return *p
	}
	return nil
}

// expireRestored drops loaded filters whose newest ID is older than the TTL.
func (s *Sampler) expireRestored(now int64) {
	old := s.restoredFilters()
	if len(old) == 0 {
		return
	}
	ttl := int64(s.cfg.DecisionCache.TTL)
	expired := func(f *bloom) bool { return f.newest+ttl < now }
	if slices.ContainsFunc(old, expired) {
		keep := slices.DeleteFunc(slices.Clone(old), expired)
		s.restored.Store(&keep)
	}
}

// Shutdown stops taking spans, decides everything buffered, hands the kept
// traces to the exporter and saves the decision cache. When ctx ends
// first, exports still pending are abandoned (and counted). It is
// idempotent; later calls return the first call's result.
func (s *Sampler) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		started := s.started
		s.mu.Unlock()

		stopAbort := context.AfterFunc(ctx, s.cancelRun)
		close(s.stop)
		if started {
			s.wg.Wait()
		} else {
			for _, sh := range s.shards {
				sh.finish(s.now().UnixNano())
			}
		}
		aborted := !stopAbort()
		s.cancelRun()

		var errs []error
		if lost := s.failed.Load(); aborted && lost > 0 {
			errs = append(errs, fmt.Errorf("sampler shutdown: %d kept spans not exported: %w", lost, context.Cause(ctx)))
		}
		if s.path != "" {
			s.fileMu.Lock()
			_, err := writeCacheFile(s.path, s.snapshot(s.now().UnixNano()))
			s.fileMu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("save decision cache: %w", err))
			}
		}
		s.shutdownErr = errors.Join(errs...)
	})
	return s.shutdownErr
}

// snapshot collects the decision cache of every shard, after they stopped.
func (s *Sampler) snapshot(now int64) *cacheSnapshot {
	snap := &cacheSnapshot{savedAt: now}
	for _, sh := range s.shards {
		kept, filters := sh.snapshotPart(now, false)
		snap.kept = append(snap.kept, kept...)
		snap.filters = append(snap.filters, filters...)
	}
	s.addRestored(snap, now)
	return snap
}

// consumeScratch is per-Consume working memory, pooled.
type consumeScratch struct {
	batches []*batch
	groups  groupIndex
}

// groupIndex maps (shard, request scope index) to the group index in that
// shard's batch: a dense table for the usual sizes, a map for requests with
// very many scopes, so hostile input cannot make the table huge.
type groupIndex struct {
	scopes int
	dense  []int32
	sparse map[int64]int32
}

const maxDenseGroupIndex = 1 << 16

func (g *groupIndex) reset(scopes, shards int) {
	g.scopes = scopes
	if n := scopes * shards; n <= maxDenseGroupIndex {
		if cap(g.dense) < n {
			g.dense = make([]int32, n)
		}
		g.dense = g.dense[:n]
		for i := range g.dense {
			g.dense[i] = -1
		}
		g.sparse = nil
		return
	}
	g.dense = g.dense[:0]
	g.sparse = make(map[int64]int32)
}

func (g *groupIndex) get(shard, scope int) int32 {
	if g.sparse == nil {
		return g.dense[shard*g.scopes+scope]
	}
	if v, ok := g.sparse[int64(shard)<<32|int64(scope)]; ok {
		return v
	}
	return -1
}

func (g *groupIndex) set(shard, scope int, v int32) {
	if g.sparse == nil {
		g.dense[shard*g.scopes+scope] = v
		return
	}
	g.sparse[int64(shard)<<32|int64(scope)] = v
}

// forget drops a shard's mappings (its batch was handed over).
func (g *groupIndex) forget(shard int) {
	if g.sparse == nil {
		for i := shard * g.scopes; i < (shard+1)*g.scopes; i++ {
			g.dense[i] = -1
		}
		return
	}
	for k := range g.sparse {
		if int(k>>32) == shard {
			delete(g.sparse, k)
		}
	}
}

// Consume takes every span of req, or none: when the intake is full, or
// under the push_back overload policy when a shard's buffer is over its
// limits, it returns a *BackpressureError; after Shutdown began
// ErrShuttingDown. The
// spans are copied; req may be reused once Consume returns.
func (s *Sampler) Consume(_ context.Context, req *otlp.Request) error {
	n := len(req.Spans)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrShuttingDown
	}
	if n == 0 {
		return nil
	}
	if s.pushBack && s.overShards.Load() > 0 {
		s.m.overloadRefused.Inc()
		return &BackpressureError{Spans: n, Delay: s.cfg.RetryAfter.Std(), Buffer: true}
	}
	if !s.reserve(n) {
		s.m.backpressure.Inc()
		return &BackpressureError{Spans: n, Delay: s.cfg.RetryAfter.Std()}
	}
	s.m.received.Add(float64(n))
	now := s.now().UnixNano()

	cs := s.consumePool.Get().(*consumeScratch)
	if len(cs.batches) != len(s.shards) {
		cs.batches = make([]*batch, len(s.shards))
	}
	gi := &cs.groups
	gi.reset(len(req.Scopes), len(s.shards))
	for i := range req.Spans {
		sp := &req.Spans[i]
		si := s.shardOf(&sp.TraceID)
		scope := int(sp.Scope)
		b := cs.batches[si]
		g := gi.get(si, scope)
		if b != nil && g < 0 && len(b.groups) >= maxTraceGroups-1 {
			// Too many distinct groups for one batch: hand this one over
			// and start another (the request is already admitted).
			s.shards[si].enqueue(b)
			gi.forget(si)
			b = nil
		}
		if b == nil {
			b = s.batchPool.Get().(*batch)
			b.at = now
			cs.batches[si] = b
		}
		if g < 0 {
			g = b.addGroup(req, scope)
			gi.set(si, scope, g)
		}
		b.addSpan(sp, uint16(g))
	}
	for si, b := range cs.batches {
		if b != nil {
			s.shards[si].enqueue(b)
			cs.batches[si] = nil
		}
	}
	s.consumePool.Put(cs)
	return nil
}

// reserve admits n spans into the intake unless it is full. A request
// larger than the whole intake is admitted when the intake is empty, so
// it can never be refused forever.
func (s *Sampler) reserve(n int) bool {
	limit := int64(s.cfg.IntakeSpans)
	for {
		cur := s.intake.Load()
		if cur > 0 && cur+int64(n) > limit {
			return false
		}
		if s.intake.CompareAndSwap(cur, cur+int64(n)) {
			return true
		}
	}
}

// shardOf maps a trace ID to a shard.
func (s *Sampler) shardOf(id *otlp.TraceID) int {
	h := mix64(binary.LittleEndian.Uint64(id[0:8]) ^ binary.LittleEndian.Uint64(id[8:16]))
	hi, _ := bits.Mul64(h, uint64(len(s.shards)))
	return int(hi)
}

// Pending returns the spans accepted and not yet decided: those in the
// intake and those buffered (as the tailgate_sampler_intake_spans and
// tailgate_sampler_buffered_spans gauges, which lag by up to a tick).
func (s *Sampler) Pending() (intake, buffered int64) {
	return s.intake.Load(), s.sum(func(sh *shard) int64 { return sh.gSpans.Load() })
}

func (s *Sampler) sum(f func(*shard) int64) int64 {
	var n int64
	for _, sh := range s.shards {
		n += f(sh)
	}
	return n
}

// noteStress records traces decided early by stress relief and counts and
// logs the start of an episode.
func (s *Sampler) noteStress(now int64, decided int) {
	s.m.stressTraces.Add(float64(decided))
	s.stressLast.Store(now)
	s.stressDecided.Add(int64(decided))
	if s.stressActive.CompareAndSwap(false, true) {
		s.m.stressEpisodes.Inc()
		s.log.Warn("trace buffer over its limits: deciding the oldest traces early (stress relief)",
			"max_buffered_spans", s.cfg.MaxBufferedSpans, "max_buffered_bytes", s.cfg.MaxBufferedBytes.String())
	}
}

// endStressEpisode ends an episode when no relief was needed for a second.
func (s *Sampler) endStressEpisode(now int64) {
	if s.stressActive.Load() && now-s.stressLast.Load() > int64(time.Second) {
		if s.stressActive.CompareAndSwap(true, false) {
			s.log.Info("stress relief episode ended", "traces_decided_early", s.stressDecided.Swap(0))
		}
	}
}
