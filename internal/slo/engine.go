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

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
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
	// from their arrival. Spans are counted at arrival time either way.
	MaxSkew units.Duration `yaml:"max_skew"`
	// RetentionMargin is kept beyond the longest window (default 1d).
	RetentionMargin units.Duration `yaml:"retention_margin"`
}

// DefaultEngineConfig returns the defaults.
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{
		FlushInterval:   units.Duration(time.Second),
		EvalInterval:    units.Duration(10 * time.Second),
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
}

// recentTransitions bounds the transitions kept in memory for the API.
const recentTransitions = 1000

// Engine counts SLI events, keeps error budgets and evaluates alerts.
type Engine struct {
	log       *slog.Logger
	cfg       EngineConfig
	store     Store
	notifiers []Notifier
	baseURL   string
	skewNs    uint64
	retention int64 // minutes

	slos      []*sloState
	byName    map[string]*sloState
	byService map[string]*svcPlan

	// cur is the open minute: live counts belong to it.
	cur          atomic.Int64
	skewRejected atomic.Uint64
	flushErrors  atomic.Uint64

	// mu guards the series' histories, alert states, corrections and the
	// fields below. Observe never takes it except to close a minute.
	mu          sync.RWMutex
	recent      []Transition
	unsaved     []Transition
	lastEval    time.Time
	evalSeconds float64
	nextID      int64 // correction IDs without a store
	lastPrune   time.Time

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
		log:       set.Logger,
		cfg:       cfg,
		store:     set.Store,
		notifiers: set.Notifiers,
		baseURL:   strings.TrimRight(set.APIBaseURL, "/"),
		skewNs:    uint64(cfg.MaxSkew.Std()),
		byName:    map[string]*sloState{},
		byService: map[string]*svcPlan{},
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

// Observe counts the entry spans of a request against the SLOs of their
// service, at arrival time now. It does not retain req.
//
// Counts are summed per SLO (and group) over the run of spans that share
// a resource, then added with one atomic operation each: the cost per span
// is the kind check, one pass over its attributes when a filter or group
// reads any, and the filters themselves.
func (e *Engine) Observe(req *otlp.Request, now time.Time) {
	if len(e.byService) == 0 || len(req.Spans) == 0 {
		return
	}
	if m := minuteOf(now); m > e.cur.Load() {
		e.advance(m)
	}
	skew := e.skewNs
	nowNs := uint64(now.UnixNano())
	scope := int32(-1)
	var (
		plan     *svcPlan
		rejected uint64
		av       attrValues
		acc      accumulator
	)
	for i := range req.Spans {
		sp := &req.Spans[i]
		if !sp.Kind.IsEntry() {
			continue
		}
		if sp.Scope != scope {
			scope = sp.Scope
			if p := e.byService[req.SpanResource(sp).ServiceName]; p != plan {
				acc.flush(plan)
				plan = p
			}
		}
		if plan == nil {
			continue
		}
		if skew > 0 && (sp.EndUnixNano > nowNs+skew || sp.EndUnixNano+skew < nowNs) {
			rejected++
			continue
		}
		av.scanned = false
		for j, st := range plan.slos {
			if len(st.filter) > 0 && !st.match(req, sp, plan, &av) {
				continue
			}
			inc := uint64(liveGood)
			if st.bad(sp) {
				inc = liveBad
			}
			var g *series
			if st.groupBy != nil {
				var buf [32]byte
				v, ok := st.groupValue(req, sp, plan, &av, buf[:0])
				g = acc.cachedGroup(j, v, ok)
				if g == nil {
					g = st.group(v, ok, now)
				}
			}
			acc.add(j, st, g, inc)
		}
	}
	acc.flush(plan)
	if rejected > 0 {
		e.skewRejected.Add(rejected)
	}
}

// maxAccumulated bounds the SLOs of one service whose counts Observe sums
// locally; the others are added span by span.
const maxAccumulated = 32

// accumulator sums a request's increments per SLO of one service plan,
// and per group while consecutive spans share it.
type accumulator struct {
	agg   [maxAccumulated]uint64
	group [maxAccumulated]*series
	gsum  [maxAccumulated]uint64
	used  uint64 // bit j: agg[j] or gsum[j] is pending
}

// cachedGroup returns SLO j's current group series when the span's group
// value is the one it was found for, sparing the map lookup while
// consecutive spans share a route.
func (a *accumulator) cachedGroup(j int, v []byte, ok bool) *series {
	if j >= maxAccumulated || !ok {
		return nil
	}
	if g := a.group[j]; g != nil && g.group == string(v) {
		return g
	}
	return nil
}

func (a *accumulator) add(j int, st *sloState, g *series, inc uint64) {
	if j >= maxAccumulated {
		st.agg.live.Add(inc)
		if g != nil {
			g.live.Add(inc)
		}
		return
	}
	a.agg[j] += inc
	if g != nil {
		if a.group[j] != g {
			if a.group[j] != nil && a.gsum[j] != 0 {
				a.group[j].live.Add(a.gsum[j])
			}
			a.group[j], a.gsum[j] = g, 0
		}
		a.gsum[j] += inc
	}
	a.used |= 1 << j
}

// flush adds the pending sums of plan's SLOs and empties the accumulator.
func (a *accumulator) flush(plan *svcPlan) {
	if plan == nil || a.used == 0 {
		return
	}
	for j, st := range plan.slos {
		if j >= maxAccumulated {
			break
		}
		if a.used&(1<<j) == 0 {
			continue
		}
		if a.agg[j] != 0 {
			st.agg.live.Add(a.agg[j])
		}
		if a.group[j] != nil && a.gsum[j] != 0 {
			a.group[j].live.Add(a.gsum[j])
		}
		a.agg[j], a.group[j], a.gsum[j] = 0, nil, 0
	}
	a.used = 0
}

// advance closes the open minute when now's minute m is later.
func (e *Engine) advance(m minute) {
	e.mu.Lock()
	e.advanceLocked(m)
	e.mu.Unlock()
}

func (e *Engine) advanceLocked(m minute) {
	old := e.cur.Load()
	if m <= old {
		return
	}
	if old == 0 {
		// First minute seen: what was counted belongs to it, and counting
		// began then unless Start said otherwise.
		for _, st := range e.slos {
			if st.since.IsZero() {
				st.since = minuteTime(m)
				st.agg.since = st.since
			}
		}
		e.cur.Store(m)
		return
	}
	// Corrections are expanded a day and a half ahead; roll the horizon
	// before closing slices that read them.
	e.refreshCorrectionsLocked(minuteTime(m), false)
	prune := m/60 != old/60
	for _, st := range e.slos {
		st.allSeries(func(s *series) {
			if v := s.live.Swap(0); v != 0 {
				c := unpack(v)
				s.ev.add(old, c.good, c.total)
			}
			st.closeSlices(s, m)
			if prune {
				s.ev.prune(m - e.retention)
				if st.sliceLen > 0 {
					s.sl.prune(floorDiv(m-e.retention, st.sliceLen))
				}
			}
		})
	}
	e.cur.Store(m)
}

// syncTo closes the minutes before now's, so that reads see closed slices.
func (e *Engine) syncTo(now time.Time) {
	if m := minuteOf(now); m > e.cur.Load() {
		e.advance(m)
	}
}

// Start loads the state from the store and starts the flush and
// evaluation loops. It returns once the state is loaded.
func (e *Engine) Start(ctx context.Context) error {
	now := time.Now()
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if e.done != nil {
		return errors.New("slo engine already started")
	}
	if err := e.load(ctx, now); err != nil {
		return err
	}
	e.evaluate(now)
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	e.done = make(chan struct{})
	go e.run(loopCtx)
	return nil
}

// load restores counts, corrections and alert states, and starts the
// windows' coverage where the store says counting began.
func (e *Engine) load(ctx context.Context, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advanceLocked(minuteOf(now))
	cur := e.cur.Load()
	for _, st := range e.slos {
		st.since = now
	}
	if e.store != nil {
		for _, st := range e.slos {
			since, err := e.store.TrackSLO(ctx, st.spec.Name, now)
			if err != nil {
				return fmt.Errorf("load SLO state: %w", err)
			}
			st.since = since
		}
		bs, err := e.store.LoadSLIBuckets(ctx, minuteTime(cur-e.retention))
		if err != nil {
			return fmt.Errorf("load SLI buckets: %w", err)
		}
		for _, b := range bs {
			st := e.byName[b.SLO]
			if st == nil {
				continue // an SLO no longer configured
			}
			s := st.agg
			if b.Group != "" {
				if st.groupBy == nil {
					continue
				}
				s = st.groups.Load().byValue[b.Group]
				if s == nil {
					s = st.newGroup(b.Group, b.Minute)
				}
			}
			s.ev.add(minuteOf(b.Minute), b.Good, b.Total)
		}
		cs, err := e.store.ListCorrections(ctx)
		if err != nil {
			return fmt.Errorf("load corrections: %w", err)
		}
		for _, c := range cs {
			if st := e.byName[c.SLO]; st != nil {
				st.corrections = append(st.corrections, c)
			}
		}
		ts, err := e.store.LatestAlertTransitions(ctx)
		if err != nil {
			return fmt.Errorf("load alert states: %w", err)
		}
		for _, t := range ts {
			e.restoreAlert(t)
		}
	}
	for _, st := range e.slos {
		st.agg.since = st.since
		st.allSeries(func(s *series) {
			if s.since.IsZero() || s.since.Before(st.since) {
				s.since = st.since
			}
			g, t := s.ev.at(cur)
			s.flushedMin, s.flushedG, s.flushedT, s.flushedInit = cur, g, t, true
			s.nextSlice = 0
			if first, ok := s.ev.first(); ok && st.sliceLen > 0 {
				s.nextSlice = floorDiv(first, st.sliceLen)
			}
		})
		st.ivsTo = time.Time{}
	}
	e.refreshCorrectionsLocked(now, true)
	return nil
}

func (e *Engine) restoreAlert(t Transition) {
	st := e.byName[t.SLO]
	if st == nil || t.To != Firing && t.To != Pending {
		return
	}
	i := slices.IndexFunc(st.rules, func(r rule) bool { return r.name == t.Alert })
	if i < 0 {
		return
	}
	s := st.agg
	if t.Group != "" {
		if st.groupBy == nil {
			return
		}
		if s = st.groups.Load().byValue[t.Group]; s == nil {
			s = st.newGroup(t.Group, t.At)
		}
	}
	a := &s.alerts[i]
	a.state, a.activeAt, a.lastTrue, a.changedAt, a.values = t.To, t.At, t.At, t.At, t.Values
	if t.To == Firing {
		a.firedAt = t.At
	}
}

func (e *Engine) run(ctx context.Context) {
	defer close(e.done)
	flush := time.NewTicker(e.cfg.FlushInterval.Std())
	defer flush.Stop()
	eval := time.NewTicker(e.cfg.EvalInterval.Std())
	defer eval.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			if err := e.flush(ctx, time.Now()); err != nil {
				if n := e.flushErrors.Add(1); n == 1 || n%60 == 0 {
					e.log.Warn("SLO flush failed; retrying", "err", err, "failures", n)
				}
			}
		case <-eval.C:
			now := time.Now()
			e.evaluate(now)
			e.pruneStore(ctx, now)
		}
	}
}

