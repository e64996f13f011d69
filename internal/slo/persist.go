package slo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// Start loads the state from the store and starts the flush and
// evaluation loops. It returns once the state is loaded.
func (e *Engine) Start(ctx context.Context) error {
	now := time.Now()
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if e.done != nil {
		return errors.New("slo engine already started")
	}
	if err := e.load(ctx, now); err != nil {
		return err
	}
	if err := e.SyncPeers(ctx, now); err != nil {
		return err
	}
	e.evaluate(now)
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	e.done = make(chan struct{})
	go e.run(loopCtx)
	return nil
}

// load restores counts, corrections and alert states, and starts the
// windows' coverage where the store says counting began.
func (e *Engine) load(ctx context.Context, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advanceLocked(units.MinuteOf(now))
	cur := e.openMinute()
	// Counts observed before load (a write-ahead log's replay) are not in
	// the store: the first flush writes them, whatever their minute.
	replayed := map[*series][]pendingCount{}
	for _, st := range e.slos {
		st.since = now
		st.allSeries(func(s *series) {
			for _, p := range s.ev.pts {
				if g, t := s.ev.at(p.k); g != 0 || t != 0 {
					replayed[s] = append(replayed[s], pendingCount{p.k, cnt{g, t}})
				}
			}
		})
	}
	if e.store != nil {
		for _, st := range e.slos {
			since, err := e.store.TrackSLO(ctx, st.spec.Name, now)
			if err != nil {
				return fmt.Errorf("load SLO state: %w", err)
			}
			st.since = since
		}
		bs, err := e.store.LoadSLIBuckets(ctx, e.oldestKept(cur).Time())
		if err != nil {
			return fmt.Errorf("load SLI buckets: %w", err)
		}
		for _, b := range bs {
			st := e.byName[b.SLO]
			if st == nil {
				continue // an SLO no longer configured
			}
			s := st.agg
			if b.Group != "" {
				if st.groupBy == nil {
					continue
				}
				s = st.groups.Load().byValue[b.Group]
				if s == nil {
					s = st.newGroup(b.Group, b.Minute)
				}
			}
			s.ev.add(units.MinuteOf(b.Minute), b.Good, b.Total)
		}
		cs, err := e.store.ListCorrections(ctx)
		if err != nil {
			return fmt.Errorf("load corrections: %w", err)
		}
		for _, c := range cs {
			if st := e.byName[c.SLO]; st != nil {
				st.corrections = append(st.corrections, c)
			}
		}
		ts, err := e.store.LatestAlertTransitions(ctx)
		if err != nil {
			return fmt.Errorf("load alert states: %w", err)
		}
		for _, t := range ts {
			e.restoreAlert(t)
		}
	}
	for _, st := range e.slos {
		st.agg.since = st.since
		st.allSeries(func(s *series) {
			if s.since.IsZero() || s.since.Before(st.since) {
				s.since = st.since
			}
			g, t := s.ev.at(cur)
			for _, p := range replayed[s] {
				if p.m == cur {
					g, t = g-p.c.good, t-p.c.total
				} else if e.store != nil {
					s.pending = addPending(s.pending, p.m, p.c)
				}
			}
			s.flushedMin, s.flushedG, s.flushedT, s.flushedInit = cur, g, t, true
			s.nextSlice = 0
			if first, ok := s.ev.first(); ok && st.sliceLen > 0 {
				s.nextSlice = sliceOf(first, st.sliceLen)
			}
		})
		st.ivsTo = time.Time{}
	}
	e.refreshCorrectionsLocked(now, true)
	return nil
}

func (e *Engine) restoreAlert(t Transition) {
	st := e.byName[t.SLO]
	if st == nil || t.To != Firing && t.To != Pending {
		return
	}
	i := slices.IndexFunc(st.rules, func(r rule) bool { return r.name == t.Alert })
	if i < 0 {
		return
	}
	s := st.agg
	if t.Group != "" {
		if st.groupBy == nil {
			return
		}
		if s = st.groups.Load().byValue[t.Group]; s == nil {
			s = st.newGroup(t.Group, t.At)
		}
	}
	a := &s.alerts[i]
	a.state, a.activeAt, a.lastTrue, a.changedAt, a.values = t.To, t.At, t.At, t.At, t.Values
	if t.To == Firing {
		a.firedAt = t.At
	}
}

func (e *Engine) run(ctx context.Context) {
	defer close(e.done)
	flush := time.NewTicker(e.cfg.FlushInterval.Std())
	defer flush.Stop()
	eval := time.NewTicker(e.cfg.EvalInterval.Std())
	defer eval.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			now := time.Now()
			if err := e.flush(ctx, now); err != nil {
				if n := e.flushErrors.Add(1); n == 1 || n%60 == 0 {
					e.log.Warn("SLO flush failed; retrying", "err", err, "failures", n)
				}
			}
			if err := e.syncPeers(ctx, now); err != nil {
				if n := e.peerErrors.Add(1); n == 1 || n%60 == 0 {
					e.log.Warn("reading the fleet's SLO counts failed; retrying", "err", err, "failures", n)
				}
			}
		case <-eval.C:
			now := time.Now()
			e.evaluate(now)
			if e.leading() {
				e.pruneStore(ctx, now)
			}
		}
	}
}

