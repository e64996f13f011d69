package export

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// traceRequest returns an encoded ExportTraceServiceRequest with one
// span per trace ID, every span with status code.
func traceRequest(t testing.TB, code ptrace.StatusCode, ids ...uint64) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	for _, id := range ids {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(traceID(id))
		var sid pcommon.SpanID
		binary.BigEndian.PutUint64(sid[:], id)
		sp.SetSpanID(sid)
		sp.SetName("GET /api/checkout")
		sp.SetKind(ptrace.SpanKindServer)
		sp.Status().SetCode(code)
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// value reads a counter or gauge.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func traceID(id uint64) pcommon.TraceID {
	var tid pcommon.TraceID
	binary.BigEndian.PutUint64(tid[8:], id)
	return tid
}

// syncBuffer is a log destination that tests read while the queue writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pqConfig is a queue config for direct tests: batches of one request
// (max_batch_spans 1 keeps each request alone), no batch timeout, fsync on
// every write (no group-commit goroutine).
func pqConfig(maxBytes int64) QueueConfig {
	return QueueConfig{
		MaxSpans: 1000, MaxBatchSpans: 1, MaxBatchBytes: units.Bytes(1 << 20),
		Senders: 1, Persistent: true, MaxBytes: units.Bytes(maxBytes),
	}
}

type testPQ struct {
	*pqueue
	logs   *syncBuffer
	failed prometheus.Counter
}

// openPQ opens a queue in dir and shuts it down (without acknowledging
// anything) at the end of the test.
func openPQ(t *testing.T, dir string, qc QueueConfig) (*testPQ, restored) {
	t.Helper()
	logs := &syncBuffer{}
	failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "failed"})
	q := newPQueue(dir, qc, slog.New(slog.NewTextHandler(logs, nil)), failed)
	q.m = newPQMetrics(KindOTLPGRPC, q)
	r, err := q.open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { q.close(); _, _, _ = q.shutdown() })
	return &testPQ{pqueue: q, logs: logs, failed: failed}, r
}

// reopen shuts q down, as a stop would, and opens the directory again.
func reopen(t *testing.T, q *testPQ, qc QueueConfig) (*testPQ, restored) {
	t.Helper()
	q.close()
	if _, _, err := q.shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	return openPQ(t, q.dir, qc)
}

// mustPut puts req and fails the test when it is not taken at once.
func mustPut(t *testing.T, q *testPQ, req []byte, spans int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a full queue answers ctx.Err() instead of waiting
	if err := q.put(ctx, req, spans); err != nil {
		t.Fatalf("put: %v", err)
	}
}

// take returns the next batch, which must be waiting.
func take(t *testing.T, q *testPQ) *batch {
	t.Helper()
	q.mu.Lock()
	waiting := q.head < len(q.waiting)
	q.mu.Unlock()
	if !waiting {
		t.Fatal("no batch waiting")
	}
	b, ok := q.next()
	if !ok {
		t.Fatal("next: queue stopped")
	}
	return b
}

