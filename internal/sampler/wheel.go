package sampler

import "github.com/tailgate-sre/tailgate/internal/otlp"

// wheel is a timing wheel of trace IDs: slot i holds the traces due in tick
// i (modulo the slot count). A trace is entered again when its deadline
// moves earlier (its root span arrived); the stale entry is skipped when
// its slot comes, because the trace is gone or not yet due. This replaces
// per-trace timers, as the Collector's idbatcher does.
type wheel struct {
	tick  int64 // nanoseconds per slot
	slots [][]otlp.TraceID
	cur   int64 // absolute tick of the next slot to drain

	// The stress-relief cursor: entries of slot stressTick before
	// stressPos have been visited.
	stressTick int64
	stressPos  int
}

// newWheel makes a wheel covering horizon nanoseconds, starting at now.
func newWheel(tick, horizon, now int64) *wheel {
	n := horizon/tick + 2
	return &wheel{tick: tick, slots: make([][]otlp.TraceID, n), cur: now / tick}
}

// add enters id in the slot of deadline (the first slot at or after it,
// and never one already drained or beyond the horizon).
func (w *wheel) add(id otlp.TraceID, deadline int64) {
	at := (deadline + w.tick - 1) / w.tick
	at = max(at, w.cur)
	at = min(at, w.cur+int64(len(w.slots))-1)
	i := at % int64(len(w.slots))
	w.slots[i] = append(w.slots[i], id)
}

// due returns the next slot to drain if its time has come by now, and
// advances past it; the caller must handle every ID and then call
// release. ok is false when no slot is due.
func (w *wheel) due(now int64) (ids []otlp.TraceID, ok bool) {
	if w.cur*w.tick > now {
		return nil, false
	}
	i := w.cur % int64(len(w.slots))
	ids = w.slots[i]
	w.slots[i] = nil
	w.cur++
	return ids, true
}

// release returns a drained slot's memory for reuse by the slot it came
// from, unless the slot was refilled meanwhile.
func (w *wheel) release(tick int64, ids []otlp.TraceID) {
	i := tick % int64(len(w.slots))
	if w.slots[i] == nil && cap(ids) <= 4096 {
		w.slots[i] = ids[:0]
	}
}
