package export

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// The persistent queue keeps each request handed to Export as a record in
// segment files under storage.path/export-queue/, and writes down which
// records the backend took in an acknowledgement file beside each segment:
//
//	<id>.seg  records, appended in order; a new segment is started when
//	          one reaches segmentBytes, and on every start
//	<id>.ack  the offsets of the records of <id>.seg that are finished
//	          (sent, or refused for good); removed with the segment once
//	          every record in it is finished
//
// A record is a 16-byte header then the request's bytes:
//
//	0:4    length of the request (little endian)
//	4:8    CRC-32C (Castagnoli) of bytes 8:16 and of the request
//	8:12   spans in the request
//	12:16  flags (flagError: the request holds a span with status ERROR)
//
// An acknowledgement is 12 bytes: the record's offset in its segment
// (uint64, little endian) and the CRC-32C of those 8 bytes.
//
// On start every record without an acknowledgement is queued again: the
// queue is at least once, never at most once (a batch sent just before a
// crash, whose acknowledgement was not yet written, is sent twice).
const (
	recHeaderLen = 16
	ackLen       = 12
	flagError    = 1

	segExt     = ".seg"
	ackExt     = ".ack"
	corruptExt = ".corrupt"

	// maxRecordLen bounds one request; Export refuses larger ones, and a
	// header claiming more is damage.
	maxRecordLen = 1 << 30
	// maxSegmentBytes caps a segment: a finished segment is deleted whole,
	// so smaller segments give disk space back sooner.
	maxSegmentBytes = 64 << 20
	minSegmentBytes = 64 << 10
)

// ErrCorrupt marks a record or acknowledgement whose checksum or length is
// wrong with valid data after it, which a torn write cannot explain.
var ErrCorrupt = errors.New("corrupt export queue record")

// crcTable is CRC-32C; crc32.MakeTable returns the same shared table on
// every call, so it is read-only.
func crcTable() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// pqRecord is one queued request in a segment.
type pqRecord struct {
	seg   *segment
	off   int64 // of the header
	size  int   // request bytes
	spans int
	flags uint32
	at    time.Time // when it was queued; zero for a request from before a restart
}

// segment is one data file and its acknowledgement file.
type segment struct {
	id       uint64
	path     string
	f        *os.File // read by senders; the active segment is appended to
	ack      *os.File // opened on the first acknowledgement
	size     int64    // bytes in the data file
	ackSize  int64
	live     int // records not yet acknowledged
	dirty    bool
	ackDirty bool
}

func (s *segment) ackPath() string { return s.path[:len(s.path)-len(segExt)] + ackExt }

// pqMetrics are the persistent queue's own metrics, registered only when
// it is on.
type pqMetrics struct {
	enqueued prometheus.Counter
	acked    prometheus.Counter
	requeued prometheus.Counter
	full     prometheus.Counter
	corrupt  prometheus.Counter
	capacity prometheus.Gauge
	bytes    prometheus.GaugeFunc
	batches  prometheus.GaugeFunc
}

func newPQMetrics(kind string, q *pqueue) *pqMetrics {
	labels := prometheus.Labels{"exporter": kind}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	return &pqMetrics{
		enqueued: counter("tailgate_exporter_queue_enqueued_batches_total",
			"Requests written to the persistent export queue."),
		acked: counter("tailgate_exporter_queue_acked_batches_total",
			"Requests removed from the persistent export queue because the backend accepted them (or refused them for good)."),
		requeued: counter("tailgate_exporter_queue_requeued_batches_total",
			"Requests found unacknowledged in the persistent export queue at start and queued to be sent again."),
		full: counter("tailgate_exporter_queue_full_total",
			"Export calls that found the persistent export queue full and had to wait (pushing back on the sampler)."),
		corrupt: counter("tailgate_exporter_queue_corrupt_records_total",
			"Damaged places found in the persistent export queue's files at start; the data from there on was moved to a .corrupt file."),
		capacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tailgate_exporter_queue_capacity_bytes", ConstLabels: labels,
			Help: "The bytes the persistent export queue's files may hold (queue.max_bytes).",
		}),
		bytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tailgate_exporter_queue_bytes", ConstLabels: labels,
			Help: "Bytes of the persistent export queue's files.",
		}, func() float64 { return float64(q.usedBytes()) }),
		batches: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tailgate_exporter_queue_batches", ConstLabels: labels,
			Help: "Requests in the persistent export queue not yet acknowledged: waiting, being sent or retried.",
		}, func() float64 { return float64(q.liveRecords()) }),
	}
}