func TestPQueueRoundTrip(t *testing.T) {
	dir := t.TempDir()
	qc := pqConfig(1 << 20)
	qc.MaxBatchSpans = 100 // all three requests fit one batch
	q, r := openPQ(t, filepath.Join(dir, QueueDir), qc)
	if r != (restored{}) {
		t.Fatalf("fresh queue restored %+v", r)
	}
	reqs := [][]byte{
		traceRequest(t, ptrace.StatusCodeOk, 1, 2),
		traceRequest(t, ptrace.StatusCodeError, 3),
		traceRequest(t, ptrace.StatusCodeUnset, 4, 5, 6),
	}
	for i, req := range reqs {
		mustPut(t, q, req, []int{2, 1, 3}[i])
	}
	if got := q.spans(); got != 6 {
		t.Errorf("spans() = %d, want 6", got)
	}
	// Three records: each a 16-byte header and its request.
	wantBytes := int64(3*recHeaderLen + len(reqs[0]) + len(reqs[1]) + len(reqs[2]))
	if got := q.usedBytes(); got != wantBytes {
		t.Errorf("usedBytes() = %d, want %d", got, wantBytes)
	}
	b := take(t, q)
	want := bytes.Join(reqs, nil)
	if !bytes.Equal(b.bytes(), want) || b.spans != 6 || len(b.recs) != 3 {
		t.Fatalf("batch: %d spans, %d records, bytes equal %v; want 6, 3, true", b.spans, len(b.recs), bytes.Equal(b.bytes(), want))
	}
	// The bytes sent decode to the spans put.
	got, err := decodeTraceIDs(b.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3, 4, 5, 6}, got); diff != "" {
		t.Errorf("trace IDs (-want +got):\n%s", diff)
	}
	q.finish(b, true)
	if q.spans() != 0 || q.liveRecords() != 0 {
		t.Errorf("after ack: spans %d, records %d; want 0, 0", q.spans(), q.liveRecords())
	}
	for _, c := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{{"enqueued", q.m.enqueued, 3}, {"acked", q.m.acked, 3}, {"full", q.m.full, 0}} {
		if got := value(t, c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	// Nothing comes back after a restart, and the finished segment is gone.
	_, r = reopen(t, q, qc)
	if r != (restored{}) {
		t.Errorf("after restart restored %+v, want nothing", r)
	}
	if files := segFiles(t, q.dir); len(files) != 1 {
		t.Errorf("files after restart: %v, want only the new, empty segment", files)
	}
}

// decodeTraceIDs returns the low 8 bytes of the trace ID of every span in
// an encoded request.
func decodeTraceIDs(b []byte) ([]uint64, error) {
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(b); err != nil {
		return nil, err
	}
	var ids []uint64
	rss := req.Traces().ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				id := spans.At(k).TraceID()
				ids = append(ids, binary.BigEndian.Uint64(id[8:]))
			}
		}
	}
	return ids, nil
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// TestPQueueAckOrder acknowledges out of order: only the request never
// acknowledged comes back after a restart.
func TestPQueueAckOrder(t *testing.T) {
	qc := pqConfig(1 << 20)
	q, _ := openPQ(t, t.TempDir(), qc)
	for id := uint64(1); id <= 4; id++ {
		mustPut(t, q, traceRequest(t, ptrace.StatusCodeOk, id), 1)
	}
	var bs []*batch
	for range 4 {
		bs = append(bs, take(t, q))
	}
	q.finish(bs[3], true)
	q.finish(bs[0], true)
	q.finish(bs[2], true)
	q.finish(bs[1], false) // abandoned at shutdown: stays
	q, r := reopen(t, q, qc)
	if want := (restored{batches: 1, spans: 1, bytes: int64(len(traceRequest(t, ptrace.StatusCodeOk, 2)))}); r != want {
		t.Fatalf("restored %+v, want %+v", r, want)
	}
	got, err := decodeTraceIDs(take(t, q).bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{2}, got); diff != "" {
		t.Errorf("requeued trace IDs (-want +got):\n%s", diff)
	}
	if got := value(t, q.m.requeued); got != 1 {
		t.Errorf("requeued = %v, want 1", got)
	}
}

// TestPQueueRestartPending restarts twice with nothing acknowledged: every
// request comes back each time, oldest first, with its error flag.
func TestPQueueRestartPending(t *testing.T) {
	qc := pqConfig(1 << 20)
	q, _ := openPQ(t, t.TempDir(), qc)
	mustPut(t, q, traceRequest(t, ptrace.StatusCodeOk, 1, 2), 2)
	mustPut(t, q, traceRequest(t, ptrace.StatusCodeError, 3), 1)
	q, r := reopen(t, q, qc)
	mustPut(t, q, traceRequest(t, ptrace.StatusCodeOk, 4), 1) // into the new segment
	if r.batches != 2 || r.spans != 3 || r.errorBatches != 1 {
		t.Fatalf("first restart restored %+v, want 2 batches, 3 spans, 1 with errors", r)
	}
	q, r = reopen(t, q, qc)
	if r.batches != 3 || r.spans != 4 || r.errorBatches != 1 {
		t.Fatalf("second restart restored %+v, want 3 batches, 4 spans, 1 with errors", r)
	}
	var ids []uint64
	for range 3 {
		got, err := decodeTraceIDs(take(t, q).bytes())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3, 4}, ids); diff != "" {
		t.Errorf("trace IDs in send order (-want +got):\n%s", diff)
	}
}