// Shutdown stops the loops and flushes what is not stored yet. It is
// idempotent.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.lifeMu.Lock()
	if e.stopped {
		e.lifeMu.Unlock()
		return nil
	}
	e.stopped = true
	cancel, done := e.cancel, e.done
	e.lifeMu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("stop SLO engine: %w", ctx.Err())
		}
	}
	if err := e.flush(ctx, time.Now()); err != nil {
		return fmt.Errorf("final SLO flush: %w", err)
	}
	return nil
}

// flush writes the counts and transitions not stored yet.
func (e *Engine) flush(ctx context.Context, now time.Time) error {
	if e.store == nil {
		return nil
	}
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.syncTo(now)

	type mark struct {
		s    *series
		g, t uint64
	}
	var (
		buckets []Bucket
		marks   []mark
	)
	e.mu.Lock()
	trans := e.unsaved
	e.unsaved = nil
	e.mu.Unlock()

	e.mu.RLock()
	cur := e.cur.Load()
	for _, st := range e.slos {
		st.allSeries(func(s *series) {
			live := unpack(s.live.Load())
			emit := func(k minute, g, t uint64) {
				if k == s.flushedMin {
					g, t = g-min(g, s.flushedG), t-min(t, s.flushedT)
				}
				if g != 0 || t != 0 {
					buckets = append(buckets, Bucket{SLO: st.spec.Name, Group: s.group, Minute: minuteTime(k), Good: g, Total: t})
				}
			}
			var curG, curT uint64
			seenCur := false
			for i := searchPoint(s.ev.pts, s.flushedMin); i < len(s.ev.pts); i++ {
				k := s.ev.pts[i].k
				g, t := s.ev.at(k)
				if k == cur {
					g, t, seenCur = g+live.good, t+live.total, true
					curG, curT = g, t
				}
				emit(k, g, t)
			}
			if !seenCur {
				curG, curT = live.good, live.total
				emit(cur, curG, curT)
			}
			marks = append(marks, mark{s, curG, curT})
		})
	}
	e.mu.RUnlock()

	var errs []error
	if len(buckets) > 0 {
		if err := e.store.AddSLIBuckets(ctx, buckets); err != nil {
			errs = append(errs, err)
			marks = nil
		}
	}
	for _, m := range marks {
		m.s.flushedMin, m.s.flushedG, m.s.flushedT = cur, m.g, m.t
	}
	if len(trans) > 0 {
		if err := e.store.AddAlertTransitions(ctx, trans); err != nil {
			errs = append(errs, err)
			e.mu.Lock()
			e.unsaved = append(trans, e.unsaved...)
			e.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// pruneStore drops stored buckets beyond retention, once an hour.
func (e *Engine) pruneStore(ctx context.Context, now time.Time) {
	if e.store == nil || now.Sub(e.lastPrune) < time.Hour {
		return
	}
	e.lastPrune = now
	if err := e.store.DeleteSLIBucketsBefore(ctx, minuteTime(minuteOf(now)-e.retention)); err != nil {
		e.log.Warn("prune SLI buckets", "err", err)
	}
}

// refreshCorrectionsLocked expands the corrections into minute intervals
// over the retained span and a day ahead, when the horizon nears or force
// is set, and recomputes time slices that they change.
func (e *Engine) refreshCorrectionsLocked(now time.Time, force bool) {
	for _, st := range e.slos {
		if !force && !st.ivsTo.IsZero() && now.Before(st.ivsTo.Add(-12*time.Hour)) {
			continue
		}
		from := minuteTime(minuteOf(now) - e.retention)
		to := now.Add(36 * time.Hour)
		ivs := expandCorrections(st.corrections, from, to)
		changed := !slices.Equal(ivs, st.ivs)
		st.ivs, st.ivsFrom, st.ivsTo = ivs, from, to
		if changed && st.sliceLen > 0 {
			st.allSeries(st.rebuildSlices)
		}
	}
}

// evaluate runs every alert rule at now and sends the notifications of
// the alerts that started firing or resolved.
func (e *Engine) evaluate(now time.Time) {
	start := time.Now()
	var notes []Notification
	e.mu.Lock()
	e.advanceLocked(minuteOf(now))
	e.refreshCorrectionsLocked(now, false)
	cur := e.cur.Load()
	var ms measure
	for _, st := range e.slos {
		if len(st.rules) == 0 {
			continue
		}
		eval := func(s *series) {
			st.measureSeries(s, now, cur, unpack(s.live.Load()), &ms)
			e.evalRules(st, s, &ms, now, &notes)
		}
		if st.groupBy == nil {
			eval(st.agg)
		} else {
			for _, s := range st.groups.Load().list {
				eval(s)
			}
		}
	}
	e.lastEval = now
	e.evalSeconds = time.Since(start).Seconds()
	e.mu.Unlock()
	for _, n := range notes {
		for _, nf := range e.notifiers {
			nf.Notify(n)
		}
	}
}

// evalRules steps each rule's state machine for one series. The alert's
// values are built only for alerts that are not inactive, so that an
// evaluation of quiet SLOs allocates nothing.
func (e *Engine) evalRules(st *sloState, s *series, ms *measure, now time.Time, notes *[]Notification) {
	rem, remOK := budgetRemaining(ms.whole.good, ms.whole.total, st.eb)
	for i := range st.rules {
		r := &st.rules[i]
		a := &s.alerts[i]
		var (
			c        bool
			bl, bs   float64
			okl, oks bool
			coverage = ms.whole.coverage
		)
		switch r.kind {
		case BurnRateAlert:
			l, sh := ms.win[r.longIdx], ms.win[r.shortIdx]
			bl, okl = burnRate(l.good, l.total, st.eb)
			bs, oks = burnRate(sh.good, sh.total, st.eb)
			coverage = l.coverage
			thr := r.burn * (1 - 1e-9) // a burn rate equal to the threshold fires despite rounding
			c = okl && oks && l.coverage >= st.minCoverage && bl >= thr && bs >= thr
		case BudgetExhaustedAlert:
			c = remOK && rem <= 0
		case BudgetLowAlert:
			c = remOK && rem < r.below
		case NoDataAlert:
			w := ms.win[r.longIdx]
			coverage = w.coverage
			c = w.total == 0 && w.coverage >= 1
		}
		from, to, changed := a.step(c, now, r)
		if a.state == Inactive && !changed {
			continue
		}
		v := AlertValues{BudgetRemaining: ptr(rem, remOK), Coverage: coverage}
		if r.kind == BurnRateAlert {
			v.Threshold, v.LongWindow, v.ShortWindow = r.burn, r.longLabel, r.shortLabel
			v.BurnRateLong, v.BurnRateShort = ptr(bl, okl), ptr(bs, oks)
		}
		a.values = v
		if !changed {
			continue
		}
		t := Transition{SLO: st.spec.Name, Service: st.spec.Service, Group: s.group, Alert: r.name, Kind: r.kind,
			Severity: r.severity, From: from, To: to, At: now, Values: v}
		e.recordLocked(t)
		lvl := slog.LevelInfo
		if to == Firing {
			lvl = slog.LevelWarn
		}
		e.log.Log(context.Background(), lvl, "SLO alert "+to.String(), "slo", st.spec.Name, "service", st.spec.Service,
			"group", s.group, "alert", r.name, "severity", r.severity.String())
		if to == Firing || to == Resolved {
			*notes = append(*notes, e.notification(st, s, i, ms, now))
		}
	}
}

func (e *Engine) recordLocked(t Transition) {
	if len(e.recent) >= recentTransitions {
		copy(e.recent, e.recent[1:])
		e.recent = e.recent[:len(e.recent)-1]
	}
	e.recent = append(e.recent, t)
	if e.store != nil {
		e.unsaved = append(e.unsaved, t)
	}
}

// notification builds the notification of rule i of series s.
func (e *Engine) notification(st *sloState, s *series, i int, ms *measure, now time.Time) Notification {
	var stt Status
	st.fill(ms, &stt)
	a := st.alertOf(s, i)
	n := Notification{
		Alert: a, Status: a.State, Objective: st.spec.Objective, Window: st.per.label,
		BurnRates: stt.BurnRates, BudgetRemaining: stt.BudgetRemaining, TimeToExhaustion: stt.TimeToExhaustion,
		Description: st.spec.Description, Labels: st.spec.Labels, At: now,
	}
	if e.baseURL != "" {
		n.Links = map[string]string{
			"slo":    e.baseURL + "/api/v1/slos/" + st.spec.Name,
			"alerts": e.baseURL + "/api/v1/alerts",
		}
	}
	return n
}

// alertOf returns rule i's alert on series s.
func (st *sloState) alertOf(s *series, i int) Alert {
	r := &st.rules[i]
	a := &s.alerts[i]
	out := Alert{SLO: st.spec.Name, Service: st.spec.Service, Group: s.group, Name: r.name, AlertName: r.kind.AlertName(),
		Kind: r.kind, Severity: r.severity, State: a.state, ActiveAt: a.activeAt, FiredAt: a.firedAt, Values: a.values}
	if a.state == Resolved {
		out.ResolvedAt = a.changedAt
	}
	out.Summary = r.summary(st, &a.values)
	return out
}

// activeAlerts appends the pending and firing alerts of an SLO.
func (st *sloState) activeAlerts(dst []Alert) []Alert {
	st.allSeries(func(s *series) {
		for i := range s.alerts {
			if s.alerts[i].state == Pending || s.alerts[i].state == Firing {
				dst = append(dst, st.alertOf(s, i))
			}
		}
	})
	return dst
}

// Status returns an SLO's state at now.
func (e *Engine) Status(name string, now time.Time) (Status, bool) {
	st := e.byName[name]
	if st == nil {
		return Status{}, false
	}
	e.syncTo(now)
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.statusLocked(st, now), true
}

// List returns every SLO's state at now, in configuration order.
func (e *Engine) List(now time.Time) []Status {
	e.syncTo(now)
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]Status, 0, len(e.slos))
	for _, st := range e.slos {
		out = append(out, e.statusLocked(st, now))
	}
	return out
}

// ServiceStatus returns the states at now of the SLOs of one service (what
// the release gate reads), in configuration order.
func (e *Engine) ServiceStatus(service string, now time.Time) []Status {
	plan := e.byService[service]
	if plan == nil {
		return nil
	}
	slos := plan.slos
	e.syncTo(now)
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]Status, 0, len(slos))
	for _, st := range slos {
		out = append(out, e.statusLocked(st, now))
	}
	return out
}

