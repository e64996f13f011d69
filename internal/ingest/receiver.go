package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// Consumer takes the valid spans of one export request. It must not retain
// req, or any slice of it, after Consume returns: the receiver reuses both.
type Consumer interface {
	Consume(ctx context.Context, req *otlp.Request) error
}

// Backpressure is implemented by Consumer errors that mean "the pipeline is
// full, send again later": the receiver answers RESOURCE_EXHAUSTED with a
// RetryInfo (gRPC) or 429 with Retry-After (HTTP). Any other Consumer error
// is answered UNAVAILABLE / 503.
type Backpressure interface {
	error
	RetryAfter() time.Duration
}

// Settings are the receiver's dependencies.
type Settings struct {
	// Logger receives the receiver's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the receiver's metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
	// Consumer takes every valid request; required.
	Consumer Consumer
	// OnFailure, when set, is called once a listener stops serving for
	// any reason other than Shutdown (its socket closed under it, an
	// accept error it cannot recover from): the receiver is then half
	// dead, and its owner should stop the process rather than live on.
	// The owner logs it; without OnFailure the receiver logs it.
	OnFailure func(err error)
	// Listen binds the receivers' sockets; nil means net.ListenConfig's
	// Listen. Tests wrap it to hold the listeners.
	Listen func(ctx context.Context, network, address string) (net.Listener, error)
	// Admit, when set, is asked before each request is read; when it
	// reports false (the process is short of memory) the request gets
	// backpressure, like a full pipeline, and is counted in
	// tailgate_ingest_memory_backpressure_requests_total. It is called on
	// every request, so it must be cheap.
	Admit func() bool
	// Auth checks the bearer tokens of requests when
	// Config.RequireToken is on, and is then required. It is called on
	// every request, from several goroutines.
	Auth Authenticator
}

// Authenticator finds the principal of an Authorization header's value
// ("Bearer <token>"); *auth.Authenticator is one. Its errors must not
// carry the token.
type Authenticator interface {
	AuthenticateHeader(authorization string) (auth.Principal, error)
}

// Errors of the receiver's life cycle.
var (
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("ingest receiver already started")
	// ErrStopped is returned by Start after Shutdown.
	ErrStopped = errors.New("ingest receiver shut down")
)

const (
	// defaultRetryAfter is the delay suggested when the receiver's own
	// concurrency limit is reached or the consumer is unavailable, and what
	// replaces a consumer's RetryAfter of 0 or less (which would invite a hot
	// retry loop).
	defaultRetryAfter = time.Second
	// maxPooledBuffer bounds the request buffers kept for reuse, so a rare
	// huge request does not pin its memory.
	maxPooledBuffer = 4 << 20
	// HTTP server timeouts: generous enough for a 16MiB body on a slow
	// link, short enough that idle or stalled clients do not hold slots.
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = time.Minute
	httpIdleTimeout       = 2 * time.Minute
	// maxLoggedReason bounds the reason logged for a refused request.
	maxLoggedReason = 256
	// errMemoryShort is the message of a request refused by Settings.Admit.
	errMemoryShort = "tailgate is short of memory (heap above the admission threshold of server.memory_limit), retry later"
)

// Receiver serves OTLP/gRPC and OTLP/HTTP trace exports.
type Receiver struct {
	cfg      Config
	logger   *slog.Logger
	consumer Consumer
	// onFailure is Settings.OnFailure.
	onFailure func(error)
	// listen is Settings.Listen.
	listen  func(ctx context.Context, network, address string) (net.Listener, error)
	limits  otlp.Limits
	metrics *metrics
	// tls is set when TLS is on (see ReloadTLS).
	tls *auth.ReloadableTLS

	buffers  sync.Pool // *buffer
	requests sync.Pool // *otlp.Request
	gzips    sync.Pool // *gzip.Reader
	zstds    sync.Pool // *zstd.Decoder

	inflight [numProtocols]atomic.Int64
	// inflightJSON counts the OTLP/JSON requests among inflight[protocolHTTP].
	inflightJSON atomic.Int64
	// jsonBudget holds the estimated decoding memory of the OTLP/JSON
	// requests being decoded, up to jsonDecodeBudget.
	jsonBudget *semaphore.Weighted
	// admit is Settings.Admit.
	admit func() bool
	// auth is Settings.Auth when Config.RequireToken is on, else nil.
	auth Authenticator

	// grpcServer and health are made by Start (a grpc.Server starts its
	// stream workers when made, so New makes none that a failed daemon
	// start would leave behind).
	grpcServer *grpc.Server
	health     *health.Server
	httpServer *http.Server

	mu       sync.Mutex
	started  bool
	stopped  bool
	grpcLis  net.Listener
	httpLis  net.Listener
	serving  sync.WaitGroup
	shutdown chan struct{} // closed when Shutdown has finished
	stopErr  error
}

