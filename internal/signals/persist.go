package signals

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// Start begins the background loop that writes closed minutes to the store,
// rolls up and expires old buckets, and starts new cardinality windows. It
// returns at once.
func (s *Signals) Start(ctx context.Context) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.running || s.stopped {
		return errors.New("signals: already started")
	}
	s.running = true
	go s.loop()
	return nil
}

func (s *Signals) loop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.FlushInterval.Std())
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), max(s.cfg.FlushInterval.Std(), 5*time.Second))
			s.tick(ctx, now)
			cancel()
		}
	}
}

// tick does one round of background work.
func (s *Signals) tick(ctx context.Context, now time.Time) {
	if err := s.flush(ctx, now, false); err != nil {
		s.log.Error("write golden signals", "err", err)
	}
	s.rotateCardinality(now)
	s.mu.Lock()
	due := now.Sub(s.st.lastMaintenance) >= time.Hour && (s.leader == nil || s.leader())
	if due {
		s.st.lastMaintenance = now
	}
	s.mu.Unlock()
	if due {
		if err := s.maintain(ctx, now); err != nil {
			s.log.Error("roll up and expire golden signals", "err", err)
		}
	}
}

// Shutdown stops the loop and writes every bucket still in memory. It is
// idempotent and honours ctx's deadline.
func (s *Signals) Shutdown(ctx context.Context) error {
	s.lifeMu.Lock()
	if s.stopped {
		s.lifeMu.Unlock()
		return nil
	}
	s.stopped = true
	running := s.running
	s.lifeMu.Unlock()
	if running {
		close(s.stop)
		select {
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("stop signals loop: %w", ctx.Err())
		}
	}
	if err := s.flush(ctx, time.Now(), true); err != nil {
		return fmt.Errorf("write golden signals at shutdown: %w", err)
	}
	return nil
}

// maxRetryRows bounds the rows kept for another try after a failed write.
const maxRetryRows = 200_000

