package slo

import (
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Observe counts the entry spans of a request against the SLOs of their
// service, each in the minute of its end time (event time), for a request
// that arrived at now. It does not retain req.
//
// The minute follows units.EventClock: a span that ended more than
// MaxLateness before now, or in a minute that has not begun, counts in
// now's minute and in tailgate_slo_late_spans_total. Nothing is lost: a
// count in an earlier minute that is closed already is added to its
// history (and written to the store at the next flush).
//
// Counts of the open minute are summed per SLO (and group) over the run of
// spans that share a resource, then added with one atomic operation each:
// the cost per span is the kind check, one pass over its attributes when a
// filter or group reads any, and the filters themselves. Counts of closed
// minutes (spans that end just before a minute boundary and arrive after
// it) are summed per request and added under the engine's lock.
func (e *Engine) Observe(req *otlp.Request, now time.Time) {
	if len(e.byService) == 0 || len(req.Spans) == 0 {
		return
	}
	clock := units.NewEventClock(now, e.lateness)
	if m := clock.Now(); m > e.openMinute() {
		e.advance(m)
	}
	open := e.openMinute()
	skew := e.skewNs
	nowNs := uint64(now.UnixNano())
	scope := int32(-1)
	var (
		plan           *svcPlan
		rejected, late uint64
		av             attrValues
		acc            accumulator
		closedBuf      [8]closedCount
	)
	closed := closedBuf[:0]
	for i := range req.Spans {
		sp := &req.Spans[i]
		if !sp.Kind.IsEntry() {
			continue
		}
		if sp.Scope != scope {
			scope = sp.Scope
			if p := e.byService[req.SpanResource(sp).ServiceName]; p != plan {
				acc.flush(plan)
				plan = p
			}
		}
		if plan == nil {
			continue
		}
		if skew > 0 && (sp.EndUnixNano > nowNs+skew || sp.EndUnixNano+skew < nowNs) {
			rejected++
			continue
		}
		m, clamped := clock.Minute(sp.EndUnixNano)
		if clamped {
			late++
		}
		av.scanned = false
		for j, st := range plan.slos {
			if len(st.filter) > 0 && !st.match(req, sp, plan, &av) {
				continue
			}
			inc := uint64(liveGood)
			if st.bad(sp) {
				inc = liveBad
			}
			var g *series
			if st.groupBy != nil {
				var buf [32]byte
				v, ok := st.groupValue(req, sp, plan, &av, buf[:0])
				g = acc.cachedGroup(j, v, ok)
				if g == nil {
					g = st.group(v, ok, now)
				}
			}
			if m < open {
				closed = addClosed(closed, st, st.agg, m, inc)
				if g != nil {
					closed = addClosed(closed, st, g, m, inc)
				}
				continue
			}
			acc.add(j, st, g, inc)
		}
	}
	acc.flush(plan)
	if len(closed) > 0 {
		e.addClosedCounts(closed)
	}
	if rejected > 0 {
		e.skewRejected.Add(rejected)
	}
	if late > 0 {
		e.lateSpans.Add(late)
	}
}

// closedCount is a request's increments (packed like series.live) of one
// series in a minute that is closed already.
type closedCount struct {
	st  *sloState
	s   *series
	m   units.Minute
	inc uint64
}

// addClosed adds inc to the entry of s and m, or appends one.
func addClosed(cs []closedCount, st *sloState, s *series, m units.Minute, inc uint64) []closedCount {
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].s == s && cs[i].m == m {
			cs[i].inc += inc
			return cs
		}
	}
	return append(cs, closedCount{st, s, m, inc})
}

// addClosedCounts adds counts of closed minutes to the series' histories,
// recomputes the time slices they fall in, and queues them for the store
// when their minute was flushed already.
func (e *Engine) addClosedCounts(cs []closedCount) {
	e.mu.Lock()
	defer e.mu.Unlock()
	open := e.openMinute()
	for _, x := range cs {
		if x.m >= open { // cannot happen: the open minute only grows
			x.s.live.Add(x.inc)
			continue
		}
		c := unpack(x.inc)
		x.s.ev.add(x.m, c.good, c.total)
		if e.store != nil && x.m < x.s.flushedMin {
			x.s.pending = addPending(x.s.pending, x.m, c)
		}
		x.st.reslice(x.s, x.m)
	}
}

