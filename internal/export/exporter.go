package export

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/retry"
)

// ErrClosed is returned by Export after Shutdown has begun.
var ErrClosed = errors.New("exporter is shut down")

// Exporter kinds, the values of the exporter label of the metrics.
const (
	KindOTLPGRPC = "otlp_grpc"
	KindOTLPHTTP = "otlp_http"
	KindFile     = "file"
	KindNone     = "none"
)

const userAgent = "tailgate"

// Settings are the exporter's dependencies.
type Settings struct {
	// Logger receives the exporter's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the exporter's metrics; nil registers none.
	Registerer prometheus.Registerer
	// StorageDir is the local state directory (storage.path); the
	// persistent queue lives in its QueueDir subdirectory. Required when
	// queue.persistent is true.
	StorageDir string
}

// QueueDir is the persistent queue's directory inside Settings.StorageDir.
const QueueDir = "export-queue"

// spanQueue is where Export puts requests and senders take batches from:
// in memory (queue) or in files (pqueue).
type spanQueue interface {
	put(ctx context.Context, req []byte, n int) error
	// next waits for a batch; false means stop.
	next() (*batch, bool)
	// finish ends a batch taken by next: acked when it was sent or
	// refused for good, not when it was abandoned at shutdown.
	finish(b *batch, acked bool)
	close()
	abort()
	// drain empties the queue and returns the spans that lost.
	drain() int
	spans() int
	// oldest is Exporter.Oldest.
	oldest() (time.Time, bool)
}

// client sends one batch once: one attempt, classified by a *sendError.
type client interface {
	start(ctx context.Context) error
	send(ctx context.Context, b *batch) (partialSuccess, error)
	shutdown(ctx context.Context) error
}

// Exporter queues kept traces and sends them in batches. Create it with
// New, then Start; Export may be called from any goroutine.
type Exporter struct {
	kind    string
	cfg     Config
	log     *slog.Logger
	m       *metrics
	q       spanQueue
	pq      *pqueue // the persistent queue, or nil; also q
	senders int
	timeout time.Duration // of one attempt

	// client is created by Start (tests may set it before).
	client client

	// sendCtx cancels in-flight attempts and retry waits when Shutdown's
	// deadline passes.
	sendCtx    context.Context
	cancelSend context.CancelFunc
	wg         sync.WaitGroup

	mu       sync.Mutex // guards started and stopping
	started  bool
	stopping bool
	closed   atomic.Bool // Export refuses work (the none exporter has no queue)

	shutdownOnce sync.Once
	shutdownErr  error
	dropped      atomic.Int64 // spans dropped by Shutdown, for its error

	// wait and jitter (the backoff's randomization factor) are replaced
	// in tests.
	wait   func(ctx context.Context, d time.Duration) error
	jitter float64

	throttle logThrottle
	messages onceSet
}

// New creates an exporter from a valid config. It does no I/O: Start
// connects, opens the file and starts the senders.
func New(cfg Config, set Settings) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("export config: %w", err)
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Queue.Persistent && set.StorageDir == "" {
		return nil, errors.New("export config: queue.persistent needs the storage directory (storage.path)")
	}
	e := &Exporter{
		cfg:     cfg,
		senders: cfg.Queue.Senders,
		wait:    sleep,
		jitter:  retry.Jitter,
	}
	switch {
	case cfg.OTLP != nil && cfg.OTLP.protocol() == ProtocolHTTP:
		e.kind = KindOTLPHTTP
		e.timeout = cfg.OTLP.timeout()
	case cfg.OTLP != nil:
		e.kind = KindOTLPGRPC
		e.timeout = cfg.OTLP.timeout()
	case cfg.File != nil:
		e.kind = KindFile
		e.senders = 1 // lines are appended in order, by one writer
	default:
		e.kind = KindNone
		e.senders = 0
	}
	e.log = log.With("exporter", e.kind)
	e.m = newMetrics(e.kind, func() float64 { return float64(e.q.spans()) })
	e.m.capacity.Set(float64(cfg.Queue.MaxSpans))
	var extra []prometheus.Collector
	if cfg.Queue.Persistent {
		e.pq = newPQueue(filepath.Join(set.StorageDir, QueueDir), cfg.Queue, e.log, e.m.failed)
		e.pq.m = newPQMetrics(e.kind, e.pq)
		e.pq.m.capacity.Set(float64(cfg.Queue.MaxBytes))
		e.q = e.pq
		extra = e.pq.m.collectors()
	} else {
		e.q = newQueue(cfg.Queue.MaxSpans, cfg.Queue.MaxBatchSpans, int(min(int64(cfg.Queue.MaxBatchBytes), math.MaxInt)),
			cfg.Queue.BatchTimeout.Std())
	}
	if err := e.m.register(set.Registerer, extra...); err != nil {
		return nil, err
	}
	e.sendCtx, e.cancelSend = context.WithCancel(context.Background())
	return e, nil
}