// TestPQueueTornTail cuts off what an interrupted write leaves at the end
// of the last segment and keeps every whole record before it.
func TestPQueueTornTail(t *testing.T) {
	req1 := traceRequest(t, ptrace.StatusCodeOk, 1)
	req2 := traceRequest(t, ptrace.StatusCodeError, 2)
	good := int64(2*recHeaderLen + len(req1) + len(req2))
	// whole is a valid third record, to be damaged.
	whole := record(traceRequest(t, ptrace.StatusCodeOk, 3), 1, 0)
	tests := []struct {
		name string
		tail []byte
	}{
		{"half a header", whole[:7]},
		{"header without all of its request", whole[:len(whole)-5]},
		{"last record with a bad checksum", flip(whole, len(whole)-1)},
		{"zeros (length on disk, data not)", make([]byte, 300)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			qc := pqConfig(1 << 20)
			q, _ := openPQ(t, t.TempDir(), qc)
			mustPut(t, q, req1, 1)
			mustPut(t, q, req2, 1)
			seg := q.active().path
			q.close()
			if _, _, err := q.shutdown(); err != nil {
				t.Fatal(err)
			}
			appendFile(t, seg, tc.tail)

			q, r := openPQ(t, q.dir, qc)
			if r.batches != 2 || r.spans != 2 || r.errorBatches != 1 {
				t.Errorf("restored %+v, want the 2 whole records", r)
			}
			if fi, err := os.Stat(seg); err != nil || fi.Size() != good {
				t.Errorf("segment after repair: %v, %v; want %d bytes", fi.Size(), err, good)
			}
			logs := q.logs.String()
			if !strings.Contains(logs, "torn record") || !strings.Contains(logs, "offset="+fmt.Sprint(good)) ||
				!strings.Contains(logs, seg) {
				t.Errorf("log does not name the torn record, its file and offset %d:\n%s", good, logs)
			}
			if got := value(t, q.m.corrupt); got != 0 {
				t.Errorf("corrupt = %v, want 0 for a torn tail", got)
			}
		})
	}
}

// record encodes one record as the queue writes it, independently of
// appendLocked: header fields in order, then CRC-32C over spans, flags and
// the request.
func record(req []byte, spans, flags uint32) []byte {
	var h [recHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(req)))
	binary.LittleEndian.PutUint32(h[8:], spans)
	binary.LittleEndian.PutUint32(h[12:], flags)
	tab := crc32.MakeTable(crc32.Castagnoli)
	binary.LittleEndian.PutUint32(h[4:], crc32.Update(crc32.Checksum(h[8:], tab), tab, req))
	return append(h[:], req...)
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0xff
	return out
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPQueueRecordFormat checks the bytes on disk against the documented
// layout, encoded by the test's own record function.
func TestPQueueRecordFormat(t *testing.T) {
	q, _ := openPQ(t, t.TempDir(), pqConfig(1<<20))
	req1 := traceRequest(t, ptrace.StatusCodeOk, 1, 2)
	req2 := traceRequest(t, ptrace.StatusCodeError, 3)
	mustPut(t, q, req1, 2)
	mustPut(t, q, req2, 1)
	got, err := os.ReadFile(q.active().path)
	if err != nil {
		t.Fatal(err)
	}
	want := append(record(req1, 2, 0), record(req2, 1, 1)...)
	if !bytes.Equal(got, want) {
		t.Errorf("segment bytes differ from the documented format:\n got %x\nwant %x", got, want)
	}
}