// Specs returns the specs the engine runs.
func (e *Engine) Specs() []Spec {
	out := make([]Spec, len(e.slos))
	for i, st := range e.slos {
		out[i] = st.spec
	}
	return out
}

func (e *Engine) statusLocked(st *sloState, now time.Time) Status {
	cur := e.cur.Load()
	out := Status{
		Name: st.spec.Name, Service: st.spec.Service, Description: st.spec.Description, Objective: st.spec.Objective,
		Window: st.per.label, BudgetingMethod: st.method.String(), SLIKind: st.kind.String(),
		TrackedSince: st.since, EvaluatedAt: now, AlertsEvaluatedAt: e.lastEval,
	}
	if st.kind == Latency {
		out.Threshold = st.spec.SLI.Threshold.String()
	}
	var ms measure
	st.measureSeries(st.agg, now, cur, unpack(st.agg.live.Load()), &ms)
	st.fill(&ms, &out)
	out.Alerts = st.activeAlerts([]Alert{})
	if t, ok := lastEvent(st.agg, cur); ok {
		out.LastEventAt = &t
	}
	if st.groupBy != nil {
		for _, s := range st.groups.Load().list {
			var gm measure
			st.measureSeries(s, now, cur, unpack(s.live.Load()), &gm)
			var gs Status
			st.fill(&gm, &gs)
			out.Groups = append(out.Groups, GroupStatus{Group: s.group, Good: gs.Good, Total: gs.Total, SLI: gs.SLI,
				BudgetRemaining: gs.BudgetRemaining, BurnRates: gs.BurnRates, Coverage: gs.Coverage})
		}
	}
	a := minuteOf(out.WindowStart)
	m := minuteOf(now)
	for _, c := range st.corrections {
		var ex cnt
		c.Occurrences(out.WindowStart, now, func(s, e time.Time) {
			em := minuteOf(e)
			if !minuteTime(em).Equal(e) {
				em++
			}
			x := st.agg.raw(max(a, minuteOf(s)), min(m+1, em), cur, unpack(st.agg.live.Load()))
			ex.good += x.good
			ex.total += x.total
		})
		hit := false
		c.Occurrences(out.WindowStart, now.Add(24*time.Hour), func(time.Time, time.Time) { hit = true })
		if hit {
			out.Corrections = append(out.Corrections, CorrectionSummary{Correction: c, ExcludedGood: ex.good, ExcludedTotal: ex.total})
		}
	}
	if st.method == Occurrences && st.eb > 0 && out.Total > 0 && st.eb*out.Total < 10 {
		out.Warnings = append(out.Warnings, fmt.Sprintf(
			"low traffic: %.0f requests in the window allow %.2f bad ones, so one failure spends %.0f%% of the error budget",
			out.Total, st.eb*out.Total, 100/(st.eb*out.Total)))
	}
	return out
}

