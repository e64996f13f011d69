package signals

import (
	"time"
)

// rotateCardinality starts a new cardinality window when the current one is
// over: every key's figures move to its previous-window stats, sketches are
// freed, and keys, operations, services and metric series not seen during
// the window are forgotten, so memory follows what is live.
func (s *Signals) rotateCardinality(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.st
	if st.cardSince.IsZero() || now.Sub(st.cardSince) < s.cfg.Cardinality.Window.Std() {
		return
	}
	since := st.cardSince.UnixNano()
	rotate := func(t *keyTable) {
		kept := t.keys[:0]
		for _, k := range t.keys {
			if k.values.regs != nil {
				st.denseLeft++
			}
			if k.spans == 0 {
				continue
			}
			d, atLeast := k.values.estimate()
			k.prev = windowStat{distinct: d, atLeast: atLeast, spans: k.spans}
			k.spans = 0
			k.values = distinctCounter{}
			k.stable, k.settled = 0, false
			kept = append(kept, k)
		}
		clear(t.keys[len(kept):])
		t.keys = kept
		t.untracked = distinctCounter{}
		t.rebuild(16)
		t.hot = append(t.hot[:0], t.keys...)
		t.setHot()
	}
	idle := func(svc *service) bool {
		if svc.spans > 0 || svc.lastSeen >= since {
			return false
		}
		for _, op := range svc.ops {
			if len(op.aggs) > 0 {
				return false
			}
		}
		return svc.other == nil || len(svc.other.aggs) == 0
	}
	for name, svc := range st.services {
		if idle(svc) {
			delete(st.services, name)
			continue
		}
		s.rotateService(svc, since, rotate)
	}
	if st.other != nil {
		if idle(st.other) {
			st.other = nil
		} else {
			s.rotateService(st.other, since, rotate)
		}
	}
	st.series.purge(since)
	st.prevSince, st.cardSince = st.cardSince, now
}

func (s *Signals) rotateService(svc *service, since int64, rotate func(*keyTable)) {
	rotate(&svc.spanKeys)
	rotate(&svc.resKeys)
	svc.prevSpans, svc.spans = svc.spans, 0
	svc.fullReads = fullReadsPerWindow
	clear(svc.opCache)
	svc.opFast = [len(svc.opFast)]opFastEntry{}
	for name, op := range svc.ops {
		if op.lastSeen < since && len(op.aggs) == 0 {
			delete(svc.ops, name)
		}
	}
	if svc.other != nil && svc.other.lastSeen < since && len(svc.other.aggs) == 0 {
		svc.other = nil
	}
}