// Kind returns the exporter kind: otlp_grpc, otlp_http, file or none.
func (e *Exporter) Kind() string { return e.kind }

// Start connects to the destination (gRPC connects lazily and reconnects
// by itself), or opens the file, and starts the senders. It returns quickly;
// ctx bounds only the start itself.
func (e *Exporter) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return ErrClosed
	}
	if e.started {
		return errors.New("exporter already started")
	}
	if e.kind == KindNone {
		e.log.Warn("no exporter configured (export.otlp or export.file): kept traces are discarded")
		e.started = true
		return nil
	}
	if e.client == nil {
		c, err := e.newClient()
		if err != nil {
			return err
		}
		e.client = c
	}
	if err := e.client.start(ctx); err != nil {
		return err
	}
	if e.pq != nil {
		r, err := e.pq.open()
		if err != nil {
			return errors.Join(err, e.client.shutdown(ctx))
		}
		if r.batches > 0 {
			e.log.Warn("export queue: requests from before the last stop are pending; sending them again (a request sent just before a crash may arrive twice)",
				"batches", r.batches, "spans", r.spans, "error_batches", r.errorBatches, "bytes", r.bytes, "dir", e.pq.dir)
		} else {
			e.log.Info("export queue: nothing pending from before", "dir", e.pq.dir)
		}
	}
	e.started = true
	for range e.senders {
		e.wg.Add(1)
		go e.runSender()
	}
	switch e.kind {
	case KindFile:
		e.log.Info("exporting kept traces", "path", e.cfg.File.Path)
	default:
		e.log.Info("exporting kept traces", "endpoint", e.cfg.OTLP.Endpoint, "persistent_queue", e.pq != nil)
	}
	return nil
}

func (e *Exporter) newClient() (client, error) {
	if e.kind == KindFile {
		return &fileClient{path: e.cfg.File.Path}, nil
	}
	o := e.cfg.OTLP
	ep, err := parseEndpoint(o.Endpoint, o.protocol())
	if err != nil {
		return nil, fmt.Errorf("export endpoint: %w", err)
	}
	var tlsConf *tls.Config
	if !o.plaintext(ep) {
		if tlsConf, err = o.TLS.load(ep.host); err != nil {
			return nil, err
		}
	}
	if e.kind == KindOTLPHTTP {
		return newHTTPClient(o, ep, tlsConf, e.senders), nil
	}
	return newGRPCClient(o, ep, tlsConf), nil
}