func lastEvent(s *series, cur minute) (time.Time, bool) {
	if unpack(s.live.Load()).total > 0 {
		return minuteTime(cur), true
	}
	if k, ok := s.ev.last(); ok {
		return minuteTime(k), true
	}
	return time.Time{}, false
}

// Alerts returns every pending or firing alert at now.
func (e *Engine) Alerts() []Alert {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := []Alert{}
	for _, st := range e.slos {
		out = st.activeAlerts(out)
	}
	return out
}

// Transitions returns the most recent alert transitions kept in memory,
// newest first, of one SLO when slo is not empty.
func (e *Engine) Transitions(slo string, limit int) []Transition {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := []Transition{}
	for i := len(e.recent) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if slo == "" || e.recent[i].SLO == slo {
			out = append(out, e.recent[i])
		}
	}
	return out
}

// maxHistoryPoints bounds a history query.
const maxHistoryPoints = 11000

// History returns an SLO's SLI, budget remaining and burn rates from from
// to to every step (at least a minute), as they were at each instant.
func (e *Engine) History(name string, from, to time.Time, step time.Duration, now time.Time) ([]HistoryPoint, error) {
	st := e.byName[name]
	if st == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownSLO, name)
	}
	if step < time.Minute {
		return nil, fmt.Errorf("%w: step must be at least 1m, got %s", ErrInvalid, step)
	}
	if to.After(now) {
		to = now
	}
	if to.Before(from) {
		return nil, fmt.Errorf("%w: from must not be after to", ErrInvalid)
	}
	if n := to.Sub(from) / step; n >= maxHistoryPoints {
		return nil, fmt.Errorf("%w: %d points exceed the limit of %d; raise step", ErrInvalid, n+1, maxHistoryPoints)
	}
	e.syncTo(now)
	e.mu.RLock()
	defer e.mu.RUnlock()
	cur := e.cur.Load()
	live := unpack(st.agg.live.Load())
	var ms measure
	out := []HistoryPoint{}
	for t := from; !t.After(to); t = t.Add(step) {
		st.measureSeries(st.agg, t, cur, live, &ms)
		var s Status
		st.fill(&ms, &s)
		out = append(out, HistoryPoint{Time: t, Good: s.Good, Total: s.Total, SLI: s.SLI, BudgetRemaining: s.BudgetRemaining, BurnRates: s.BurnRates})
	}
	return out, nil
}