// flush writes closed minutes (all minutes when all is set) and the error
// origins recorded so far.
func (s *Signals) flush(ctx context.Context, now time.Time, all bool) error {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	var (
		taken   []takenAgg
		buckets []Bucket
		origins []OriginRow
		cutoff  time.Time
		pos     uint64
	)
	take := func(now time.Time) {
		cutoff = now.Add(-time.Duration(s.lateness))
		s.mu.Lock()
		taken = s.takeAggs(cutoff, all)
		buckets = s.st.retryBuckets
		origins = s.st.retryOrigins
		s.st.retryBuckets, s.st.retryOrigins = nil, nil
		origins = s.takeOrigins(origins)
		s.mu.Unlock()
	}
	marked, _ := s.store.(MarkedStore)
	if s.cp != nil && marked != nil {
		// A cut of the write-ahead log: no request is counted meanwhile,
		// and the cut's time is the flush's now.
		pos, now = s.cp.Cut(take)
		s.cuts = append(s.cuts, walCut{pos: pos, minute: units.MinuteOf(now)})
		if len(s.cuts) > maxCuts {
			s.cuts = slices.Delete(s.cuts, 0, len(s.cuts)-maxCuts)
		}
	} else {
		take(now)
	}

	for _, t := range taken {
		lat, _ := t.agg.sketch.MarshalBinary()
		buckets = append(buckets, Bucket{
			Service:   t.service,
			Operation: t.operation,
			Start:     t.agg.minute.Time(),
			Step:      time.Minute,
			Requests:  t.agg.sketch.Count(),
			Errors:    t.agg.errors,
			Latency:   lat,
		})
	}
	var bucketErr, originErr error
	if s.cp != nil && marked != nil {
		mark := s.mark(pos, cutoff, all)
		if err := marked.AppendSignalBucketsMarked(ctx, buckets, mark); err != nil {
			bucketErr = fmt.Errorf("append %d buckets: %w", len(buckets), err)
		}
	} else if len(buckets) > 0 {
		if err := s.store.AppendSignalBuckets(ctx, buckets); err != nil {
			bucketErr = fmt.Errorf("append %d buckets: %w", len(buckets), err)
		}
	}
	if len(origins) > 0 {
		if err := s.store.AppendErrorOrigins(ctx, origins); err != nil {
			originErr = fmt.Errorf("append %d error origin rows: %w", len(origins), err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseAggs(taken)
	// Rows whose write failed wait for the next flush (reads still see
	// them), but not without bound while the store is down.
	if bucketErr != nil {
		s.st.c.flushErrors++
		if len(buckets) <= maxRetryRows {
			s.st.retryBuckets = buckets
		} else {
			s.st.c.rowsDropped += uint64(len(buckets))
		}
	} else {
		s.st.c.bucketsWritten += uint64(len(buckets))
	}
	if originErr != nil {
		s.st.c.flushErrors++
		if len(origins) <= maxRetryRows {
			s.st.retryOrigins = origins
		} else {
			s.st.c.rowsDropped += uint64(len(origins))
		}
	}
	return errors.Join(bucketErr, originErr)
}

// maintain expires old rows and rolls minute buckets up into hours.
func (s *Signals) maintain(ctx context.Context, now time.Time) error {
	if err := s.store.DeleteSignalsBefore(ctx, now.Add(-s.cfg.Retention.Std())); err != nil {
		return fmt.Errorf("expire golden signals: %w", err)
	}
	if s.cfg.RollupAfter == 0 {
		return nil
	}
	cutoff := now.Add(-s.cfg.RollupAfter.Std()).Truncate(time.Hour)
	// A bounded number of hours per round keeps a long backlog (the first
	// start after an upgrade) from holding the store for long.
	for range 48 {
		oldest, ok, err := s.store.OldestSignalBucket(ctx, time.Minute)
		if err != nil {
			return fmt.Errorf("find oldest minute bucket: %w", err)
		}
		if !ok || !oldest.Before(cutoff) {
			return nil
		}
		from := oldest.Truncate(time.Hour)
		if err := s.rollupHour(ctx, from); err != nil {
			return err
		}
	}
	return nil
}

func (s *Signals) rollupHour(ctx context.Context, from time.Time) error {
	to := from.Add(time.Hour)
	rows, err := s.store.SignalBuckets(ctx, BucketFilter{From: from, To: to, Step: time.Minute})
	if err != nil {
		return fmt.Errorf("read minute buckets of %s: %w", from.Format(time.RFC3339), err)
	}
	type key struct{ svc, op string }
	merged := map[key]*Bucket{}
	sketches := map[key]*Sketch{}
	var order []key
	for _, r := range rows {
		k := key{r.Service, r.Operation}
		b, ok := merged[k]
		if !ok {
			b = &Bucket{Service: r.Service, Operation: r.Operation, Start: from, Step: time.Hour}
			merged[k] = b
			sketches[k] = &Sketch{}
			order = append(order, k)
		}
		b.Requests += r.Requests
		b.Errors += r.Errors
		var sk Sketch
		if err := sk.UnmarshalBinary(r.Latency); err != nil {
			s.log.Warn("skip unreadable latency sketch in rollup", "service", r.Service, "err", err)
			continue
		}
		sketches[k].Merge(&sk)
	}
	out := make([]Bucket, 0, len(order))
	for _, k := range order {
		b := merged[k]
		b.Latency, _ = sketches[k].MarshalBinary()
		out = append(out, *b)
	}
	if err := s.store.ReplaceSignalBuckets(ctx, from, to, out); err != nil {
		return fmt.Errorf("roll up %s: %w", from.Format(time.RFC3339), err)
	}
	return nil
}

// walCut is one flush's cut of the write-ahead log: every record up to
// pos was counted at or before the cut's minute.
type walCut struct {
	pos    uint64
	minute units.Minute
}

// maxCuts bounds the cuts kept: enough for minutes to close (lateness
// plus a minute) at any flush interval of a second or more.
const maxCuts = 1024

// mark is the write-ahead log mark a flush stores. The flush wrote every
// minute before C (the cutoff's minute), or all of them. Records up to a
// cut made in a minute before C counted only into minutes before C (a
// record counts into minutes no later than its own), so they are wholly
// stored: the newest such cut is the mark's position. Records after it
// are stored for their minutes before C and no later ones; records after
// this flush's cut count into minutes from C on only (a span ending
// before now - lateness counts in now's minute).
func (s *Signals) mark(pos uint64, cutoff time.Time, all bool) wal.Mark {
	m := wal.Mark{Instance: s.cp.Instance(), Consumer: WALConsumer}
	if all {
		s.fullPos = pos
		m.Pos = pos
		return m
	}
	c := units.MinuteOf(cutoff)
	m.ClosedBefore = c.Time().UnixNano()
	// Never behind a flush of every minute: the records up to it are
	// stored whole, open minutes too, and replaying them from an older
	// cut would count their open minutes twice.
	m.Pos = s.fullPos
	for _, cut := range s.cuts {
		if cut.minute < c && cut.pos > m.Pos {
			m.Pos = cut.pos
		}
	}
	return m
}

// FlushAll writes every minute now, the open ones too, as rows that reads
// merge with the minute's later rows. It lets the write-ahead log shrink:
// the mark it stores covers every record counted so far.
func (s *Signals) FlushAll(ctx context.Context) error { return s.flush(ctx, time.Now(), true) }

// SetWALFloor tells the signals the position up to which the store holds
// every record whole (its stored mark, at start): a later mark never goes
// below it.
func (s *Signals) SetWALFloor(pos uint64) {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	s.fullPos = max(s.fullPos, pos)
}
