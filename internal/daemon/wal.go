package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// WALDir is the write-ahead log's directory in the storage directory.
const WALDir = "wal"

// cleanFile marks a clean shutdown: its absence at start means the last
// run crashed.
const cleanFile = "clean-shutdown"

// counts logs each accepted request in the write-ahead log and counts it
// (SLIs, golden signals) under one read lock, which the consumers' flushes
// take exclusively for a consistent cut (wal.Checkpoint).
type counts struct {
	log      *wal.Log
	instance string
	logger   *slog.Logger
	slos     *slo.Engine
	signals  *signals.Signals
	marks    wal.MarkStore
	maxBytes int64

	mu   sync.RWMutex // held shared by Count, exclusively by Cut
	pool sync.Pool    // *encodeBuf

	full, replayed prometheus.Counter
	bg             background
	kick           chan struct{} // a full log asks the loop to shrink it now
}

type encodeBuf struct {
	enc otlp.Encoder
	b   []byte
}

var _ wal.Checkpoint = (*counts)(nil)

// Cut implements wal.Checkpoint.
func (c *counts) Cut(fn func(at time.Time)) (uint64, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := time.Now()
	fn(at)
	return c.log.Next() - 1, at
}

// Instance implements wal.Checkpoint.
func (c *counts) Instance() string { return c.instance }

// errWALFull is the backpressure answer while the log is full.
type errWALFull struct{}

func (errWALFull) Error() string {
	return "the write-ahead log is full (storage.wal.max_bytes): counts are being flushed, retry shortly"
}

// RetryAfter implements ingest.Backpressure.
func (errWALFull) RetryAfter() time.Duration { return time.Second }

