package demo

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// spanEmitter sends a planned request as spans; *Emitter implements it.
type spanEmitter interface {
	Emit(ctx context.Context, r *Request, end time.Time) trace.TraceID
}

// Ledger records every trace the demo sent, by phase and class, so that
// what the sampler kept can be checked against what was sent. It is safe
// for concurrent use.
type Ledger struct {
	mu     sync.Mutex
	traces map[trace.TraceID]Class
	counts [Done][numClasses]int
	spans  int
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{traces: map[trace.TraceID]Class{}} }

// Add records a sent trace.
func (l *Ledger) Add(id trace.TraceID, p Phase, r *Request) {
	n := 0
	r.Root.Walk(func(*Span) { n++ })
	l.mu.Lock()
	defer l.mu.Unlock()
	l.traces[id] = r.Class
	if p < Done {
		l.counts[p][r.Class]++
	}
	l.spans += n
}

// Class returns the class of a sent trace.
func (l *Ledger) Class(id trace.TraceID) (Class, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.traces[id]
	return c, ok
}

// Sent returns the traces sent per class, over all phases, and the spans.
func (l *Ledger) Sent() (byClass [numClasses]int, spans int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p := range l.counts {
		for c, n := range l.counts[p] {
			byClass[c] += n
		}
	}
	return byClass, l.spans
}

// PhaseCounts returns the traces sent in phase p per class.
func (l *Ledger) PhaseCounts(p Phase) [numClasses]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p >= Done {
		return [numClasses]int{}
	}
	return l.counts[p]
}

// IDs calls fn for every sent trace.
func (l *Ledger) IDs(fn func(trace.TraceID, Class)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, c := range l.traces {
		fn(id, c)
	}
}

// Traffic drives the synthetic system: RPS frontend requests per second,
// each planned by Model for the phase Schedule plays at the time.
type Traffic struct {
	Model    *Model
	Schedule Schedule
	RPS      float64
	Rand     *rand.Rand
	Emitter  spanEmitter
	Ledger   *Ledger
	// Canary, when set, returns the share of charges the payments canary
	// serves now (0 when none is live).
	Canary func() float64

	sent int // requests sent (or skipped after a stall) so far
}

// trafficTick is how often due requests are sent.
const trafficTick = 20 * time.Millisecond

// Run sends requests from start until the schedule is over or ctx is done,
// at an even pace on the wall clock (see Send).
func (t *Traffic) Run(ctx context.Context, start time.Time) {
	tick := time.NewTicker(trafficTick)
	defer tick.Stop()
	for t.Send(ctx, start, time.Now()) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Send sends the requests due by now, request i being due i/RPS seconds
// after start and planned for the phase the schedule plays then. After a
// stall, at most one second's worth is caught up rather than a burst of
// everything missed. Once now reaches the end of the schedule it sends the
// last requests due, RPS times the schedule's length in all, and reports
// false; it also reports false when ctx is done.
func (t *Traffic) Send(ctx context.Context, start, now time.Time) bool {
	total := t.Schedule.Total()
	el := now.Sub(start)
	due := int(min(el, total).Seconds() * t.RPS)
	burst := int(t.RPS) + 1
	t.sent = max(t.sent, due-burst)
	for ; t.sent < due; t.sent++ {
		if ctx.Err() != nil {
			return false
		}
		phase, _ := t.Schedule.At(time.Duration(float64(t.sent) * float64(time.Second) / t.RPS))
		share := 0.0
		if t.Canary != nil {
			share = t.Canary()
		}
		r := t.Model.RequestCanary(phase, t.Rand, share)
		t.Ledger.Add(t.Emitter.Emit(ctx, r, now), phase, r)
	}
	return el < total && ctx.Err() == nil
}
