package sampler

// The overload policies a shard applies when it is over its share of
// the buffer limits: push back (refuse new requests) or stress relief
// (decide traces early by their trace ID).

import "time"

// relieve applies the overload policy when the shard is over its share of
// max_buffered_spans or max_buffered_bytes.
func (sh *shard) relieve(now int64) {
	if sh.s.pushBack {
		sh.pushBack(now)
		return
	}
	sh.stressRelief(now)
}

// pushBack, when the shard is over its limits, decides the traces whose
// verdict is final (policy.final): at the first batch over the limits all
// buffered traces are checked, then only those that got spans since. When
// the shard is still over its limits it raises its flag and Consume
// refuses new requests until a tick finds it back under them.
func (sh *shard) pushBack(now int64) {
	if sh.nspans <= sh.maxSpans && sh.nbytes <= sh.maxBytes {
		if sh.overMode {
			sh.leaveOverMode()
		}
		return
	}
	s := sh.s
	decided := 0
	check := func(tr *Trace) {
		tr.dirty = false
		if tr.decided {
			return
		}
		if _, ok := s.policy.final(tr, time.Unix(0, now), &sh.sc); ok {
			sh.decide(tr, now, TriggerFinal)
			decided++
		}
	}
	if !sh.overMode {
		sh.overMode = true
		for _, tr := range sh.traces {
			check(tr)
		}
	} else {
		for i, tr := range sh.dirty {
			check(tr)
			sh.dirty[i] = nil
		}
	}
	sh.dirty = sh.dirty[:0]
	if decided > 0 {
		s.m.finalEarly.Add(float64(decided))
	}
	if sh.nspans <= sh.maxSpans && sh.nbytes <= sh.maxBytes {
		sh.leaveOverMode()
		return
	}
	if !sh.over {
		sh.over = true
		if s.overShards.Add(1) == 1 {
			s.m.pushBackEpisodes.Inc()
			s.log.Warn("trace buffer over its limits: refusing new requests until it drains (overload policy push_back)",
				"max_buffered_spans", s.cfg.MaxBufferedSpans, "max_buffered_bytes", s.cfg.MaxBufferedBytes.String())
		}
	}
}

// leaveOverMode ends the shard's push_back state: it is back under its
// limits.
func (sh *shard) leaveOverMode() {
	sh.overMode = false
	for i, tr := range sh.dirty {
		tr.dirty = false
		sh.dirty[i] = nil
	}
	sh.dirty = sh.dirty[:0]
	if sh.over {
		sh.over = false
		if sh.s.overShards.Add(-1) == 0 {
			sh.s.log.Info("trace buffer back under its limits: taking requests again")
		}
	}
}

// stressRelief decides traces early, nearest deadline first, while the
// shard is over its share of max_buffered_spans or max_buffered_bytes,
// until it is under 90% of both (the decide_early policy).
func (sh *shard) stressRelief(now int64) {
	if sh.nspans <= sh.maxSpans && sh.nbytes <= sh.maxBytes {
		return
	}
	lowSpans, lowBytes := sh.maxSpans*9/10, sh.maxBytes*9/10
	w := sh.wheel
	nslots := int64(len(w.slots))
	if w.stressTick < w.cur {
		w.stressTick, w.stressPos = w.cur, 0
	}
	decided, restarted := 0, false
	for (sh.nspans > lowSpans || sh.nbytes > lowBytes) && sh.ntraces > 0 {
		if w.stressTick >= w.cur+nslots {
			if restarted {
				break
			}
			restarted = true
			w.stressTick, w.stressPos = w.cur, 0
		}
		slot := w.slots[w.stressTick%nslots]
		if w.stressPos >= len(slot) {
			w.stressTick++
			w.stressPos = 0
			continue
		}
		id := slot[w.stressPos]
		w.stressPos++
		if tr := sh.traces[id]; tr != nil {
			sh.decide(tr, now, TriggerStress)
			decided++
		}
	}
	if decided > 0 {
		sh.s.noteStress(now, decided)
	}
}
