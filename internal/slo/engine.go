package slo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/units"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// Errors of the engine's API.
var (
	ErrUnknownSLO        = errors.New("unknown SLO")
	ErrUnknownCorrection = errors.New("unknown correction")
	ErrInvalid           = errors.New("invalid request")
)

// EngineConfig tunes the engine; the zero value of a field takes its
// default.
type EngineConfig struct {
	// FlushInterval is how often counts are written to the store
	// (default 1s): a crash loses at most this much.
	FlushInterval units.Duration `yaml:"flush_interval"`
	// EvalInterval is how often alerts are evaluated (default 10s).
	EvalInterval units.Duration `yaml:"eval_interval"`
	// MaxSkew, when set, drops spans whose end time is further than this
	// from their arrival (counted in tailgate_slo_spans_rejected_total).
	MaxSkew units.Duration `yaml:"max_skew"`
	// MaxLateness is how long after a minute ends its spans are still
	// counted in it (default 1m, at most 1h). Spans count in the minute of
	// their end time; one that arrives later, or ends in a minute that has
	// not begun, counts in the minute it arrived (units.EventClock) and in
	// tailgate_slo_late_spans_total.
	MaxLateness units.Duration `yaml:"max_lateness"`
	// RetentionMargin is kept beyond the longest window (default 1d).
	RetentionMargin units.Duration `yaml:"retention_margin"`
}

// DefaultEngineConfig returns the defaults.
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{
		FlushInterval:   units.Duration(time.Second),
		EvalInterval:    units.Duration(10 * time.Second),
		MaxLateness:     units.Duration(time.Minute),
		RetentionMargin: units.Duration(24 * time.Hour),
	}
}

// Validate reports every problem, each naming its key.
func (c *EngineConfig) Validate() error {
	var errs []error
	if c.FlushInterval < 0 || c.FlushInterval != 0 && c.FlushInterval.Std() < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("flush_interval: must be at least 10ms, got %s", c.FlushInterval))
	}
	if c.EvalInterval < 0 || c.EvalInterval != 0 && (c.EvalInterval.Std() < 100*time.Millisecond || c.EvalInterval.Std() > time.Minute) {
		errs = append(errs, fmt.Errorf("eval_interval: must be between 100ms and 1m, got %s", c.EvalInterval))
	}
	if c.MaxSkew < 0 {
		errs = append(errs, fmt.Errorf("max_skew: must not be negative, got %s", c.MaxSkew))
	}
	if c.MaxLateness < 0 || c.MaxLateness.Std() > time.Hour {
		errs = append(errs, fmt.Errorf("max_lateness: must be between 0 and 1h, got %s", c.MaxLateness))
	}
	if c.RetentionMargin < 0 {
		errs = append(errs, fmt.Errorf("retention_margin: must not be negative, got %s", c.RetentionMargin))
	}
	return errors.Join(errs...)
}

func (c EngineConfig) withDefaults() EngineConfig {
	d := DefaultEngineConfig()
	if c.FlushInterval == 0 {
		c.FlushInterval = d.FlushInterval
	}
	if c.EvalInterval == 0 {
		c.EvalInterval = d.EvalInterval
	}
	if c.MaxLateness == 0 {
		c.MaxLateness = d.MaxLateness
	}
	if c.RetentionMargin == 0 {
		c.RetentionMargin = d.RetentionMargin
	}
	return c
}

// Settings are the engine's dependencies.
type Settings struct {
	Logger *slog.Logger
	// Registerer receives the SLO gauges (read at scrape time); nil skips
	// them.
	Registerer prometheus.Registerer
	// Store persists counts, corrections and alert transitions; nil keeps
	// everything in memory.
	Store     Store
	Notifiers []Notifier
	// APIBaseURL (e.g. http://127.0.0.1:8080) makes links in notifications.
	APIBaseURL string
	Config     EngineConfig
	// Checkpoint, with a Store that is a MarkedBucketStore, makes every
	// flush store the write-ahead log position its counts include, in
	// the same transaction (see package wal).
	Checkpoint wal.Checkpoint
	// SourceMarks, with a Checkpoint, returns more marks to store with
	// each flush: how far the counts include sources that replay on their
	// own (the Kafka partitions this instance consumes). It is called
	// inside the cut, so the marks and the counts agree exactly.
	SourceMarks func() []wal.Mark
	// Leader, when set, says whether this instance is the fleet's leader:
	// only the leader stores alert transitions and sends notifications
	// (every instance evaluates, so that each answers with the same
	// alert states). nil: this instance always leads.
	Leader func() bool
	// Labels are added to every notification's labels (an SLO's own
	// labels win), e.g. the fleet's cell.
	Labels map[string]string
}