// TestPQueueCorruption damages the middle record of three: the first is
// kept, the damage is reported with file and offset, and the rest is set
// aside in a .corrupt file rather than sent or deleted.
func TestPQueueCorruption(t *testing.T) {
	qc := pqConfig(1 << 20)
	q, _ := openPQ(t, t.TempDir(), qc)
	reqs := [][]byte{
		traceRequest(t, ptrace.StatusCodeError, 1),
		traceRequest(t, ptrace.StatusCodeError, 2),
		traceRequest(t, ptrace.StatusCodeError, 3),
	}
	for _, req := range reqs {
		mustPut(t, q, req, 1)
	}
	seg := q.active().path
	q.close()
	if _, _, err := q.shutdown(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	off := recHeaderLen + len(reqs[0]) // the second record
	data[off+recHeaderLen+3] ^= 0x55   // a byte of its request
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}

	q, r := openPQ(t, q.dir, qc)
	if r.batches != 1 || r.spans != 1 {
		t.Fatalf("restored %+v, want only the first record", r)
	}
	first := take(t, q)
	got, err := decodeTraceIDs(first.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{1}, got); diff != "" {
		t.Errorf("restored trace IDs (-want +got):\n%s", diff)
	}
	logs := q.logs.String()
	wantErr := fmt.Sprintf("%s: offset %d: %s: checksum mismatch", seg, off, ErrCorrupt)
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, wantErr) {
		t.Errorf("log lacks the error %q:\n%s", wantErr, logs)
	}
	aside, err := os.ReadFile(fmt.Sprintf("%s.corrupt-%d", seg, off))
	if err != nil {
		t.Fatalf("damaged data not set aside: %v", err)
	}
	if !bytes.Equal(aside, data[off:]) {
		t.Error("the .corrupt file does not hold the segment's bytes from the damage on")
	}
	if got := value(t, q.m.corrupt); got != 1 {
		t.Errorf("corrupt = %v, want 1", got)
	}
	// Once its last request is sent the segment goes, the set-aside data
	// stays, across restarts too.
	q.finish(first, true)
	q, r = reopen(t, q, qc)
	if r != (restored{}) {
		t.Errorf("second restart restored %+v, want nothing", r)
	}
	if _, err := os.Stat(fmt.Sprintf("%s.corrupt-%d", seg, off)); err != nil {
		t.Errorf("set-aside data gone after a restart: %v", err)
	}
	if _, err := os.Stat(seg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("finished segment still there: %v; files %v", err, segFiles(t, q.dir))
	}
}

// TestPQueueFull fills the queue: requests without an error span stop at
// 90% of max_bytes, error ones at max_bytes, and an acknowledgement lets a
// waiting Export through.
func TestPQueueFull(t *testing.T) {
	okReq := traceRequest(t, ptrace.StatusCodeOk, 1)
	errReq := traceRequest(t, ptrace.StatusCodeError, 2)
	if len(okReq) != len(errReq) {
		t.Fatalf("test requests differ in size: %d, %d", len(okReq), len(errReq))
	}
	rec := int64(recHeaderLen + len(okReq))
	// The queue is made inside the bubble: a put waiting on it is then
	// durably blocked, which synctest.Wait can see.
	synctest.Test(t, func(t *testing.T) {
		// 10 records exactly: 9 (90%) for requests without an error span.
		q, _ := openPQ(t, t.TempDir(), pqConfig(10*rec))
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		for i := range 9 {
			if err := q.put(cancelled, okReq, 1); err != nil {
				t.Fatalf("ok request %d: %v", i, err)
			}
		}
		if err := q.put(cancelled, okReq, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("10th ok request: %v, want it to wait (context.Canceled)", err)
		}
		if err := q.put(cancelled, errReq, 1); err != nil {
			t.Fatalf("error request into the reserve: %v", err)
		}
		if err := q.put(cancelled, errReq, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("error request past max_bytes: %v, want it to wait", err)
		}
		if got := value(t, q.m.full); got != 2 {
			t.Errorf("full = %v, want 2", got)
		}
		if got := q.usedBytes(); got != 10*rec {
			t.Errorf("usedBytes = %d, want %d", got, 10*rec)
		}

		// A waiting put goes through once sent batches free room.
		done := make(chan error, 1)
		go func() { done <- q.put(context.Background(), errReq, 1) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("put returned %v while the queue is full", err)
		default:
		}
		// Sending one batch is not enough: the space of finished records
		// comes back a whole segment at a time, and all ten share one.
		q.finish(take(t, q), true)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("put returned %v with the segment still in use", err)
		default:
		}
		for range 9 {
			q.finish(take(t, q), true)
		}
		if err := <-done; err != nil {
			t.Fatalf("put after room was freed: %v", err)
		}
		// The finished segment was deleted when the new request started
		// the next one.
		if got := q.usedBytes(); got != rec {
			t.Errorf("usedBytes = %d after the rotation, want %d", got, rec)
		}
	})
}