// buffer is a pooled request payload.
type buffer struct{ b []byte }

// New builds a receiver; it opens no sockets (see Start).
func New(cfg Config, set Settings) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	if set.Consumer == nil {
		return nil, errors.New("ingest: a consumer is required")
	}
	if cfg.RequireToken && set.Auth == nil {
		return nil, errors.New("ingest: require_token is on but no authenticator was given")
	}
	logger := set.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := set.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	listen := set.Listen
	if listen == nil {
		var lc net.ListenConfig
		listen = lc.Listen
	}
	r := &Receiver{
		cfg:       cfg,
		logger:    logger,
		consumer:  set.Consumer,
		onFailure: set.OnFailure,
		listen:    listen,
		admit:     set.Admit,
		limits: otlp.Limits{
			MaxAttributes: cfg.MaxAttributesPerSpan,
			MaxSpanBytes:  int(cfg.MaxSpanSize),
			MaxSpans:      cfg.MaxSpansPerRequest,
		},
		metrics:    m,
		jsonBudget: semaphore.NewWeighted(jsonDecodeBudget),
		shutdown:   make(chan struct{}),
	}
	r.buffers.New = func() any { return new(buffer) }
	r.requests.New = func() any { return new(otlp.Request) }
	if cfg.RequireToken {
		r.auth = set.Auth
	}
	if cfg.TLS.Enabled() {
		// The API's TLS loader, so that both refuse an expired certificate
		// and read a client CA (mTLS) alike.
		files := auth.TLSConfig{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, ClientCAFile: cfg.TLS.ClientCAFile}
		if r.tls, err = auth.NewReloadableTLS(files, time.Now()); err != nil {
			return nil, fmt.Errorf("ingest: load tls certificate: %w", err)
		}
	}
	if cfg.OTLPHTTP != "" {
		r.httpServer = r.newHTTPServer()
	}
	return r, nil
}

// Start binds the listeners (so a taken port fails here) and serves them in
// the background. ctx bounds the binding only.
func (r *Receiver) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.stopped:
		return ErrStopped
	case r.started:
		return ErrStarted
	}
	if r.cfg.OTLPGRPC != "" {
		ln, err := r.listen(ctx, "tcp", r.cfg.OTLPGRPC)
		if err != nil {
			return fmt.Errorf("ingest: listen otlp_grpc %s: %w", r.cfg.OTLPGRPC, err)
		}
		r.grpcLis = ln
	}
	if r.httpServer != nil {
		ln, err := r.listen(ctx, "tcp", r.cfg.OTLPHTTP)
		if err != nil {
			if r.grpcLis != nil {
				_ = r.grpcLis.Close()
				r.grpcLis = nil
			}
			return fmt.Errorf("ingest: listen otlp_http %s: %w", r.cfg.OTLPHTTP, err)
		}
		r.httpLis = ln
	}
	r.started = true
	if r.grpcLis != nil {
		r.grpcServer, r.health = r.newGRPCServer()
		r.serving.Go(func() {
			if err := r.grpcServer.Serve(r.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				r.failed(fmt.Errorf("OTLP/gRPC receiver on %s: %w", r.grpcLis.Addr(), err))
			}
		})
		r.logger.Info("OTLP/gRPC receiver listening", "addr", r.grpcLis.Addr().String())
	}
	if r.httpLis != nil {
		r.serving.Go(func() {
			var err error
			if r.tls != nil {
				// The certificate comes from the config's
				// GetConfigForClient.
				err = r.httpServer.ServeTLS(r.httpLis, "", "")
			} else {
				err = r.httpServer.Serve(r.httpLis)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.failed(fmt.Errorf("OTLP/HTTP receiver on %s: %w", r.httpLis.Addr(), err))
			}
		})
		r.logger.Info("OTLP/HTTP receiver listening", "addr", r.httpLis.Addr().String())
	}
	return nil
}

// failed reports a listener that stopped serving outside Shutdown: to
// the owner when it asked, else in the log (never both, so one failure is
// one line).
func (r *Receiver) failed(err error) {
	r.mu.Lock()
	stopping := r.stopped
	r.mu.Unlock()
	switch {
	case stopping:
	case r.onFailure != nil:
		r.onFailure(err)
	default:
		r.logger.Error("OTLP receiver stopped serving", "err", err)
	}
}

