package units

import "time"

// EventClock decides the Minute a span is counted in, for spans that arrive
// at one instant now. The rule, shared by SLO and golden-signal counting:
//
//   - A span counts in the Minute of its end time (event time) while that
//     Minute is still open: the span ended no earlier than now minus the
//     lateness bound, and no later than the end of now's Minute.
//   - Any other span (late data beyond the bound, or a sender whose clock
//     runs ahead into a Minute that has not begun) counts in now's Minute,
//     and Minute reports it as clamped so the caller counts it in a metric.
//
// No span is ever dropped by the rule, and a replay within the lateness
// bound lands every count in the Minute it was first counted in.
type EventClock struct {
	now      Minute
	lo, hiNs uint64 // open range of end times [lo, hi) in Unix ns
}

// NewEventClock returns the clock of spans arriving at now, accepting end
// times up to lateness before now.
func NewEventClock(now time.Time, lateness time.Duration) EventClock {
	m := MinuteOf(now)
	c := EventClock{now: m}
	if lo := now.UnixNano() - int64(max(lateness, 0)); lo > 0 {
		c.lo = uint64(lo)
	}
	if hi := int64(m+1) * int64(time.Minute); hi > 0 {
		c.hiNs = uint64(hi)
	}
	return c
}

// Now returns the Minute of now.
func (c EventClock) Now() Minute { return c.now }

// Minute returns the Minute a span ending at endNs (Unix ns, as OTLP gives
// it) counts in, and whether the rule clamped it to now's Minute.
func (c EventClock) Minute(endNs uint64) (m Minute, clamped bool) {
	if endNs < c.lo || endNs >= c.hiNs {
		return c.now, true
	}
	return MinuteOfUnixNano(endNs), false
}
