package export

import (
	"sync"
	"time"
)

// batchPoll is what a queue's poll, run under its lock, finds: a batch it
// took, the time until its oldest request is due, or that its sender is
// to stop.
type batchPoll struct {
	b    *batch        // a batch taken, to send
	more bool          // with b: requests still wait
	wait time.Duration // without b: until the oldest request is due; 0 when none waits
	stop bool          // the queue is closed and empty, or aborted
}

// nextBatch is the wait both queues share. It returns a batch when a full
// one waits (max_batch_spans or max_batch_bytes), the oldest request has
// waited batch_timeout, or the queue is closed (a flush), and false when
// the queue is closed and empty, or aborted. poll runs under mu and takes
// the batch; ready is signalled by each put (capacity 1), done closed by
// close.
func nextBatch(mu *sync.Mutex, ready chan struct{}, done <-chan struct{}, poll func() batchPoll) (*batch, bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		mu.Lock()
		p := poll()
		mu.Unlock()
		switch {
		case p.stop:
			return nil, false
		case p.b != nil:
			if p.more {
				// Another sender may be idle; let it look.
				select {
				case ready <- struct{}{}:
				default:
				}
			}
			return p.b, true
		case p.wait <= 0:
			select {
			case <-ready:
			case <-done:
			}
			continue
		}
		if timer == nil {
			timer = time.NewTimer(p.wait)
		} else {
			timer.Reset(p.wait)
		}
		select {
		case <-ready:
		case <-timer.C:
		case <-done:
		}
	}
}
