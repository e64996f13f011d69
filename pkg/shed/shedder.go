package shed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// Reason says why a request was refused; None when it was admitted.
type Reason uint8

// The reasons.
const (
	// None: the request was admitted.
	None Reason = iota
	// Limit: the request's criticality had used its share of the adaptive
	// concurrency limit.
	Limit
	// Level: the shed level refuses this share of sheddable requests.
	Level

	numReasons = 3
)

// String returns the reason as the shed.reason span attribute spells it.
func (r Reason) String() string {
	switch r {
	case None:
		return "none"
	case Limit:
		return "concurrency_limit"
	case Level:
		return "shed_level"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Span attribute keys set on the request's span.
const (
	// AttrCriticality is set on every request's span: critical, default or
	// sheddable.
	AttrCriticality = attribute.Key("shed.criticality")
	// AttrReason is set on the span of a refused request:
	// concurrency_limit or shed_level.
	AttrReason = attribute.Key("shed.reason")
)

// DefaultHeader is the request header (gRPC metadata key in lower case)
// read for the criticality when Config.Header is empty.
const DefaultHeader = "X-Criticality"

// Config configures a Shedder. The zero value is usable: every field has a
// default.
type Config struct {
	// Limit configures the adaptive concurrency limit.
	Limit LimitConfig
	// DefaultShare and SheddableShare are the fractions of the limit that
	// default and sheddable requests may fill: a request is refused when
	// the requests in flight reach its share. Critical requests may fill
	// the whole limit. Defaults 0.8 and 0.5; each in (0, 1].
	DefaultShare, SheddableShare float64
	// Header names the request header (HTTP) or metadata key (gRPC, in
	// lower case) that carries the criticality; default DefaultHeader. Values other than
	// critical, default and sheddable are ignored.
	Header string
	// Routes maps net/http ServeMux patterns ("GET /api/checkout/{id}",
	// "/batch/") to the criticality of the requests they match, with the
	// ServeMux's precedence rules.
	Routes map[string]Criticality
	// Methods maps gRPC full method names ("/pkg.Service/Method") or
	// service prefixes ("/pkg.Service/") to the criticality of their calls
	// (package shedgrpc reads it).
	Methods map[string]Criticality
	// RetryAfter is sent with refusals (HTTP Retry-After in whole seconds,
	// gRPC grpc-retry-pushback-ms in package shedgrpc); default 1s.
	RetryAfter time.Duration
	// Level configures reading the shed level from a tailgate flag over
	// OFREP; unset, the level changes only by SetSheddablePercent.
	Level LevelConfig
	// MeterProvider receives the metrics; nil records none. Pass
	// otel.GetMeterProvider() to use the global one.
	MeterProvider metric.MeterProvider
	// Logger logs failures to read the shed level; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// LimitConfig configures the adaptive concurrency limit.
type LimitConfig struct {
	// Initial is the limit before any latency was measured; default 20.
	Initial int
	// Min and Max bound the limit; defaults 4 and 1000.
	Min, Max int
	// Window is the shortest time over which request latencies are
	// averaged before the limit moves; default 1s.
	Window time.Duration
	// WindowSamples is the fewest requests a window must hold; default 10.
	WindowSamples int
	// Smoothing in (0, 1] weighs each new limit against the old one; 1
	// (the default) takes the new limit as is.
	Smoothing float64
}

// Shedder admits or refuses requests. It is safe for concurrent use.
type Shedder struct {
	now        func() time.Time
	header     string
	routes     map[string]Criticality
	mux        *http.ServeMux
	methods    map[string]Criticality
	retryAfter time.Duration
	retryHTTP  string // Retry-After header value
	shares     [numCriticalities]float64
	minSamples int
	window     time.Duration
	level      *levelReader
	log        *slog.Logger

	mu       sync.Mutex
	inflight int
	allowed  [numCriticalities]int
	lim      vegas
	win      window

	// levelBP is the shed level in basis points of sheddable requests.
	levelBP atomic.Uint32
	// sheddableSeq counts sheddable requests while a level is set.
	sheddableSeq atomic.Uint64

	refused     metric.Int64Counter
	refusedOpts [numCriticalities][numReasons]metric.AddOption
	reg         metric.Registration

	life    sync.Mutex // guards the fields below
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// ErrShutdown is returned by Start after Shutdown.
var ErrShutdown = errors.New("shed: shut down")

// New returns a Shedder, or an error naming every invalid field.
func New(cfg Config) (*Shedder, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Shedder{
		now:        cfg.Now,
		header:     cfg.Header,
		methods:    cfg.Methods,
		retryAfter: cfg.RetryAfter,
		retryHTTP:  strconv.Itoa(int(math.Ceil(cfg.RetryAfter.Seconds()))),
		shares:     [numCriticalities]float64{Default: cfg.DefaultShare, Critical: 1, Sheddable: cfg.SheddableShare},
		minSamples: cfg.Limit.WindowSamples,
		window:     cfg.Limit.Window,
		log:        cfg.Logger,
		lim: vegas{
			limit:     float64(cfg.Limit.Initial),
			min:       float64(cfg.Limit.Min),
			max:       float64(cfg.Limit.Max),
			smoothing: cfg.Limit.Smoothing,
		},
	}
	if len(cfg.Routes) > 0 {
		mux, err := routeMux(cfg.Routes)
		if err != nil {
			return nil, err
		}
		s.mux, s.routes = mux, cfg.Routes
	}
	if cfg.Level.URL != "" {
		lr, err := newLevelReader(cfg.Level, cfg.Now)
		if err != nil {
			return nil, err
		}
		s.level = lr
	}
	s.setAllowed()
	if err := s.initMetrics(cfg.MeterProvider); err != nil {
		return nil, err
	}
	return s, nil
}

func (c *Config) setDefaults() {
	l := &c.Limit
	if l.Initial == 0 {
		l.Initial = 20
	}
	if l.Min == 0 {
		l.Min = min(4, l.Initial)
	}
	if l.Max == 0 {
		l.Max = max(1000, l.Initial)
	}
	if l.Window == 0 {
		l.Window = time.Second
	}
	if l.WindowSamples == 0 {
		l.WindowSamples = 10
	}
	if l.Smoothing == 0 {
		l.Smoothing = 1
	}
	if c.DefaultShare == 0 {
		c.DefaultShare = 0.8
	}
	if c.SheddableShare == 0 {
		c.SheddableShare = 0.5
	}
	if c.Header == "" {
		c.Header = DefaultHeader
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MeterProvider == nil {
		c.MeterProvider = noop.NewMeterProvider()
	}
}

func (c *Config) validate() error {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	l := c.Limit
	if l.Min < 1 {
		fail("limit.min", "must be at least 1, got %d", l.Min)
	}
	if l.Max < l.Min {
		fail("limit.max", "must be at least limit.min (%d), got %d", l.Min, l.Max)
	}
	if l.Initial < l.Min || l.Initial > l.Max {
		fail("limit.initial", "must be between limit.min (%d) and limit.max (%d), got %d", l.Min, l.Max, l.Initial)
	}
	if l.Window < 0 {
		fail("limit.window", "must not be negative, got %s", l.Window)
	}
	if l.WindowSamples < 1 {
		fail("limit.window_samples", "must be at least 1, got %d", l.WindowSamples)
	}
	if !(l.Smoothing > 0 && l.Smoothing <= 1) {
		fail("limit.smoothing", "must be in (0, 1], got %g", l.Smoothing)
	}
	if !(c.DefaultShare > 0 && c.DefaultShare <= 1) {
		fail("default_share", "must be in (0, 1], got %g", c.DefaultShare)
	}
	if !(c.SheddableShare > 0 && c.SheddableShare <= 1) {
		fail("sheddable_share", "must be in (0, 1], got %g", c.SheddableShare)
	}
	if c.RetryAfter < 0 {
		fail("retry_after", "must not be negative, got %s", c.RetryAfter)
	}
	for p, cr := range c.Routes {
		if !cr.valid() {
			fail(fmt.Sprintf("routes[%q]", p), "invalid criticality %d", uint8(cr))
		}
	}
	for m, cr := range c.Methods {
		if !cr.valid() {
			fail(fmt.Sprintf("methods[%q]", m), "invalid criticality %d", uint8(cr))
		}
	}
	errs = append(errs, c.Level.validate()...)
	return errors.Join(errs...)
}

// routeMux compiles the route table into a ServeMux used only to match.
func routeMux(routes map[string]Criticality) (mux *http.ServeMux, err error) {
	mux = http.NewServeMux()
	match := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for p := range routes {
		// ServeMux panics on an invalid or conflicting pattern; a config
		// mistake must be an error instead.
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = errors.Join(err, fmt.Errorf("routes[%q]: %v", p, r))
				}
			}()
			mux.Handle(p, match)
		}()
	}
	return mux, err
}

// Token is an admitted request's hold on the concurrency limit. Call Done
// (or Ignore) exactly once when the request ends. The zero Token holds
// nothing.
type Token struct {
	s     *Shedder
	start time.Time
}

// Acquire decides whether a request of criticality c may run now. It
// returns a Token and None when it may, or the reason it may not.
func (s *Shedder) Acquire(ctx context.Context, c Criticality) (Token, Reason) {
	if !c.valid() {
		c = Default
	}
	if c == Sheddable {
		if bp := uint64(s.levelBP.Load()); bp > 0 {
			// Refuse exactly the level's share: the n-th sheddable
			// request is refused when it takes floor(n*bp/10000) past
			// a whole number.
			n := s.sheddableSeq.Add(1)
			if n*bp/10000 != (n-1)*bp/10000 {
				s.refused.Add(ctx, 1, s.refusedOpts[c][Level])
				return Token{}, Level
			}
		}
	}
	s.mu.Lock()
	if s.inflight >= s.allowed[c] {
		s.mu.Unlock()
		s.refused.Add(ctx, 1, s.refusedOpts[c][Limit])
		return Token{}, Limit
	}
	s.inflight++
	s.win.maxInflight = max(s.win.maxInflight, s.inflight)
	s.mu.Unlock()
	return Token{s: s, start: s.now()}, None
}

// Admit is Acquire for a request whose span is in ctx: it also sets
// shed.criticality on the span, and shed.reason when the request is
// refused. The middleware and package shedgrpc use it; use it too for
// other kinds of requests (queue messages, jobs).
func (s *Shedder) Admit(ctx context.Context, c Criticality) (Token, Reason) {
	tok, reason := s.Acquire(ctx, c)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		if reason == None {
			span.SetAttributes(AttrCriticality.String(c.String()))
		} else {
			span.SetAttributes(AttrCriticality.String(c.String()), AttrReason.String(reason.String()))
		}
	}
	return tok, reason
}

// Header returns the name of the header (HTTP) or metadata key (gRPC, in
// lower case) read for the criticality.
func (s *Shedder) Header() string { return s.header }

// RetryAfter returns how long a refused client is asked to wait.
func (s *Shedder) RetryAfter() time.Duration { return s.retryAfter }

// MethodCriticality looks a gRPC full method name up in Config.Methods:
// the method itself, then its service prefix.
func (s *Shedder) MethodCriticality(fullMethod string) (Criticality, bool) {
	if len(s.methods) == 0 {
		return Default, false
	}
	if c, ok := s.methods[fullMethod]; ok {
		return c, true
	}
	if i := strings.LastIndexByte(fullMethod, '/'); i > 0 {
		if c, ok := s.methods[fullMethod[:i+1]]; ok {
			return c, true
		}
	}
	return Default, false
}

// Done releases the Token and feeds the request's latency to the limit.
func (t Token) Done() {
	if t.s != nil {
		t.s.release(t.start, true)
	}
}

// Ignore releases the Token without feeding the request's latency to the
// limit: for requests whose time says nothing about the service's load,
// such as long-lived streams or requests cut short by the client.
func (t Token) Ignore() {
	if t.s != nil {
		t.s.release(t.start, false)
	}
}

func (s *Shedder) release(start time.Time, sample bool) {
	now := s.now()
	rtt := now.Sub(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if !sample {
		return
	}
	if s.win.n == 0 {
		s.win.start = start
	}
	s.win.add(rtt)
	s.lim.sample(rtt)
	if s.win.n >= s.minSamples && now.Sub(s.win.start) >= s.window {
		s.lim.update(s.win.sum/time.Duration(s.win.n), s.win.maxInflight)
		s.setAllowed()
		s.win.reset(now, s.inflight)
	}
}

// setAllowed recomputes each criticality's share of the limit; s.mu is
// held or s is not yet shared.
func (s *Shedder) setAllowed() {
	for c := range s.allowed {
		s.allowed[c] = int(s.shares[c] * s.lim.limit)
	}
	s.allowed[Critical] = max(1, s.allowed[Critical])
}

// Limit returns the current concurrency limit.
func (s *Shedder) Limit() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allowed[Critical]
}

// InFlight returns the number of admitted requests not yet done.
func (s *Shedder) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

// SetSheddablePercent sets the shed level: the percentage (0 to 100, with
// two decimals) of sheddable requests refused whatever the load. A level
// read over OFREP replaces it at the next poll.
func (s *Shedder) SetSheddablePercent(p float64) {
	switch {
	case !(p > 0): // also NaN
		p = 0
	case p > 100:
		p = 100
	}
	s.levelBP.Store(uint32(math.Round(p * 100)))
}

// SheddablePercent returns the shed level.
func (s *Shedder) SheddablePercent() float64 {
	return float64(s.levelBP.Load()) / 100
}

// Start starts polling the shed level when Config.Level.URL is set; it
// returns at once. Calling it again does nothing; after Shutdown it
// returns ErrShutdown.
func (s *Shedder) Start(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.stopped {
		return ErrShutdown
	}
	if s.level == nil || s.done != nil {
		return nil
	}
	// The poller lives until Shutdown, not until the caller's ctx ends.
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	s.done = done
	go func() {
		defer close(done)
		s.level.run(ctx, s)
	}()
	return nil
}

// Shutdown stops polling the shed level and unregisters the metrics. It
// waits for the poller until ctx is done, and may be called more than
// once. The Shedder still admits and refuses requests afterwards.
func (s *Shedder) Shutdown(ctx context.Context) error {
	s.life.Lock()
	if !s.stopped {
		s.stopped = true
		if s.cancel != nil {
			s.cancel()
		}
		if s.reg != nil {
			_ = s.reg.Unregister()
		}
	}
	done := s.done
	s.life.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shed: shutdown: %w", ctx.Err())
	}
}
