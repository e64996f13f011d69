package shed

import (
	"math"
	"time"
)

// vegas is an adaptive concurrency limit in the manner of TCP Vegas, as
// Netflix's concurrency-limits applies it to services.
//
// The idea: with no queue, a request takes about minRTT, the fastest time
// ever seen. When a window of requests averages rtt > minRTT, the extra time
// is queueing, and limit*(1-minRTT/rtt) estimates how many of the limit's
// requests are waiting rather than being worked on. A small queue keeps the
// server busy; a large one only adds latency. So the limit grows while the
// estimated queue is under alpha and shrinks while it is over beta, by steps
// of log10(limit) so that large limits move faster in absolute terms.
//
// minRTT is the smallest single request time seen, not a window average:
// under a load that starts at full overload, the first requests still ran
// without a queue, while every window average already includes one.
type vegas struct {
	limit    float64
	min, max float64
	// smoothing weighs a new limit against the old one: 1 takes the new
	// limit as is.
	smoothing float64
	minRTT    time.Duration
}

// sample records one request's time, so minRTT can follow it.
func (v *vegas) sample(rtt time.Duration) {
	if rtt > 0 && (v.minRTT == 0 || rtt < v.minRTT) {
		v.minRTT = rtt
	}
}

// update adjusts the limit after a window whose requests averaged rtt and
// whose in-flight count peaked at inflight.
func (v *vegas) update(rtt time.Duration, inflight int) {
	if rtt <= 0 || v.minRTT == 0 {
		return
	}
	l := v.limit
	step := max(1, math.Log10(l))
	alpha, beta := 3*step, 6*step
	queue := l * (1 - float64(v.minRTT)/float64(rtt))
	var next float64
	switch {
	case queue > beta:
		next = l - step
	case float64(inflight)*2 < l:
		// The service used under half its limit: latency says nothing
		// about whether more would fit, so do not grow.
		return
	case queue <= step:
		// Hardly any queue: grow fast.
		next = l + beta
	case queue < alpha:
		next = l + step
	default:
		return
	}
	next = min(max(next, v.min), v.max)
	v.limit = (1-v.smoothing)*l + v.smoothing*next
}

// window gathers the requests that finish within one sampling window.
type window struct {
	start       time.Time
	n           int
	sum         time.Duration
	maxInflight int
}

// add records a request that took rtt.
func (w *window) add(rtt time.Duration) {
	w.n++
	w.sum += rtt
}

// reset starts a new window at now with inflight requests running.
func (w *window) reset(now time.Time, inflight int) {
	*w = window{start: now, maxInflight: inflight}
}