// load builds the client TLS configuration from the files.
func (t TLSConfig) load(serverName string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read export CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("export CA file %s: no PEM certificates", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load export client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// Export enqueues req, an encoded ExportTraceServiceRequest (a
// concatenation of resource_spans entries as written by otlp.Encoder)
// holding spans spans.
//
// The caller hands ownership of req to Export: after a nil return it must
// not modify req or reuse its memory, because the bytes are sent as they
// are, possibly long after Export returns (the exporter only reads them).
// On an error the caller keeps req and nothing is counted.
//
// Export blocks while the queue is full until there is room, or until ctx
// is done (it then returns ctx.Err()). After Shutdown has begun it returns
// ErrClosed. With the persistent queue, a nil return means the request was
// written to the queue's file (write(2); on the disk at the next group
// commit), and Export fails when it cannot be written.
func (e *Exporter) Export(ctx context.Context, req []byte, spans int) error {
	if spans < 0 {
		return fmt.Errorf("export: negative span count %d", spans)
	}
	if e.closed.Load() {
		return ErrClosed
	}
	if spans == 0 {
		return nil
	}
	if e.kind == KindNone {
		e.m.sent.Add(float64(spans))
		return nil
	}
	return e.q.put(ctx, req, spans)
}

// Discards reports whether every request is thrown away (kind none), so
// that a caller need not encode what it exports.
func (e *Exporter) Discards() bool { return e.kind == KindNone }

// QueueSpans returns the spans the exporter holds: queued, being sent or
// waiting to be retried. It is at most queue.max_spans, except for a single
// request larger than that; the persistent queue is bounded in bytes
// instead.
func (e *Exporter) QueueSpans() int { return e.q.spans() }

// Shutdown stops taking requests (Export returns ErrClosed), sends what is
// queued without waiting for batch_timeout, and closes the connection or
// file (the file is fsynced). When ctx is done first, in-flight attempts and
// retry waits are cancelled and every span not sent is counted as dropped;
// the error then says how many. Shutdown is idempotent: later calls return
// the first one's result.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.shutdownOnce.Do(func() { e.shutdownErr = e.shutdown(ctx) })
	return e.shutdownErr
}

func (e *Exporter) shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.stopping = true
	started := e.started
	e.mu.Unlock()
	e.closed.Store(true)
	e.q.close()

	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		e.q.abort()
		e.cancelSend()
		<-done
	}
	e.cancelSend()
	if n := e.q.drain(); n > 0 {
		e.m.dropped.Add(float64(n))
		e.dropped.Add(int64(n))
	}
	// An expired ctx is only an error if it cost spans: the senders may
	// have finished just as it expired.
	var err error
	if n := e.dropped.Load(); n > 0 {
		cause := ctx.Err()
		if cause == nil {
			cause = errors.New("the exporter was not started")
		}
		err = fmt.Errorf("export shutdown: %d spans dropped: %w", n, cause)
	}
	if e.pq != nil {
		batches, spans, perr := e.pq.shutdown()
		if batches > 0 {
			e.log.Info("export queue: requests stay queued for the next start", "batches", batches, "spans", spans)
		}
		err = errors.Join(err, perr)
	}
	if started && e.client != nil {
		err = errors.Join(err, e.client.shutdown(ctx))
	}
	return err
}

func (e *Exporter) runSender() {
	defer e.wg.Done()
	for {
		b, ok := e.q.next()
		if !ok {
			return
		}
		e.q.finish(b, e.deliver(b))
	}
}