func (m *pqMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.enqueued, m.acked, m.requeued, m.full, m.corrupt, m.capacity, m.bytes, m.batches}
}

// pqueue is the file-backed export queue. It keeps in memory only where
// each unacknowledged request is; a sender reads a batch's bytes back from
// the files when it takes the batch.
type pqueue struct {
	dir           string
	log           *slog.Logger
	m             *pqMetrics
	failed        prometheus.Counter // the exporter's failed spans, for unreadable records
	maxBytes      int64
	reserveFrom   int64 // past this, only requests with an error span are taken
	segmentBytes  int64
	fsyncInterval time.Duration
	maxBatch      int
	maxBatchBytes int
	timeout       time.Duration
	crc           *crc32.Table

	mu           sync.Mutex
	opened       bool
	segs         []*segment // oldest first; the last one is appended to
	waiting      []*pqRecord
	head         int   // waiting[head:] wait for a sender
	pending      int   // spans waiting
	pendingBytes int   // request bytes waiting
	held         int   // spans not yet acknowledged
	live         int   // records not yet acknowledged
	used         int64 // bytes of all segment and acknowledgement files
	dirDirty     bool
	closed       bool
	aborted      bool
	space        chan struct{} // closed (and replaced) when used shrinks
	ready        chan struct{}
	done         chan struct{}
	scratch      []byte
	flying       flights // taken batches not yet finished
	throttle     logThrottle

	syncStop chan struct{}
	syncDone chan struct{}
}

// restored describes what open found from before.
type restored struct {
	batches, spans, errorBatches int
	bytes                        int64
}

func newPQueue(dir string, qc QueueConfig, log *slog.Logger, failed prometheus.Counter) *pqueue {
	maxBytes := int64(qc.MaxBytes)
	return &pqueue{
		dir:           dir,
		log:           log,
		failed:        failed,
		maxBytes:      maxBytes,
		reserveFrom:   maxBytes - maxBytes/10,
		segmentBytes:  min(max(maxBytes/8, minSegmentBytes), maxSegmentBytes),
		fsyncInterval: qc.FsyncInterval.Std(),
		maxBatch:      qc.MaxBatchSpans,
		maxBatchBytes: int(min(int64(qc.MaxBatchBytes), maxRecordLen)),
		timeout:       qc.BatchTimeout.Std(),
		crc:           crcTable(),
		space:         make(chan struct{}),
		ready:         make(chan struct{}, 1),
		done:          make(chan struct{}),
		syncStop:      make(chan struct{}),
		syncDone:      make(chan struct{}),
	}
}

// addSegmentLocked creates segment id and makes it the one appended to.
func (q *pqueue) addSegmentLocked(id uint64) error {
	s := &segment{id: id, path: filepath.Join(q.dir, segName(id))}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create export queue segment: %w", err)
	}
	s.f = f
	q.segs = append(q.segs, s)
	q.dirDirty = true
	return nil
}

func (q *pqueue) active() *segment { return q.segs[len(q.segs)-1] }

// removeSegmentLocked deletes a finished segment that is not the active
// one. The data file goes first: an acknowledgement file without its
// segment is removed at the next start, while the reverse order could
// resurrect finished requests after a crash.
func (q *pqueue) removeSegmentLocked(s *segment) {
	for i, x := range q.segs {
		if x == s {
			q.segs = append(q.segs[:i], q.segs[i+1:]...)
			break
		}
	}
	q.used -= s.size + s.ackSize
	q.removeSegmentFiles(s)
	q.dirDirty = true
}

