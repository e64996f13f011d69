package gate

import (
	"context"
	"sync"
	"sync/atomic"
)

// DecisionBatcher is implemented by stores that record many decisions in
// one transaction; the audit writer uses it when present.
type DecisionBatcher interface {
	AddDecisions(ctx context.Context, ds []Decision) error
}

// Sizes of the audit queue and of one group commit.
const (
	auditQueue = 4096
	auditBatch = 256
)

// auditLog queues decisions for one writer goroutine that commits them in
// batches: one SQLite transaction per burst instead of one per check keeps
// a check's tail latency off the disk. A crash loses at most the records
// still queued (milliseconds of checks).
type auditLog struct {
	// mu guards running and the queue's closing; a send holds it shared,
	// so it never races the close.
	mu      sync.RWMutex
	running bool
	queue   chan Decision
	done    chan struct{}

	enqueued atomic.Uint64
	pmu      sync.Mutex
	written  uint64        // records the writer has handled
	progress chan struct{} // closed and replaced after each batch
}

func (a *auditLog) start(ctx context.Context, g *Gate) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running || a.done != nil {
		return
	}
	a.running = true
	a.queue = make(chan Decision, auditQueue)
	a.done = make(chan struct{})
	a.pmu.Lock()
	a.progress = make(chan struct{})
	a.pmu.Unlock()
	go a.write(ctx, g)
}

// enqueue queues d and reports whether it did; false means the caller
// must write d itself (no writer, or the queue is full).
func (a *auditLog) enqueue(d Decision) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.running {
		return false
	}
	select {
	case a.queue <- d:
		a.enqueued.Add(1)
		return true
	default:
		return false
	}
}

func (a *auditLog) write(ctx context.Context, g *Gate) {
	defer close(a.done)
	batch := make([]Decision, 0, auditBatch)
	for d := range a.queue {
		batch = append(batch[:0], d)
	fill:
		for len(batch) < auditBatch {
			select {
			case d, ok := <-a.queue:
				if !ok {
					break fill
				}
				batch = append(batch, d)
			default:
				break fill
			}
		}
		var err error
		if b, ok := g.store.(DecisionBatcher); ok {
			err = b.AddDecisions(ctx, batch)
		} else {
			for _, d := range batch {
				if e := g.store.AddDecision(ctx, d); e != nil && err == nil {
					err = e
				}
			}
		}
		if err != nil {
			g.metrics.auditFailures.Add(float64(len(batch)))
			g.log.Error("gate decisions not recorded in the audit log", "count", len(batch), "err", err)
		}
		a.pmu.Lock()
		a.written += uint64(len(batch))
		close(a.progress)
		a.progress = make(chan struct{})
		a.pmu.Unlock()
	}
}

// sync waits until every record queued before the call is written.
func (a *auditLog) sync(ctx context.Context) error {
	target := a.enqueued.Load()
	for {
		a.pmu.Lock()
		if a.written >= target || a.progress == nil {
			a.pmu.Unlock()
			return nil
		}
		ch := a.progress
		a.pmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stop closes the queue and waits for the writer to drain it.
func (a *auditLog) stop(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.running = false
		close(a.queue)
	}
	done := a.done
	a.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