// Shutdown stops accepting requests and waits for those in flight: gRPC
// stops gracefully (forcibly once ctx expires) and the HTTP server shuts
// down (closing its connections once ctx expires). When it returns nil, no
// Consume call is running or will start; after a forced stop, handlers
// still inside Consume see their context cancelled (gRPC) or finish on
// their own (HTTP). It may be called more than once, and before Start;
// later calls wait for the first and return its result.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		select {
		case <-r.shutdown:
			return r.stopErr
		case <-ctx.Done():
			return fmt.Errorf("ingest: wait for shutdown: %w", ctx.Err())
		}
	}
	r.stopped = true
	started := r.started
	r.mu.Unlock()

	if r.health != nil {
		// Tell health checkers first, so balancers drain us.
		r.health.Shutdown()
	}

	var errs [numProtocols]error
	if started {
		var wg sync.WaitGroup
		if r.grpcServer != nil {
			wg.Go(func() { errs[protocolGRPC] = r.stopGRPC(ctx) })
		}
		if r.httpServer != nil {
			wg.Go(func() {
				if err := r.httpServer.Shutdown(ctx); err != nil {
					_ = r.httpServer.Close()
					errs[protocolHTTP] = fmt.Errorf("ingest: shut down OTLP/HTTP: %w", err)
				}
			})
		}
		wg.Wait()
		r.serving.Wait()
	}
	r.stopErr = errors.Join(errs[:]...)
	close(r.shutdown)
	return r.stopErr
}

func (r *Receiver) stopGRPC(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		r.grpcServer.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		r.grpcServer.Stop()
		<-done
		return fmt.Errorf("ingest: graceful stop of OTLP/gRPC: %w", ctx.Err())
	}
}

// GRPCAddr returns the address the gRPC receiver is bound to, "" before
// Start or when disabled.
func (r *Receiver) GRPCAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grpcLis == nil {
		return ""
	}
	return r.grpcLis.Addr().String()
}

// HTTPAddr returns the address the HTTP receiver is bound to, "" before
// Start or when disabled.
func (r *Receiver) HTTPAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.httpLis == nil {
		return ""
	}
	return r.httpLis.Addr().String()
}

// acquire takes one of the protocol's concurrency slots, reporting false
// when all are taken.
func (r *Receiver) acquire(p protocol) bool {
	if r.inflight[p].Add(1) > int64(r.cfg.MaxConcurrentRequests) {
		r.inflight[p].Add(-1)
		return false
	}
	r.metrics.by[p].inflight.Inc()
	return true
}

func (r *Receiver) release(p protocol) {
	r.inflight[p].Add(-1)
	r.metrics.by[p].inflight.Dec()
}

// acquireJSON takes one of the OTLP/JSON slots, within an HTTP slot the
// caller holds, reporting false when all are taken.
func (r *Receiver) acquireJSON() bool {
	if r.inflightJSON.Add(1) > int64(r.cfg.MaxConcurrentJSONRequests) {
		r.inflightJSON.Add(-1)
		return false
	}
	return true
}

func (r *Receiver) releaseJSON() { r.inflightJSON.Add(-1) }

// admitted reports whether memory allows a new request, counting a refusal.
func (r *Receiver) admitted(p protocol) bool {
	if r.admit == nil || r.admit() {
		return true
	}
	r.metrics.by[p].memoryRefused.Inc()
	return false
}

func (r *Receiver) getBuffer() *buffer { return r.buffers.Get().(*buffer) }

func (r *Receiver) putBuffer(b *buffer) {
	if cap(b.b) > maxPooledBuffer {
		return
	}
	b.b = b.b[:0]
	r.buffers.Put(b)
}

// result is how one decoded request ended.
type result struct {
	outcome  outcome
	rejected int           // outcomePartial: spans refused
	message  string        // reject reason or error message
	retry    time.Duration // outcomeBackpressure, outcomeUnavailable
}

// process parses one ExportTraceServiceRequest encoding and hands its valid
// spans to the consumer. The caller maps the result to its protocol and
// counts the request.
func (r *Receiver) process(ctx context.Context, p protocol, payload []byte) result {
	pm := &r.metrics.by[p]
	req := r.requests.Get().(*otlp.Request)
	defer func() {
		req.Reset()
		r.requests.Put(req)
	}()
	if err := otlp.Parse(payload, r.limits, req); err != nil {
		return result{outcome: outcomeInvalid, message: err.Error()}
	}
	if p, ok := auth.FromContext(ctx); ok && len(p.Services) > 0 {
		if denied := denyServices(req, p); denied > 0 {
			pm.denied.Add(float64(denied))
		}
	}
	if len(req.Spans) > 0 {
		if err := r.consumer.Consume(ctx, req); err != nil {
			if bp, ok := errors.AsType[Backpressure](err); ok {
				retry := bp.RetryAfter()
				if retry <= 0 {
					retry = defaultRetryAfter
				}
				return result{outcome: outcomeBackpressure, message: err.Error(), retry: retry}
			}
			return result{outcome: outcomeUnavailable, message: err.Error(), retry: defaultRetryAfter}
		}
	}
	pm.accepted.Add(float64(len(req.Spans)))
	if req.Rejected > 0 {
		pm.rejected.Add(float64(req.Rejected))
		return result{outcome: outcomePartial, rejected: req.Rejected, message: req.RejectReason}
	}
	return result{outcome: outcomeOK}
}