func (q *pqueue) removeSegmentFiles(s *segment) {
	if s.f != nil {
		s.f.Close()
	}
	if s.ack != nil {
		s.ack.Close()
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.log.Error("export queue: remove a finished segment", "file", s.path, "err", err)
		return
	}
	if err := os.Remove(s.ackPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.log.Error("export queue: remove a finished segment's acknowledgements", "file", s.ackPath(), "err", err)
	}
}

func (q *pqueue) closeFilesLocked() {
	for _, s := range q.segs {
		if s.f != nil {
			s.f.Close()
		}
		if s.ack != nil {
			s.ack.Close()
		}
	}
	q.segs = nil
}

// put writes a request of n spans to the queue, waiting while its files
// are full: at max_bytes, or, for a request without an error span, at 90%
// of it. A request is taken into a queue with nothing unacknowledged
// whatever its size, so one larger than the bound cannot wait forever.
func (q *pqueue) put(ctx context.Context, req []byte, n int) error {
	if len(req) > maxRecordLen {
		return fmt.Errorf("export: request of %d bytes is larger than the persistent queue's limit of %d", len(req), maxRecordLen)
	}
	var flags uint32
	if otlp.HasErrorSpan(req) {
		flags = flagError
	}
	limit := q.reserveFrom
	if flags&flagError != 0 {
		limit = q.maxBytes
	}
	size := int64(recHeaderLen + len(req))
	waited := false
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if !q.opened {
			q.mu.Unlock()
			return errors.New("export: the persistent queue is not open (the exporter was not started)")
		}
		if q.live == 0 || q.used+size <= limit {
			err := q.appendLocked(req, n, flags)
			q.mu.Unlock()
			if err == nil {
				q.signal()
			}
			return err
		}
		if !waited {
			waited = true
			if q.m != nil {
				q.m.full.Inc()
			}
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

// appendLocked writes one record with one write(2): once it returns, a
// crash of the process cannot lose the request (the kernel has it); a power
// loss can, until the next fsync.
func (q *pqueue) appendLocked(req []byte, n int, flags uint32) error {
	size := int64(recHeaderLen + len(req))
	s := q.active()
	if s.size > 0 && (s.size+size > q.segmentBytes || (s.live == 0 && q.used+size > q.reserveFrom)) {
		// Start a new segment when this one is full, or when everything in
		// it is finished and its space is needed (then it is deleted at
		// once). A segment is never truncated for reuse: offsets, which
		// acknowledgements name, are never used twice.
		if err := q.addSegmentLocked(s.id + 1); err != nil {
			return q.writeFailed(err)
		}
		if s.live == 0 {
			q.removeSegmentLocked(s)
		}
		s = q.active()
	}
	buf := q.scratch[:0]
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(req)))
	buf = append(buf, 0, 0, 0, 0) // CRC, below
	buf = binary.LittleEndian.AppendUint32(buf, uint32(n))
	buf = binary.LittleEndian.AppendUint32(buf, flags)
	buf = append(buf, req...)
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(buf[8:], q.crc))
	if cap(buf) <= 4<<20 {
		q.scratch = buf[:0]
	} else {
		q.scratch = nil
	}
	off := s.size
	if _, err := s.f.WriteAt(buf, off); err != nil {
		// Take back a partial write so the file stays a run of whole
		// records; if even that fails, the next start cuts the torn tail.
		_ = s.f.Truncate(off)
		return q.writeFailed(fmt.Errorf("write %s: %w", s.path, err))
	}
	if q.fsyncInterval == 0 {
		if err := s.f.Sync(); err != nil {
			return q.writeFailed(fmt.Errorf("fsync %s: %w", s.path, err))
		}
	} else {
		s.dirty = true
	}
	s.size += size
	s.live++
	q.used += size
	q.live++
	q.held += n
	q.pending += n
	q.pendingBytes += len(req)
	q.waiting = append(q.waiting, &pqRecord{seg: s, off: off, size: len(req), spans: n, flags: flags, at: time.Now()})
	if q.m != nil {
		q.m.enqueued.Inc()
	}
	return nil
}

