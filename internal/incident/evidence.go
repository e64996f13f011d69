package incident

import (
	"context"
	"sync"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// FailedTrace is a kept trace with a failed request: evidence a
// post-mortem points to in the trace backend.
type FailedTrace struct {
	Service string
	Minute  time.Time
	TraceID string // hex
}

// EvidenceStore keeps the failed traces of the fleet's instances.
type EvidenceStore interface {
	// AddFailedTraces records traces; one already recorded is left as is.
	AddFailedTraces(ctx context.Context, ts []FailedTrace) error
	// FailedTraces returns up to limit traces of services in the minutes
	// from from's through to's, oldest first.
	FailedTraces(ctx context.Context, services []string, from, to time.Time, limit int) ([]FailedTrace, error)
	// PruneFailedTraces deletes the traces of minutes before cut.
	PruneFailedTraces(ctx context.Context, cut time.Time) error
}

// evidencePerMinute bounds the traces recorded per service and minute.
const evidencePerMinute = 5

// Evidence collects the kept failed traces of this instance, a few per
// service and minute, for the store. It is safe for concurrent use.
type Evidence struct {
	mu      sync.Mutex
	counts  map[string]int // traces recorded per service in minute last
	pending []FailedTrace
	last    units.Minute
}

// Record notes that the trace id (hex), with a failed request of service,
// was kept at.
func (e *Evidence) Record(service, id string, at time.Time) {
	m := units.MinuteOf(at)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil || m != e.last {
		e.counts, e.last = map[string]int{}, m // only the current minute needs counting
	}
	if e.counts[service] >= evidencePerMinute {
		return
	}
	e.counts[service]++
	e.pending = append(e.pending, FailedTrace{Service: service, Minute: m.Time(), TraceID: id})
}

// Flush writes the recorded traces to st; on failure they are kept for
// the next flush.
func (e *Evidence) Flush(ctx context.Context, st EvidenceStore) error {
	e.mu.Lock()
	ts := e.pending
	e.pending = nil
	e.mu.Unlock()
	if len(ts) == 0 {
		return nil
	}
	if err := st.AddFailedTraces(ctx, ts); err != nil {
		e.mu.Lock()
		e.pending = append(ts, e.pending...)
		e.mu.Unlock()
		return err
	}
	return nil
}