// Shutdown stops the loops and flushes what is not stored yet. It is
// idempotent.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.lifeMu.Lock()
	if e.stopped {
		e.lifeMu.Unlock()
		return nil
	}
	e.stopped = true
	cancel, done := e.cancel, e.done
	e.lifeMu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("stop SLO engine: %w", ctx.Err())
		}
	}
	if err := e.flush(ctx, time.Now()); err != nil {
		return fmt.Errorf("final SLO flush: %w", err)
	}
	return nil
}

// Flush writes the counts and transitions not stored yet, now rather
// than at the next flush_interval (a Kafka partition being handed to
// another instance stores its counts first).
func (e *Engine) Flush(ctx context.Context) error { return e.flush(ctx, time.Now()) }

// flush writes the counts and transitions not stored yet.
func (e *Engine) flush(ctx context.Context, now time.Time) error {
	if e.store == nil {
		return nil
	}
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.syncTo(now)

	// The bookkeeping moves under the lock, before the write: counts added
	// to closed minutes meanwhile (addClosedCounts) see the new flushedMin
	// and wait in pending, and a failed write goes back to pending.
	var (
		buckets []Bucket
		owners  []*series // of each bucket
		trans   []Transition
	)
	// With a write-ahead log, the bookkeeping is a cut of it: no request
	// is counted meanwhile, so the buckets hold exactly the records up to
	// pos, and pos is stored with them.
	var pos uint64
	var more []wal.Mark
	marked, _ := e.store.(MarkedBucketStore)
	if e.cp != nil && marked != nil {
		pos, _ = e.cp.Cut(func(time.Time) {
			buckets, owners, trans = e.takeFlush(buckets, owners)
			if e.sourceMarks != nil {
				more = e.sourceMarks()
			}
		})
	} else {
		buckets, owners, trans = e.takeFlush(buckets, owners)
	}

	var errs []error
	if len(buckets) > 0 || e.cp != nil && marked != nil {
		var err error
		if e.cp != nil && marked != nil {
			err = marked.AddSLIBucketsMarked(ctx, buckets, wal.Mark{Instance: e.cp.Instance(), Consumer: WALConsumer, Pos: pos}, more...)
		} else {
			err = e.store.AddSLIBuckets(ctx, buckets)
		}
		if err != nil {
			errs = append(errs, err)
			e.mu.Lock()
			for i, b := range buckets {
				s := owners[i]
				s.pending = addPending(s.pending, units.MinuteOf(b.Minute), cnt{b.Good, b.Total})
			}
			e.mu.Unlock()
		}
	}
	if len(errs) == 0 {
		e.lastFlushOK.Store(now.UnixNano())
	}
	if len(trans) > 0 {
		if err := e.store.AddAlertTransitions(ctx, trans); err != nil {
			errs = append(errs, err)
			e.mu.Lock()
			e.unsaved = append(trans, e.unsaved...)
			e.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// takeFlush moves the counts not stored yet out of the series, with the
// series each bucket belongs to, and the transitions not stored yet.
func (e *Engine) takeFlush(buckets []Bucket, owners []*series) ([]Bucket, []*series, []Transition) {
	e.mu.Lock()
	trans := e.unsaved
	e.unsaved = nil
	cur := e.openMinute()
	for _, st := range e.slos {
		st.allSeries(func(s *series) {
			live := unpack(s.live.Load())
			emit := func(k units.Minute, g, t uint64) {
				if k == s.flushedMin {
					g, t = g-min(g, s.flushedG), t-min(t, s.flushedT)
				}
				if g != 0 || t != 0 {
					buckets = append(buckets, Bucket{SLO: st.spec.Name, Group: s.group, Minute: k.Time(), Good: g, Total: t})
					owners = append(owners, s)
				}
			}
			for _, p := range s.pending {
				buckets = append(buckets, Bucket{SLO: st.spec.Name, Group: s.group, Minute: p.m.Time(), Good: p.c.good, Total: p.c.total})
				owners = append(owners, s)
			}
			s.pending = s.pending[:0]
			var curG, curT uint64
			seenCur := false
			for i := searchPoint(s.ev.pts, s.flushedMin); i < len(s.ev.pts); i++ {
				k := s.ev.pts[i].k
				g, t := s.ev.at(k)
				pg, pt := s.peer.at(k) // the peers flush their own
				g, t = g-pg, t-pt
				if k == cur {
					g, t, seenCur = g+live.good, t+live.total, true
					curG, curT = g, t
				}
				emit(k, g, t)
			}
			if !seenCur {
				curG, curT = live.good, live.total
				emit(cur, curG, curT)
			}
			s.flushedMin, s.flushedG, s.flushedT = cur, curG, curT
		})
	}
	e.mu.Unlock()
	return buckets, owners, trans
}

// pruneStore drops stored buckets beyond retention, once an hour.
func (e *Engine) pruneStore(ctx context.Context, now time.Time) {
	if e.store == nil || now.Sub(e.lastPrune) < time.Hour {
		return
	}
	e.lastPrune = now
	if err := e.store.DeleteSLIBucketsBefore(ctx, e.oldestKept(units.MinuteOf(now)).Time()); err != nil {
		e.log.Warn("prune SLI buckets", "err", err)
	}
}