// deliver sends one batch, retrying retryable errors, and counts its spans
// exactly once: sent, failed or dropped. It returns false when the batch was
// abandoned at shutdown rather than finished (sent or failed).
//
// With the persistent queue the retry budget (retry.max_elapsed) does not
// fail a batch: it stays queued and is retried every retry.max_interval
// until the backend takes it or Shutdown.
func (e *Exporter) deliver(b *batch) bool {
	n := float64(b.spans)
	start := time.Now()
	bo := retry.NewBackOff(e.cfg.Retry.InitialInterval.Std(), e.cfg.Retry.MaxInterval.Std(), e.jitter)
	maxElapsed := e.cfg.Retry.MaxElapsed.Std()
	outlasted := false
	for attempt := 1; ; attempt++ {
		ps, err := e.attempt(b)
		if err == nil {
			rejected := min(max(ps.rejected, 0), int64(b.spans))
			e.m.sent.Add(n - float64(rejected))
			if rejected > 0 || ps.message != "" {
				e.m.failed.Add(float64(rejected))
				if e.messages.first(ps.message) {
					e.log.Warn("export destination rejected part of a batch (logged once per message)",
						"rejected_spans", rejected, "spans", b.spans, "reason", ps.message)
				}
			}
			return true
		}
		if e.sendCtx.Err() != nil {
			e.drop(b)
			return false
		}
		retry, throttle := classify(err)
		if !retry {
			e.m.failed.Add(n)
			if e.throttle.allow("permanent", time.Now()) {
				e.log.Error("export failed with a permanent error; batch dropped",
					"spans", b.spans, "attempts", attempt, "reason", err.Error())
			}
			return true
		}
		if e.pq != nil && e.closed.Load() {
			// Shutting down with the backend failing: the batch is safe
			// in the files, so stop sending rather than spend the
			// shutdown deadline on retries, which the state's flush needs.
			e.q.abort()
			e.log.Info("export failing at shutdown; the batches not yet sent stay in the persistent queue",
				"reason", err.Error())
			return false
		}
		delay := bo.NextBackOff()
		if throttle > 0 {
			delay = throttle
		}
		if maxElapsed > 0 && time.Since(start)+delay > maxElapsed && e.pq != nil {
			if !outlasted && e.throttle.allow("outlasted", time.Now()) {
				e.log.Error("export failing for longer than retry.max_elapsed; the batch stays in the persistent queue and is retried",
					"spans", b.spans, "attempts", attempt, "elapsed", time.Since(start).Round(time.Millisecond).String(),
					"reason", err.Error())
			}
			outlasted = true
		} else if maxElapsed > 0 && time.Since(start)+delay > maxElapsed {
			e.m.failed.Add(n)
			if e.throttle.allow("gave_up", time.Now()) {
				e.log.Error("export failed: retries exhausted; batch dropped",
					"spans", b.spans, "attempts", attempt, "elapsed", time.Since(start).Round(time.Millisecond).String(),
					"reason", err.Error())
			}
			return true
		}
		e.m.retries.Inc()
		level := slog.LevelDebug
		if e.throttle.allow("retry", time.Now()) {
			level = slog.LevelWarn
		}
		e.log.Log(e.sendCtx, level, "export failed; retrying", "spans", b.spans, "attempt", attempt,
			"delay", delay.String(), "reason", err.Error())
		if e.wait(e.sendCtx, delay) != nil {
			e.drop(b)
			return false
		}
	}
}

func (e *Exporter) attempt(b *batch) (partialSuccess, error) {
	ctx := e.sendCtx
	if e.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
		defer cancel()
	}
	t0 := time.Now()
	ps, err := e.client.send(ctx, b)
	e.m.duration.Observe(time.Since(t0).Seconds())
	return ps, err
}

// drop counts a batch abandoned because Shutdown's deadline passed. The
// persistent queue keeps it for the next start: nothing is lost.
func (e *Exporter) drop(b *batch) {
	if e.pq != nil {
		return
	}
	e.m.dropped.Add(float64(b.spans))
	e.dropped.Add(int64(b.spans))
}

// logThrottle lets a kind of log line through at most once per interval, so
// a backend that rejects everything does not flood the log (the counters
// still count every span).
type logThrottle struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const logInterval = time.Minute

func (t *logThrottle) allow(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[string]time.Time{}
	}
	if last, ok := t.last[key]; ok && now.Sub(last) < logInterval {
		return false
	}
	t.last[key] = now
	return true
}

// onceSet remembers messages already logged. It is bounded: past
// maxMessages distinct messages it forgets them all and starts over.
type onceSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

const maxMessages = 128

func (s *onceSet) first(msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[msg]; ok {
		return false
	}
	if s.seen == nil || len(s.seen) >= maxMessages {
		s.seen = map[string]struct{}{}
	}
	s.seen[msg] = struct{}{}
	return true
}