func (q *pqueue) writeFailed(err error) error {
	return fmt.Errorf("export queue: %w", err)
}

func (q *pqueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// next waits for a batch as the memory queue does (see nextBatch) and
// reads its requests back from the files. It returns false when the queue
// is closed and nothing waits, or aborted.
func (q *pqueue) next() (*batch, bool) {
	for {
		b, ok := nextBatch(&q.mu, q.ready, q.done, q.poll)
		if !ok || q.load(b) {
			return b, ok
		}
	}
}

// poll is nextBatch's look at the waiting requests. q.mu is held.
func (q *pqueue) poll() batchPoll {
	if q.aborted {
		return batchPoll{stop: true}
	}
	if q.head == len(q.waiting) {
		return batchPoll{stop: q.closed}
	}
	// Requests from before a restart (zero at) are due at once.
	wait := q.timeout - time.Since(q.waiting[q.head].at)
	if q.pending >= q.maxBatch || q.pendingBytes >= q.maxBatchBytes || q.closed || wait <= 0 {
		b := q.takeLocked()
		return batchPoll{b: b, more: q.head < len(q.waiting)}
	}
	return batchPoll{wait: wait}
}

// takeLocked removes up to max_batch_spans spans and max_batch_bytes bytes
// of waiting requests (at least one). q.mu is held.
func (q *pqueue) takeLocked() *batch {
	b := &batch{}
	q.flying.add(b, q.waiting[q.head].at)
	for q.head < len(q.waiting) {
		r := q.waiting[q.head]
		if len(b.recs) > 0 && (b.spans+r.spans > q.maxBatch || b.size+r.size > q.maxBatchBytes) {
			break
		}
		b.recs = append(b.recs, r)
		b.spans += r.spans
		b.size += r.size
		q.waiting[q.head] = nil
		q.head++
	}
	q.pending -= b.spans
	q.pendingBytes -= b.size
	if q.head == len(q.waiting) {
		q.waiting = q.waiting[:0]
		q.head = 0
	} else if q.head > 64 && q.head*2 > len(q.waiting) {
		n := copy(q.waiting, q.waiting[q.head:])
		clear(q.waiting[n:])
		q.waiting = q.waiting[:n]
		q.head = 0
	}
	return b
}

// load reads a taken batch's requests into one buffer. A record that
// cannot be read is finished as failed (logged, counted) and the rest of
// the batch is still sent; it returns false when nothing is left.
func (q *pqueue) load(b *batch) bool {
	buf := make([]byte, b.size)
	o := 0
	var bad []*pqRecord
	keep := b.recs[:0]
	for _, r := range b.recs {
		// The segment stays open while r is unacknowledged.
		if _, err := r.seg.f.ReadAt(buf[o:o+r.size], r.off+recHeaderLen); err != nil {
			q.log.Error("export queue: cannot read a queued request; its spans count as failed",
				"file", r.seg.path, "offset", r.off, "spans", r.spans, "err", err)
			bad = append(bad, r)
			continue
		}
		keep = append(keep, r)
		o += r.size
	}
	if len(bad) > 0 {
		spans := 0
		for _, r := range bad {
			spans += r.spans
		}
		q.failed.Add(float64(spans))
		q.finish(&batch{recs: bad, spans: spans}, true)
		b.spans -= spans
		b.size = o
	}
	b.recs = keep
	b.reqs = [][]byte{buf[:o]}
	return len(keep) > 0
}

// finish ends a batch taken by next: acked (the backend accepted it or
// refused it for good) writes its acknowledgements and frees its space;
// otherwise (abandoned at shutdown) it stays in the files for the next
// start.
func (q *pqueue) finish(b *batch, acked bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.flying.done(b)
	if !acked {
		return
	}
	var entries []byte
	flush := func(s *segment) {
		if len(entries) == 0 {
			return
		}
		if err := q.writeAcksLocked(s, entries); err != nil && q.throttle.allow("ack", time.Now()) {
			q.log.Error("export queue: cannot write acknowledgements; those requests are sent again after a restart", "err", err)
		}
		entries = entries[:0]
	}
	for i, r := range b.recs {
		if i > 0 && b.recs[i-1].seg != r.seg {
			flush(b.recs[i-1].seg)
		}
		entries = binary.LittleEndian.AppendUint64(entries, uint64(r.off))
		entries = binary.LittleEndian.AppendUint32(entries, crc32.Checksum(entries[len(entries)-8:], q.crc))
	}
	if len(b.recs) > 0 {
		flush(b.recs[len(b.recs)-1].seg)
	}
	for _, r := range b.recs {
		s := r.seg
		s.live--
		q.live--
		q.held -= r.spans
		if s.live == 0 && s != q.active() {
			q.removeSegmentLocked(s)
		}
	}
	if q.m != nil {
		q.m.acked.Add(float64(len(b.recs)))
	}
	close(q.space)
	q.space = make(chan struct{})
}

func (q *pqueue) writeAcksLocked(s *segment, entries []byte) error {
	if s.ack == nil {
		f, err := os.OpenFile(s.ackPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		s.ack = f
		q.dirDirty = true
	}
	if _, err := s.ack.Write(entries); err != nil {
		return err
	}
	s.ackSize += int64(len(entries))
	q.used += int64(len(entries))
	if q.fsyncInterval == 0 {
		return s.ack.Sync()
	}
	s.ackDirty = true
	return nil
}

// syncLoop is the group commit: every fsync_interval it fsyncs the files
// written since the last round.
func (q *pqueue) syncLoop() {
	defer close(q.syncDone)
	t := time.NewTicker(q.fsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := q.sync(); err != nil && q.throttle.allow("fsync", time.Now()) {
				q.log.Error("export queue: fsync failed; a power loss may lose queued requests", "err", err)
			}
		case <-q.syncStop:
			return
		}
	}
}

// sync fsyncs what was written since the last call. A segment removed in
// the meantime has its file closed; that error means nothing is left to
// sync.
func (q *pqueue) sync() error {
	q.mu.Lock()
	var files []*os.File
	for _, s := range q.segs {
		if s.dirty {
			files = append(files, s.f)
			s.dirty = false
		}
		if s.ackDirty {
			files = append(files, s.ack)
			s.ackDirty = false
		}
	}
	dir := q.dirDirty
	q.dirDirty = false
	q.mu.Unlock()
	var errs []error
	for _, f := range files {
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if dir {
		errs = append(errs, syncDir(q.dir))
	}
	return errors.Join(errs...)
}

// close refuses further puts and makes senders flush without waiting.
func (q *pqueue) close() {
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
func (q *pqueue) abort() {
	q.mu.Lock()
	q.aborted = true
	q.mu.Unlock()
}

// drain loses nothing: what waits stays in the files.
func (q *pqueue) drain() int { return 0 }

// oldest implements spanQueue: a request restored from before a restart
// has the zero time.
func (q *pqueue) oldest() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var at time.Time
	if q.head < len(q.waiting) {
		at = q.waiting[q.head].at
	}
	return q.flying.oldest(at, q.head < len(q.waiting))
}

// spans returns the spans not yet acknowledged.
func (q *pqueue) spans() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held
}

func (q *pqueue) usedBytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.used
}

func (q *pqueue) liveRecords() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.live
}

// shutdown stops the group commit, fsyncs and closes the files, after the
// senders have stopped. It returns the requests and spans left for the
// next start.
func (q *pqueue) shutdown() (batches, spans int, err error) {
	q.mu.Lock()
	opened := q.opened
	q.opened = false
	q.mu.Unlock()
	if !opened {
		return 0, 0, nil
	}
	close(q.syncStop)
	<-q.syncDone
	q.mu.Lock()
	for _, s := range q.segs {
		s.dirty, s.ackDirty = s.size > 0, s.ack != nil
	}
	q.mu.Unlock()
	err = q.sync()
	q.mu.Lock()
	defer q.mu.Unlock()
	// An empty active segment is not worth keeping.
	if a := q.active(); a.live == 0 {
		q.removeSegmentLocked(a)
	}
	q.closeFilesLocked()
	return q.live, q.held, err
}