// TestPersistentExporterOutlastsRetryBudget: a backend down for longer
// than retry.max_elapsed does not fail the batch; it is retried until the
// backend takes it, and only then leaves the queue.
func TestPersistentExporterOutlastsRetryBudget(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig("127.0.0.1:1")
		cfg.Queue.Persistent = true
		cfg.Queue.MaxBytes = units.Bytes(1 << 20)
		cfg.Queue.FsyncInterval = units.Duration(time.Second)
		cfg.Queue.BatchTimeout = 0
		const failures = 100 // at 4s apart at most, 5 minutes past max_elapsed (1m)
		fc := &fakeClient{respond: func(call int) (partialSuccess, error) {
			if call < failures {
				return partialSuccess{}, retryable(errTest, 0)
			}
			return partialSuccess{}, nil
		}}
		reg := prometheus.NewRegistry()
		e, err := New(cfg, Settings{Registerer: reg, StorageDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		e.client = fc
		e.jitter = 0
		if err := e.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		req := traceRequest(t, ptrace.StatusCodeError, 7, 8)
		if err := e.Export(t.Context(), req, 2); err != nil {
			t.Fatal(err)
		}
		for metricValue(t, reg, "tailgate_exporter_sent_spans_total", KindOTLPGRPC) < 2 {
			time.Sleep(time.Second) // virtual time: the retries' waits pass
		}
		synctest.Wait()
		c := readCounts(t, reg, KindOTLPGRPC)
		if c.Sent != 2 || c.Failed != 0 || c.Retries != failures {
			t.Errorf("counts %+v, want 2 sent, 0 failed, %d retries", c, failures)
		}
		if got := metricValue(t, reg, "tailgate_exporter_queue_batches", KindOTLPGRPC); got != 0 {
			t.Errorf("queue_batches = %v after the send, want 0", got)
		}
		if err := e.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPersistentExporterShutdownKeepsQueued: at Shutdown's deadline with
// the backend down, nothing is counted abandoned and the next start sends
// the request.
func TestPersistentExporterShutdownKeepsQueued(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig("127.0.0.1:1")
		cfg.Queue.Persistent = true
		cfg.Queue.MaxBytes = units.Bytes(1 << 20)
		cfg.Queue.BatchTimeout = 0
		down := &fakeClient{respond: func(int) (partialSuccess, error) { return partialSuccess{}, retryable(errTest, 0) }}
		e, reg := startFakeIn(t, cfg, dir, down)
		if err := e.Export(t.Context(), traceRequest(t, ptrace.StatusCodeError, 9), 1); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the first attempt failed; the sender waits 1s to retry
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v, want nil: the request stays queued", err)
		}
		if c := readCounts(t, reg, KindOTLPGRPC); c.Dropped != 0 || c.Failed != 0 {
			t.Errorf("counts %+v, want nothing abandoned or failed", c)
		}
		// The retry after 1s fails during shutdown and sending stops there,
		// rather than retrying at 2.5s, 4.75s and 8.125s until the deadline.
		if n := len(down.snapshot()); n != 2 {
			t.Errorf("%d attempts with the backend down, want 2", n)
		}

		up := &fakeClient{}
		e2, reg2 := startFakeIn(t, cfg, dir, up)
		if got := metricValue(t, reg2, "tailgate_exporter_queue_requeued_batches_total", KindOTLPGRPC); got != 1 {
			t.Errorf("requeued = %v, want 1", got)
		}
		if err := e2.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		calls := up.snapshot()
		if len(calls) != 1 {
			t.Fatalf("%d sends after restart, want 1", len(calls))
		}
		ids, err := decodeTraceIDs(calls[0].data)
		if err != nil || !cmp.Equal(ids, []uint64{9}) {
			t.Errorf("sent after restart: %v, %v; want trace 9", ids, err)
		}
	})
}

