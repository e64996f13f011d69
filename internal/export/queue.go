package export

import (
	"context"
	"sync"
	"time"
)

// batch is a run of queued requests sent as one: their concatenated bytes
// form one ExportTraceServiceRequest.
type batch struct {
	reqs  [][]byte
	spans int
	size  int // bytes
	// body is the HTTP body (maybe gzipped), encoded once for all attempts.
	body []byte
	// recs are the batch's records in the persistent queue.
	recs []*pqRecord
}

// bytes returns the batch as one contiguous request.
func (b *batch) bytes() []byte {
	if len(b.reqs) == 1 {
		return b.reqs[0]
	}
	out := make([]byte, 0, b.size)
	for _, r := range b.reqs {
		out = append(out, r...)
	}
	return out
}

type item struct {
	req   []byte
	spans int
	at    time.Time
}

// queue holds requests until a sender takes them. Its bound counts the spans
// from Export until their batch is finished (sent, failed or dropped), so
// batches being sent or retried count against it: the memory held by the
// exporter is bounded by capacity, and a backend that is down fills the
// queue and pushes back on Export.
type queue struct {
	capacity      int
	maxBatch      int // spans
	maxBatchBytes int
	timeout       time.Duration

	mu           sync.Mutex
	items        []item
	head         int           // items[head:] are waiting
	pending      int           // spans waiting in items
	pendingBytes int           // bytes waiting in items
	held         int           // pending + spans in batches not yet finished
	space        chan struct{} // closed (and replaced) when held shrinks
	closed       bool          // no more puts; senders flush without waiting
	aborted      bool          // senders stop taking
	ready        chan struct{} // a put happened (capacity 1)
	done         chan struct{} // closed by close
	flying       flights       // taken batches not yet finished
}

func newQueue(capacity, maxBatch, maxBatchBytes int, timeout time.Duration) *queue {
	return &queue{
		capacity:      capacity,
		maxBatch:      maxBatch,
		maxBatchBytes: maxBatchBytes,
		timeout:       timeout,
		space:         make(chan struct{}),
		ready:         make(chan struct{}, 1),
		done:          make(chan struct{}),
	}
}

// put appends a request of n spans, waiting while the queue is full. A
// request is accepted into an empty queue whatever its size, so one larger
// than the capacity cannot block forever.
func (q *queue) put(ctx context.Context, req []byte, n int) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if q.held == 0 || q.held+n <= q.capacity {
			q.items = append(q.items, item{req: req, spans: n, at: time.Now()})
			q.pending += n
			q.pendingBytes += len(req)
			q.held += n
			q.mu.Unlock()
			q.signal()
			return nil
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// next waits for a batch (see nextBatch).
func (q *queue) next() (*batch, bool) {
	return nextBatch(&q.mu, q.ready, q.done, q.poll)
}

// poll is nextBatch's look at the waiting requests. q.mu is held.
func (q *queue) poll() batchPoll {
	if q.aborted {
		return batchPoll{stop: true}
	}
	if q.head == len(q.items) {
		return batchPoll{stop: q.closed}
	}
	wait := q.timeout - time.Since(q.items[q.head].at)
	if q.pending >= q.maxBatch || q.pendingBytes >= q.maxBatchBytes || q.closed || wait <= 0 {
		b := q.take()
		return batchPoll{b: b, more: q.head < len(q.items)}
	}
	return batchPoll{wait: wait}
}

// take removes up to maxBatch spans and maxBatchBytes bytes of requests
// (at least one request). q.mu is held.
func (q *queue) take() *batch {
	b := &batch{}
	q.flying.add(b, q.items[q.head].at)
	for q.head < len(q.items) {
		it := q.items[q.head]
		if len(b.reqs) > 0 && (b.spans+it.spans > q.maxBatch || b.size+len(it.req) > q.maxBatchBytes) {
			break
		}
		b.reqs = append(b.reqs, it.req)
		b.spans += it.spans
		b.size += len(it.req)
		q.items[q.head] = item{}
		q.head++
	}
	q.pending -= b.spans
	q.pendingBytes -= b.size
	q.compact()
	return b
}

// compact reuses the front of items once it is mostly consumed.
func (q *queue) compact() {
	if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
		return
	}
	if q.head > 64 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
}

// finish marks a taken batch finished: sent, failed or abandoned alike
// free its room.
func (q *queue) finish(b *batch, _ bool) {
	q.mu.Lock()
	q.flying.done(b)
	q.mu.Unlock()
	q.release(b.spans)
}

// release marks a taken batch of n spans finished.
func (q *queue) release(n int) {
	q.mu.Lock()
	q.held -= n
	close(q.space)
	q.space = make(chan struct{})
	q.mu.Unlock()
}

// close refuses further puts (waiting ones return ErrClosed) and makes
// senders flush what is queued without waiting for batch_timeout.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	close(q.done)
	close(q.space)
	q.space = make(chan struct{})
}

// abort makes senders stop taking batches.
func (q *queue) abort() {
	q.mu.Lock()
	q.aborted = true
	q.mu.Unlock()
}

// drain removes every waiting request and returns their span count.
func (q *queue) drain() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.pending
	clear(q.items)
	q.items = q.items[:0]
	q.head = 0
	q.pending = 0
	q.pendingBytes = 0
	q.held -= n
	return n
}

// oldest implements spanQueue.
func (q *queue) oldest() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var at time.Time
	if q.head < len(q.items) {
		at = q.items[q.head].at
	}
	return q.flying.oldest(at, q.head < len(q.items))
}

// spans returns the spans held: waiting plus in unfinished batches.
func (q *queue) spans() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held
}
