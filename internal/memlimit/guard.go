package memlimit

import (
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a Guard.
const (
	// DefaultThresholdPercent is the share of the limit the live heap may
	// reach before new requests are refused.
	DefaultThresholdPercent = 90
	// DefaultSampleInterval is how long a heap reading is reused: reading
	// runtime/metrics costs about a microsecond, too much per request at
	// full load, and the heap does not move far in a few milliseconds.
	DefaultSampleInterval = 5 * time.Millisecond
)

// HeapReader returns the heap's size in bytes.
type HeapReader func() uint64

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Limit is the soft memory limit in bytes; required.
	Limit int64
	// ThresholdPercent is the share of Limit above which Allow refuses;
	// 0 means DefaultThresholdPercent.
	ThresholdPercent int
	// Heap reads the heap; nil means LiveHeap.
	Heap HeapReader
	// Now is the clock that paces reads; nil means time.Now.
	Now func() time.Time
	// SampleInterval is how long a reading is reused; 0 means
	// DefaultSampleInterval.
	SampleInterval time.Duration
}

// Guard is admission control: it tells ingest to refuse new requests
// while the heap is above a share of the soft memory limit, so a flood of
// large requests meets backpressure instead of the OOM killer. It is safe
// for concurrent use.
type Guard struct {
	threshold uint64
	heap      HeapReader
	now       func() time.Time
	interval  time.Duration
	start     time.Time

	mu   sync.Mutex    // one reader at a time; others use the last reading
	next atomic.Int64  // when (ns since start) the reading goes stale
	last atomic.Uint64 // the last reading
}

// NewGuard returns a Guard for cfg. A Limit of 0 or less returns nil, and
// a nil Guard allows everything.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.Limit <= 0 {
		return nil
	}
	if cfg.ThresholdPercent <= 0 {
		cfg.ThresholdPercent = DefaultThresholdPercent
	}
	if cfg.Heap == nil {
		cfg.Heap = LiveHeap()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = DefaultSampleInterval
	}
	g := &Guard{
		threshold: uint64(percentOf(cfg.Limit, cfg.ThresholdPercent)),
		heap:      cfg.Heap,
		now:       cfg.Now,
		interval:  cfg.SampleInterval,
		start:     cfg.Now(),
	}
	g.next.Store(-1) // stale: the first call reads
	return g
}

// Threshold returns the heap size above which Allow refuses, in bytes.
func (g *Guard) Threshold() uint64 {
	if g == nil {
		return 0
	}
	return g.threshold
}

// Allow reports whether a new request may be taken: false while the heap
// is above the threshold. The heap is read at most once per sample
// interval; calls in between, and calls while another goroutine reads,
// use the last reading.
func (g *Guard) Allow() bool {
	if g == nil {
		return true
	}
	now := int64(g.now().Sub(g.start))
	if now >= g.next.Load() && g.mu.TryLock() {
		if now >= g.next.Load() { // not refreshed while we waited for the lock
			g.last.Store(g.heap())
			g.next.Store(now + int64(g.interval))
		}
		g.mu.Unlock()
	}
	return g.last.Load() <= g.threshold
}

// liveHeapMetric is the heap the last garbage collection found live,
// which is what a soft limit cannot reclaim. Total heap in use (live plus
// garbage not yet collected) would refuse requests whenever garbage piles
// up before the next collection, which under a soft limit is most of the
// time near it.
const liveHeapMetric = "/gc/heap/live:bytes"

// LiveHeap returns a HeapReader of the live heap from runtime/metrics. It
// must not be called concurrently with itself (a Guard does not).
func LiveHeap() HeapReader {
	sample := []metrics.Sample{{Name: liveHeapMetric}}
	return func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
}