// MarkedBucketStore is a BucketStore that stores buckets together with
// the write-ahead log mark they include, and the marks of other sources
// (more), in one transaction.
type MarkedBucketStore interface {
	AddSLIBucketsMarked(ctx context.Context, buckets []Bucket, mark wal.Mark, more ...wal.Mark) error
}

// WALConsumer is the name of the SLO engine's mark in the store.
const WALConsumer = "slo"

// recentTransitions bounds the transitions kept in memory for the API.
const recentTransitions = 1000

// Engine counts SLI events, keeps error budgets and evaluates alerts.
type Engine struct {
	log         *slog.Logger
	cfg         EngineConfig
	store       Store
	cp          wal.Checkpoint
	sourceMarks func() []wal.Mark
	notifiers   []Notifier
	baseURL     string
	skewNs      uint64
	lateness    time.Duration
	retention   int64 // minutes

	slos      []*sloState
	byName    map[string]*sloState
	byService map[string]*svcPlan

	// cur is the open minute (a units.Minute): live counts belong to it.
	cur          atomic.Int64
	skewRejected atomic.Uint64
	lateSpans    atomic.Uint64 // counted in the arrival minute
	flushErrors  atomic.Uint64
	peerErrors   atomic.Uint64
	lastFlushOK  atomic.Int64 // Unix ns of the last stored flush

	// mu guards the series' histories, alert states, corrections and the
	// fields below. Observe never takes it except to close a minute.
	mu          sync.RWMutex
	recent      []Transition
	unsaved     []Transition
	lastEval    time.Time
	evalSeconds float64
	nextID      int64 // correction IDs without a store
	lastPrune   time.Time
	// peerCursor is the store's clock at the last read of the peers'
	// counts (the zero time before the first).
	peerCursor time.Time
	leader     func() bool
	wasLeader  bool // at the last evaluation; only evaluate reads it
	labels     map[string]string

	flushMu sync.Mutex

	lifeMu  sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

// NewEngine compiles the specs (which must pass ValidateSpecs) and
// registers the engine's metrics.
func NewEngine(specs []Spec, set Settings) (*Engine, error) {
	if _, err := ValidateSpecs(specs); err != nil {
		return nil, err
	}
	cfg := set.Config.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		log:         set.Logger,
		cfg:         cfg,
		store:       set.Store,
		cp:          set.Checkpoint,
		sourceMarks: set.SourceMarks,
		notifiers:   set.Notifiers,
		leader:      set.Leader,
		labels:      set.Labels,
		baseURL:     strings.TrimRight(set.APIBaseURL, "/"),
		skewNs:      uint64(cfg.MaxSkew.Std()),
		lateness:    cfg.MaxLateness.Std(),
		byName:      map[string]*sloState{},
		byService:   map[string]*svcPlan{},
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	longest := int64(3 * 24 * 60)
	for _, s := range specs {
		st, err := compile(s)
		if err != nil {
			return nil, err
		}
		e.slos = append(e.slos, st)
		e.byName[s.Name] = st
		plan := e.byService[s.Service]
		if plan == nil {
			plan = &svcPlan{}
			e.byService[s.Service] = plan
		}
		plan.add(st)
		w := st.per.rolling
		if w == 0 {
			w = 32 * 24 * 60 // a calendar month and its DST hour
		}
		longest = max(longest, w, slices.Max(st.windows))
	}
	e.retention = longest + int64(cfg.RetentionMargin.Std()/time.Minute)
	if set.Registerer != nil {
		if err := set.Registerer.Register(&collector{e: e}); err != nil {
			return nil, fmt.Errorf("register SLO metrics: %w", err)
		}
	}
	return e, nil
}

// openMinute returns the open minute: the live counts belong to it.
func (e *Engine) openMinute() units.Minute { return units.Minute(e.cur.Load()) }

// oldestKept returns the first minute whose counts are kept when m is open.
func (e *Engine) oldestKept(m units.Minute) units.Minute { return m - units.Minute(e.retention) }