// count records a finished request.
func (r *Receiver) count(p protocol, o outcome) { r.metrics.by[p].requests[o].Inc() }

// logInvalid records why a request was refused as malformed or
// unauthenticated (never with the token). It logs at
// debug level: a misbehaving client can send thousands a second, and the
// requests_total{outcome="invalid"} counter is the signal to watch.
// The reason is cut before any quoted input: pdata's JSON errors end with
// ", error found in #N byte of ...|<input>|...".
func (r *Receiver) logInvalid(ctx context.Context, p protocol, remote, reason string) {
	if !r.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	reason, _, _ = strings.Cut(reason, ", error found in #")
	if len(reason) > maxLoggedReason {
		reason = strings.ToValidUTF8(reason[:maxLoggedReason], "") + "..."
	}
	r.logger.DebugContext(ctx, "refused OTLP request", "protocol", p.String(), "remote_addr", remote, "reason", reason)
}

// authenticate checks a request's Authorization header (gRPC metadata
// authorization) when tokens are required. It returns ctx carrying the
// principal, or the outcome and message of a refusal.
func (r *Receiver) authenticate(ctx context.Context, header string) (context.Context, outcome, string) {
	if r.auth == nil {
		return ctx, outcomeOK, ""
	}
	p, err := r.auth.AuthenticateHeader(header)
	switch {
	case errors.Is(err, auth.ErrNoToken):
		return ctx, outcomeUnauthenticated, "ingest.require_token is on: send Authorization: Bearer <token> with a token that has the ingest scope"
	case err != nil:
		return ctx, outcomeUnauthenticated, "unknown bearer token"
	case !p.Has(auth.ScopeIngest):
		return ctx, outcomeForbidden, fmt.Sprintf("token %q lacks the ingest scope", p.Name)
	}
	return auth.WithPrincipal(ctx, p), outcomeOK, ""
}

// maxNamedServices bounds the services named in a partial success message.
const maxNamedServices = 3

// denyServices removes from req the spans of services p may not send,
// counting them as rejected (partial success) with a message naming the
// services, and returns how many it removed.
func denyServices(req *otlp.Request, p auth.Principal) int {
	kept := req.Spans[:0]
	var names []string
	denied, more := 0, false
	// Spans of one resource are consecutive; decide once per resource.
	lastRes, lastOK := int32(-1), false
	for i := range req.Spans {
		s := &req.Spans[i]
		res := req.Scopes[s.Scope].Resource
		if res != lastRes {
			lastRes, lastOK = res, p.ServiceAllowed(req.Resources[res].ServiceName)
		}
		if lastOK {
			kept = append(kept, *s)
			continue
		}
		denied++
		if svc := req.Resources[res].ServiceName; !slices.Contains(names, svc) {
			if len(names) < maxNamedServices {
				names = append(names, svc)
			} else {
				more = true
			}
		}
	}
	if denied == 0 {
		return 0
	}
	clear(req.Spans[len(kept):])
	req.Spans = kept
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	list := strings.Join(quoted, ", ")
	if more {
		list += " and others"
	}
	msg := fmt.Sprintf("%d spans refused: token %q may not send spans of service %s (it is bound to %s)",
		denied, p.Name, list, strings.Join(p.Services, ", "))
	if req.Rejected == 0 {
		req.RejectReason = msg
	} else {
		req.RejectReason += "; " + msg
	}
	req.Rejected += denied
	return denied
}

// ReloadTLS reads the certificate, key and client CA files again and
// uses them for every later handshake on both receivers; connections
// already open keep theirs. On an error the current files stay in use.
// now is the time certificates must be valid at. It does nothing when TLS
// is off.
func (r *Receiver) ReloadTLS(now time.Time) error {
	if err := r.tls.Reload(now); err != nil {
		return fmt.Errorf("ingest: load tls certificate: %w", err)
	}
	return nil
}
