package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailgate-sre/tailgate/internal/ingest/kafka"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// kafkaSource is the daemon's side of the Kafka intake (kafka.Handler).
//
// A partition's records are counted once across the fleet by storing,
// with the SLO counts and in the same transaction, the offset after the
// last record those counts include (a source mark, under the instance
// "kafka:<group>"). An instance given a partition skips counting the
// records below that mark; it still samples them, since the traces of
// records not committed were not surely exported.
//
// An offset is committed once its record is settled: counted and stored
// (below the mark), and its traces decided and exported (taken longer
// than decision_wait + settle_margin before the oldest request the
// exporter still holds).
type kafkaSource struct {
	// The pipeline: the sampler takes a record's spans or pushes back,
	// count counts them (running at under the counts' lock), oldest is
	// the exporter's watermark, flush stores the SLO counts.
	sample func(context.Context, *otlp.Request) error
	count  func(req *otlp.Request, now time.Time, at func())
	oldest func() (time.Time, bool)
	flush  func(context.Context) error

	log      *slog.Logger
	marks    wal.MarkStore
	instance string // the source marks' instance
	topic    string
	wait     time.Duration // decision_wait + settle_margin
	now      func() time.Time
	intake   *kafka.Intake

	// drained is set once the sampler has decided every trace it held
	// (shutdown): what is taken is then handed to the exporter already.
	drained atomic.Bool

	mu    sync.Mutex
	parts map[int32]*kafkaPartition
}

// kafkaPartition is what this instance knows of a partition it owns.
type kafkaPartition struct {
	// skipBelow is the stored mark when the partition was assigned: the
	// records before it are counted already.
	skipBelow int64
	// next is the offset after the last record counted here (0: none).
	next int64
	// taken lists the records taken and not yet committed, oldest first.
	taken []takenRecord
}

type takenRecord struct {
	offset int64
	at     time.Time
}

func newKafkaSource(d *Daemon, cfg *kafka.Config, decisionWait time.Duration, marks wal.MarkStore, log *slog.Logger) *kafkaSource {
	margin := cfg.SettleMargin.Std()
	if margin == 0 {
		margin = 10 * time.Second
	}
	return &kafkaSource{
		// The components are built after the source: look them up late.
		sample: func(ctx context.Context, req *otlp.Request) error { return d.sampler.Consume(ctx, req) },
		count: func(req *otlp.Request, now time.Time, at func()) {
			d.counts.CountSource(req, now, at)
			d.observeVersionsUsers(req, now)
		},
		oldest: func() (time.Time, bool) { return d.exporter.Oldest() },
		flush:  func(ctx context.Context) error { return d.slos.Flush(ctx) },
		log:    log, marks: marks, instance: "kafka:" + cfg.Group, topic: cfg.Topic,
		wait: decisionWait + margin, now: time.Now, parts: map[int32]*kafkaPartition{}}
}

// consumer names a partition's source mark.
func (s *kafkaSource) consumer(p int32) string { return "slo:" + s.topic + "/" + strconv.Itoa(int(p)) }

// sourceMarks returns the marks of the partitions counted here; the SLO
// engine calls it inside its flush's cut.
func (s *kafkaSource) sourceMarks() []wal.Mark {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wal.Mark
	for p, st := range s.parts {
		if st.next > 0 {
			out = append(out, wal.Mark{Instance: s.instance, Consumer: s.consumer(p), Pos: uint64(st.next)})
		}
	}
	return out
}

// Assigned implements kafka.Handler: it reads where counting stands.
func (s *kafkaSource) Assigned(ctx context.Context, ps []int32) error {
	ms, err := s.marks.WALMarks(ctx, s.instance)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		s.parts[p] = &kafkaPartition{skipBelow: int64(ms[s.consumer(p)].Pos)}
	}
	return nil
}

// Record implements kafka.Handler: the sampler takes the spans (or
// pushes back), then they are counted unless an earlier owner did.
func (s *kafkaSource) Record(ctx context.Context, req *otlp.Request, p int32, offset int64) error {
	if err := s.sample(ctx, req); err != nil {
		return err
	}
	now := s.now()
	s.mu.Lock()
	st := s.parts[p]
	if st == nil { // not announced by Assigned; count from here
		st = &kafkaPartition{}
		s.parts[p] = st
	}
	s.mu.Unlock()
	if offset >= st.skipBelow {
		s.count(req, now, func() {
			s.mu.Lock()
			st.next = offset + 1
			s.mu.Unlock()
		})
	}
	s.mu.Lock()
	st.taken = append(st.taken, takenRecord{offset, now})
	s.mu.Unlock()
	return nil
}

// Settled implements kafka.Handler.
func (s *kafkaSource) Settled(ctx context.Context) (map[int32]int64, error) {
	ms, err := s.marks.WALMarks(ctx, s.instance)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settledLocked(ms, nil), nil
}

// settledLocked returns the last settled offset of each partition (of
// only, when not nil) and forgets the records up to it.
func (s *kafkaSource) settledLocked(ms map[string]wal.Mark, only []int32) map[int32]int64 {
	now := s.now()
	horizon := now.Add(-s.wait)
	if s.drained.Load() {
		horizon = now
	}
	if at, ok := s.oldest(); ok && at.Add(-s.wait).Before(horizon) {
		horizon = at.Add(-s.wait)
	}
	out := map[int32]int64{}
	settle := func(p int32, st *kafkaPartition) {
		last, n := int64(-1), 0
		for n < len(st.taken) && st.taken[n].at.Before(horizon) {
			last = st.taken[n].offset
			n++
		}
		// Only what the store holds: the mark is the next record to count.
		if stored := int64(ms[s.consumer(p)].Pos) - 1; last > stored {
			last = stored
			n = 0
			for n < len(st.taken) && st.taken[n].offset <= last {
				n++
			}
		}
		if last < 0 {
			return
		}
		st.taken = st.taken[n:]
		out[p] = last
	}
	if only == nil {
		for p, st := range s.parts {
			settle(p, st)
		}
		return out
	}
	for _, p := range only {
		if st := s.parts[p]; st != nil {
			settle(p, st)
		}
	}
	return out
}

// Revoked implements kafka.Handler: the counts are stored, with the
// partitions' marks, before they go to another instance.
func (s *kafkaSource) Revoked(ctx context.Context, ps []int32) map[int32]int64 {
	if err := s.flush(ctx); err != nil {
		// The next owner counts again what was not stored; this
		// instance's later flush stores it too (docs/kafka.md).
		s.log.Warn("kafka: storing the counts of revoked partitions failed; they may be counted twice", "err", err)
	}
	ms, err := s.marks.WALMarks(ctx, s.instance)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out map[int32]int64
	if err == nil {
		out = s.settledLocked(ms, ps)
	}
	for _, p := range ps {
		delete(s.parts, p)
	}
	return out
}

// Lost implements kafka.Handler.
func (s *kafkaSource) Lost(ps []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		delete(s.parts, p)
	}
}

// start and stop are the intake's steps; the last commit and leaving
// the group wait for drain, once the sampler and the exporter stopped.
func (s *kafkaSource) start(ctx context.Context) error {
	if s == nil {
		return nil
	}
	return s.intake.Start(ctx)
}

func (s *kafkaSource) stop(ctx context.Context) error {
	if s == nil {
		return nil
	}
	return s.intake.Stop(ctx)
}

// drain commits what the stopped pipeline settled and leaves the group.
func (s *kafkaSource) drain(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.drained.Store(true)
	if err := s.intake.Shutdown(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}