// maxAccumulated bounds the SLOs of one service whose counts Observe sums
// locally; the others are added span by span.
const maxAccumulated = 32

// accumulator sums a request's increments per SLO of one service plan,
// and per group while consecutive spans share it.
type accumulator struct {
	agg   [maxAccumulated]uint64
	group [maxAccumulated]*series
	gsum  [maxAccumulated]uint64
	used  uint64 // bit j: agg[j] or gsum[j] is pending
}

// cachedGroup returns SLO j's current group series when the span's group
// value is the one it was found for, sparing the map lookup while
// consecutive spans share a route.
func (a *accumulator) cachedGroup(j int, v []byte, ok bool) *series {
	if j >= maxAccumulated || !ok {
		return nil
	}
	if g := a.group[j]; g != nil && g.group == string(v) {
		return g
	}
	return nil
}

func (a *accumulator) add(j int, st *sloState, g *series, inc uint64) {
	if j >= maxAccumulated {
		st.agg.live.Add(inc)
		if g != nil {
			g.live.Add(inc)
		}
		return
	}
	a.agg[j] += inc
	if g != nil {
		if a.group[j] != g {
			if a.group[j] != nil && a.gsum[j] != 0 {
				a.group[j].live.Add(a.gsum[j])
			}
			a.group[j], a.gsum[j] = g, 0
		}
		a.gsum[j] += inc
	}
	a.used |= 1 << j
}

// flush adds the pending sums of plan's SLOs and empties the accumulator.
func (a *accumulator) flush(plan *svcPlan) {
	if plan == nil || a.used == 0 {
		return
	}
	for j, st := range plan.slos {
		if j >= maxAccumulated {
			break
		}
		if a.used&(1<<j) == 0 {
			continue
		}
		if a.agg[j] != 0 {
			st.agg.live.Add(a.agg[j])
		}
		if a.group[j] != nil && a.gsum[j] != 0 {
			a.group[j].live.Add(a.gsum[j])
		}
		a.agg[j], a.group[j], a.gsum[j] = 0, nil, 0
	}
	a.used = 0
}

// advance closes the open minute when now's minute m is later.
func (e *Engine) advance(m units.Minute) {
	e.mu.Lock()
	e.advanceLocked(m)
	e.mu.Unlock()
}

func (e *Engine) advanceLocked(m units.Minute) {
	old := e.openMinute()
	if m <= old {
		return
	}
	if old == 0 {
		// First minute seen: what was counted belongs to it, and counting
		// began then unless Start said otherwise.
		for _, st := range e.slos {
			if st.since.IsZero() {
				st.since = m.Time()
				st.agg.since = st.since
			}
		}
		e.cur.Store(int64(m))
		return
	}
	// Corrections are expanded a day and a half ahead; roll the horizon
	// before closing slices that read them.
	e.refreshCorrectionsLocked(m.Time(), false)
	prune := m/60 != old/60
	for _, st := range e.slos {
		st.allSeries(func(s *series) {
			if v := s.live.Swap(0); v != 0 {
				c := unpack(v)
				s.ev.add(old, c.good, c.total)
			}
			st.closeSlices(s, m)
			if prune {
				s.ev.prune(e.oldestKept(m))
				s.peer.prune(e.oldestKept(m))
				if st.sliceLen > 0 {
					s.sl.prune(sliceOf(e.oldestKept(m), st.sliceLen))
				}
			}
		})
	}
	e.cur.Store(int64(m))
}

// syncTo closes the minutes before now's, so that reads see closed slices.
func (e *Engine) syncTo(now time.Time) {
	if m := units.MinuteOf(now); m > e.openMinute() {
		e.advance(m)
	}
}