func startFakeIn(t *testing.T, cfg Config, dir string, fc *fakeClient) (*Exporter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(cfg, Settings{Registerer: reg, StorageDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e.client = fc
	e.jitter = 0
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e, reg
}

func TestPersistentNeedsStorageDir(t *testing.T) {
	cfg := testConfig("127.0.0.1:1")
	cfg.Queue.Persistent = true
	cfg.Queue.MaxBytes = units.Bytes(1 << 20)
	if _, err := New(cfg, Settings{}); err == nil {
		t.Error("New without a storage directory succeeded")
	}
}

// TestPersistentOTLPDelivers sends through the persistent queue over both
// protocols to a real sink, two requests per batch: the first batch is
// refused for good (failed, and acknowledged all the same), the second
// arrives. Nothing is left in the queue.
func TestPersistentOTLPDelivers(t *testing.T) {
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		t.Run(proto, func(t *testing.T) {
			sink := otlptest.NewSink(t)
			sink.Script(otlptest.Fault{Code: codes.InvalidArgument, Message: "refused"})
			cfg := sinkConfig(sink, proto)
			cfg.Queue.Persistent = true
			cfg.Queue.MaxBytes = units.Bytes(1 << 20)
			cfg.Queue.MaxBatchSpans = 4                        // two requests of two spans
			cfg.Queue.BatchTimeout = units.Duration(time.Hour) // a batch leaves when full
			reg := prometheus.NewRegistry()
			e, err := New(cfg, Settings{Registerer: reg, StorageDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				if err := e.Export(t.Context(), traceRequest(t, ptrace.StatusCodeError, uint64(10*i+1), uint64(10*i+2)), 2); err != nil {
					t.Fatal(err)
				}
			}
			if err := sink.WaitSpans(t.Context(), 4); err != nil {
				t.Fatal(err)
			}
			if err := e.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for id := range sink.SpansByTrace() {
				got = append(got, binary.BigEndian.Uint64(id[8:]))
			}
			slices.Sort(got)
			if diff := cmp.Diff([]uint64{21, 22, 31, 32}, got); diff != "" {
				t.Errorf("traces received (-want +got):\n%s", diff)
			}
			kind := kindOf(proto)
			if c := readCounts(t, reg, kind); c.Sent != 4 || c.Failed != 4 || c.Dropped != 0 {
				t.Errorf("counts %+v, want 4 sent, 4 failed", c)
			}
			for name, want := range map[string]float64{
				"tailgate_exporter_queue_enqueued_batches_total": 4,
				"tailgate_exporter_queue_acked_batches_total":    4,
				"tailgate_exporter_queue_batches":                0,
			} {
				if got := metricValue(t, reg, name, kind); got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
		})
	}
}

// FuzzPQueueOpen opens a queue whose segment and acknowledgement files
// hold arbitrary bytes: open must not panic or fail, and every request it
// queues again must be a whole record of the original bytes, in order.
func FuzzPQueueOpen(f *testing.F) {
	r1 := record([]byte("first request"), 1, 0)
	r2 := record([]byte("second"), 2, flagError)
	ack := binary.LittleEndian.AppendUint64(nil, 0)
	ack = binary.LittleEndian.AppendUint32(ack, crc32.Checksum(ack, crc32.MakeTable(crc32.Castagnoli)))
	f.Add(append(bytes.Clone(r1), r2...), []byte(nil))
	f.Add(append(bytes.Clone(r1), r2...), ack)
	f.Add(append(flip(r1, 20), r2...), ack[:5])
	f.Add(append(bytes.Clone(r1), r2[:9]...), []byte{1, 2, 3})
	f.Add(make([]byte, 40), []byte(nil))
	f.Fuzz(func(t *testing.T, seg, acks []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600); err != nil {
			t.Fatal(err)
		}
		if len(acks) > 0 {
			if err := os.WriteFile(filepath.Join(dir, "00000000000000000001"+ackExt), acks, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		q := newPQueue(dir, pqConfig(1<<20), slog.New(slog.DiscardHandler), prometheus.NewCounter(prometheus.CounterOpts{Name: "f"}))
		r, err := q.open()
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer func() { q.close(); _, _, _ = q.shutdown() }()
		if r.batches != len(q.waiting) {
			t.Fatalf("restored %d batches, %d waiting", r.batches, len(q.waiting))
		}
		last := int64(-1)
		for _, rec := range q.waiting {
			if rec.off <= last || rec.off+recHeaderLen+int64(rec.size) > int64(len(seg)) {
				t.Fatalf("record at %d (%d bytes) out of order or past the input", rec.off, rec.size)
			}
			last = rec.off
			if want := record(seg[rec.off+recHeaderLen:rec.off+recHeaderLen+int64(rec.size)], uint32(rec.spans), rec.flags); !bytes.Equal(want, seg[rec.off:rec.off+recHeaderLen+int64(rec.size)]) {
				t.Fatalf("record at %d is not a valid record of the input", rec.off)
			}
		}
	})
}

// TestPersistentExporterFullBlocksExport: with the backend down, Export
// fills the persistent queue to 90% of max_bytes with requests without
// error spans, then blocks (which is what stalls the sampler's shard and
// pushes back on ingest) while a request with an error span still gets
// in; nothing is dropped.
func TestPersistentExporterFullBlocksExport(t *testing.T) {
	dir := t.TempDir()
	okReq := traceRequest(t, ptrace.StatusCodeOk, 1)
	errReq := traceRequest(t, ptrace.StatusCodeError, 2)
	rec := recHeaderLen + len(okReq)
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig("127.0.0.1:1")
		cfg.Queue.Persistent = true
		cfg.Queue.MaxBatchBytes = units.Bytes(rec)
		cfg.Queue.MaxBytes = units.Bytes(10 * rec)
		cfg.Queue.BatchTimeout = 0
		down := &fakeClient{respond: func(int) (partialSuccess, error) { return partialSuccess{}, retryable(errTest, 0) }}
		e, reg := startFakeIn(t, cfg, dir, down)
		for i := range 9 {
			if err := e.Export(t.Context(), okReq, 1); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := e.Export(ctx, okReq, 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("10th request: %v, want it to wait until its context ends", err)
		}
		if err := e.Export(t.Context(), errReq, 1); err != nil {
			t.Fatalf("request with an error span: %v", err)
		}
		kind := KindOTLPGRPC
		if got := metricValue(t, reg, "tailgate_exporter_queue_full_total", kind); got != 1 {
			t.Errorf("full_total = %v, want 1", got)
		}
		if got := metricValue(t, reg, "tailgate_exporter_queue_batches", kind); got != 10 {
			t.Errorf("queue_batches = %v, want 10", got)
		}
		if c := readCounts(t, reg, kind); c.Sent != 0 || c.Failed != 0 || c.Dropped != 0 {
			t.Errorf("counts %+v, want nothing sent, failed or dropped", c)
		}
		if err := e.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}