// openCounts opens the log; the consumers are attached (and the log
// replayed into them) once they exist, by replay.
func openCounts(cfg config.Config, instance string, marks wal.MarkStore, reg prometheus.Registerer, log *slog.Logger) (*counts, error) {
	dir := filepath.Join(cfg.Storage.Path, WALDir)
	maxBytes := int64(cfg.Storage.WAL.MaxBytes)
	// Segments of an eighth of the bound at most: space comes back a
	// segment at a time.
	l, err := wal.Open(dir, wal.Options{FsyncInterval: cfg.Storage.WAL.FsyncInterval.Std(), MaxBytes: maxBytes,
		SegmentBytes: min(64<<20, maxBytes/8), Logger: log})
	if err != nil {
		return nil, err
	}
	c := &counts{log: l, instance: instance, logger: log, marks: marks, maxBytes: int64(cfg.Storage.WAL.MaxBytes),
		kick: make(chan struct{}, 1),
		full: prometheus.NewCounter(prometheus.CounterOpts{Name: "tailgate_wal_full_refusals_total",
			Help: "Requests refused (pushed back) because the write-ahead log held storage.wal.max_bytes."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "tailgate_wal_replayed_records_total",
			Help: "Write-ahead log records replayed at start: requests acknowledged before a crash whose counts were not stored yet."}),
	}
	c.pool.New = func() any { return &encodeBuf{} }
	if reg != nil {
		stat := func(f func(wal.Stats) float64) func() float64 { return func() float64 { return f(l.Stats()) } }
		for _, col := range []prometheus.Collector{c.full, c.replayed,
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tailgate_wal_appended_records_total", Help: "Records appended to the write-ahead log."},
				stat(func(s wal.Stats) float64 { return float64(s.Appended) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tailgate_wal_appended_bytes_total", Help: "Bytes appended to the write-ahead log."},
				stat(func(s wal.Stats) float64 { return float64(s.AppendedBytes) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tailgate_wal_fsyncs_total", Help: "fsyncs of the write-ahead log (group commits)."},
				stat(func(s wal.Stats) float64 { return float64(s.Syncs) })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tailgate_wal_size_bytes", Help: "Bytes in the write-ahead log's segments."},
				stat(func(s wal.Stats) float64 { return float64(s.Bytes) })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tailgate_wal_segments", Help: "Segment files of the write-ahead log."},
				stat(func(s wal.Stats) float64 { return float64(s.Segments) })),
		} {
			if err := reg.Register(col); err != nil {
				l.Close()
				return nil, fmt.Errorf("register write-ahead log metrics: %w", err)
			}
		}
	}
	return c, nil
}

// replay attaches the consumers and re-counts into them the records after
// what each stored. It runs before ingest starts.
func (c *counts) replay(ctx context.Context, cfg config.Config, e *slo.Engine, sg *signals.Signals) error {
	c.slos, c.signals = e, sg
	crashed := false
	clean := filepath.Join(cfg.Storage.Path, cleanFile)
	if _, err := os.Stat(clean); err == nil {
		_ = os.Remove(clean)
	} else if c.log.Next() > 1 {
		crashed = true
	}
	ms, err := c.marks.WALMarks(ctx, c.instance)
	if err != nil {
		return err
	}
	sm, gm := ms[slo.WALConsumer], ms[signals.WALConsumer]
	from := min(sm.Pos, gm.Pos)
	if top := max(sm.Pos, gm.Pos); c.log.Next() <= top {
		// The store absorbed records the log no longer has: a power loss
		// took the log's last writes but not the store's. New records
		// must not reuse those positions.
		c.logger.Warn("write-ahead log: the store has counts of records the log lost (a power loss); continuing after them",
			"log_next", c.log.Next(), "store_mark", top)
		if err := c.log.SkipTo(top + 1); err != nil {
			return err
		}
	}
	var req otlp.Request
	var records, spans int
	// The traces of the last decision_wait before the crash were in the
	// trace buffer: recent holds each trace's last record time, pruned as
	// the replay moves on.
	recent := map[otlp.TraceID]int64{}
	var lastNow int64
	window := int64(cfg.Sampling.DecisionWait.Std())
	err = c.log.Replay(from, func(pos uint64, now time.Time, payload []byte) error {
		req.Reset()
		if err := otlp.Parse(payload, otlp.Limits{}, &req); err != nil {
			return fmt.Errorf("write-ahead log record %d: %w", pos, err)
		}
		if pos > sm.Pos {
			c.slos.Observe(&req, now)
		}
		if pos > gm.Pos {
			c.signals.ObserveFrom(&req, now, units.MinuteOf(time.Unix(0, gm.ClosedBefore)))
		}
		records++
		spans += len(req.Spans)
		if crashed {
			lastNow = now.UnixNano()
			for i := range req.Spans {
				recent[req.Spans[i].TraceID] = lastNow
			}
			if records%10000 == 0 {
				prune(recent, lastNow-window)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.signals.SetWALFloor(gm.Pos)
	c.replayed.Add(float64(records))
	if records > 0 {
		c.logger.Warn("replayed the write-ahead log: counts of acknowledged requests that were not stored yet",
			"records", records, "spans", spans, "after_position", from)
	}
	if crashed {
		prune(recent, lastNow-window)
		c.logger.Warn("the last run did not shut down cleanly: traces in its trace buffer were lost to sampling (their counts were not)",
			"traces_at_most", len(recent), "window", units.FormatDuration(time.Duration(window)))
	}
	return nil
}

func isEntry(s *otlp.Span) bool { return s.Kind.IsEntry() }

func prune(m map[otlp.TraceID]int64, before int64) {
	for id, at := range m {
		if at < before {
			delete(m, id)
		}
	}
}

// Count logs req and counts it, as one step that a cut never splits.
func (c *counts) Count(req *otlp.Request) error {
	eb := c.pool.Get().(*encodeBuf)
	defer c.pool.Put(eb)
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := time.Now()
	// Only entry spans (SERVER, CONSUMER) are counted, as SLIs and golden
	// signals; the log keeps only them, and nothing for a request without.
	eb.b = eb.enc.AppendRequestFunc(eb.b[:0], req, isEntry)
	if len(eb.b) == 0 {
		c.slos.Observe(req, now)
		c.signals.Observe(req, now)
		return nil
	}
	if _, err := c.log.Append(now, eb.b); err != nil {
		if errors.Is(err, wal.ErrFull) {
			c.full.Inc()
			c.Kick()
			return errWALFull{}
		}
		return err
	}
	c.slos.Observe(req, now)
	c.signals.Observe(req, now)
	return nil
}

// CountSource counts a request that a source able to replay it keeps (a
// Kafka partition): it is not logged, and at, run under the same lock,
// records how far the source is counted, so that a cut sees the counts
// and that position together.
func (c *counts) CountSource(req *otlp.Request, now time.Time, at func()) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	c.slos.Observe(req, now)
	c.signals.Observe(req, now)
	at()
}

// Full reports whether appends would be refused; a full log is shrunk at
// once rather than at the loop's next tick.
func (c *counts) Full() bool {
	if c.log.Full() {
		c.Kick()
		return true
	}
	return false
}

// Kick asks the loop to shrink the log now.
func (c *counts) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Start runs the loop that shrinks the log: it deletes the segments both
// consumers stored, and past a quarter of max_bytes has the golden signals
// store their open minutes so their mark catches up.
func (c *counts) Start(context.Context) error {
	c.bg.start(time.Second, c.kick, func(ctx context.Context) {
		if err := c.shrink(ctx); err != nil {
			c.logger.Warn("write-ahead log: shrink", "err", err)
		}
	})
	return nil
}

func (c *counts) shrink(ctx context.Context) error {
	if st := c.log.Stats(); c.maxBytes > 0 && st.Bytes > c.maxBytes/4 {
		if err := c.signals.FlushAll(ctx); err != nil {
			return err
		}
	}
	ms, err := c.marks.WALMarks(ctx, c.instance)
	if err != nil {
		return err
	}
	_, err = c.log.Truncate(min(ms[slo.WALConsumer].Pos, ms[signals.WALConsumer].Pos))
	return err
}

// Shutdown stops the loop. Close, after the consumers' last flush, trims
// and closes the log and marks the shutdown clean.
func (c *counts) Shutdown(context.Context) error {
	return c.bg.shutdown(nil)
}

// Close trims what the final flushes stored, closes the log and marks a
// clean shutdown.
func (c *counts) Close(ctx context.Context, storagePath string, cleanStop bool) error {
	err := c.shrink(ctx)
	err = errors.Join(err, c.log.Close())
	if err == nil && cleanStop {
		err = os.WriteFile(filepath.Join(storagePath, cleanFile), nil, 0o600)
	}
	return err
}