// Corrections returns an SLO's corrections.
func (e *Engine) Corrections(name string) ([]Correction, error) {
	st := e.byName[name]
	if st == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownSLO, name)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return append([]Correction{}, st.corrections...), nil
}

// AddCorrection validates and stores a correction and applies it at once,
// to past events too. now stamps CreatedAt when unset.
func (e *Engine) AddCorrection(ctx context.Context, c Correction, now time.Time) (Correction, error) {
	st := e.byName[c.SLO]
	if st == nil {
		return Correction{}, fmt.Errorf("%w %q", ErrUnknownSLO, c.SLO)
	}
	c.Source = SourceAPI
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if err := c.Validate(); err != nil {
		return Correction{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if e.store != nil {
		stored, err := e.store.AddCorrection(ctx, c)
		if err != nil {
			return Correction{}, fmt.Errorf("store correction: %w", err)
		}
		c = stored
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.store == nil {
		e.nextID++
		c.ID = e.nextID
	}
	st.corrections = append(st.corrections, c)
	st.ivsTo = time.Time{}
	e.refreshCorrectionsLocked(now, false)
	return c, nil
}

// DeleteCorrection removes a correction added through the API.
func (e *Engine) DeleteCorrection(ctx context.Context, slo string, id int64, now time.Time) error {
	st := e.byName[slo]
	if st == nil {
		return fmt.Errorf("%w %q", ErrUnknownSLO, slo)
	}
	e.mu.RLock()
	i := slices.IndexFunc(st.corrections, func(c Correction) bool { return c.ID == id && c.Source == SourceAPI })
	e.mu.RUnlock()
	if i < 0 {
		return fmt.Errorf("%w %d of SLO %q", ErrUnknownCorrection, id, slo)
	}
	if e.store != nil {
		if _, err := e.store.DeleteCorrection(ctx, slo, id); err != nil {
			return fmt.Errorf("delete correction: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st.corrections = slices.DeleteFunc(st.corrections, func(c Correction) bool { return c.ID == id && c.Source == SourceAPI })
	st.ivsTo = time.Time{}
	e.refreshCorrectionsLocked(now, false)
	return nil
}
