package signals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// Settings are the dependencies of Signals.
type Settings struct {
	Logger *slog.Logger
	// Registerer receives the RED metrics and tailgate_signals_* metrics;
	// nil registers nothing.
	Registerer prometheus.Registerer
	// Store keeps minute buckets and error origins. Required.
	Store Store
	// Checkpoint, with a Store that is a MarkedStore, makes every flush
	// store the write-ahead log mark its buckets include (see Flush).
	Checkpoint wal.Checkpoint
	// Leader, when set, says whether this instance is the fleet's
	// leader: only the leader rolls up and expires the shared store's
	// rows. nil: always.
	Leader func() bool
}

// MarkedStore stores buckets together with the write-ahead log mark they
// include, in one transaction.
type MarkedStore interface {
	AppendSignalBucketsMarked(ctx context.Context, buckets []Bucket, mark wal.Mark) error
}

// WALConsumer is the name of the golden signals' mark in the store.
const WALConsumer = "signals"

// ErrNoStore is returned by New without a Store.
var ErrNoStore = errors.New("signals: a store is required")

// Signals computes golden signals, guards metric cardinality and records
// error origins. Observe and ObserveTrace are safe for concurrent use, as
// are the read methods.
type Signals struct {
	cfg      Config
	log      *slog.Logger
	store    Store
	lateness int64 // ns
	leader   func() bool
	cp       wal.Checkpoint
	// cuts are the recent write-ahead log cuts of the flushes, oldest
	// first (see flush); fullPos is the cut of the last flush of every
	// minute (FlushAll): every record up to it is stored whole. Guarded by
	// viewMu.
	cuts    []walCut
	fullPos uint64

	labels     []labelSpec
	attrLabels bool     // some label is read from attributes
	bounds     []uint64 // histogram bounds in ns
	descs      descs
	stride     uint64 // one span in stride has its attributes read in full

	// viewMu keeps reads consistent with flushes: a flush holds it while it
	// moves buckets from memory to the store, so a read never sees a bucket
	// twice or not at all.
	viewMu sync.RWMutex

	mu sync.Mutex
	st state

	// originMu guards orig. It is apart from mu so that the sampler's
	// shards, which call ObserveTrace as they decide, never wait for an
	// ingest request in Observe (which holds mu for the whole request).
	// Lock order: mu, then originMu.
	originMu sync.Mutex
	orig     originState
	// originScratch holds *originScratch: the error-origin analysis's
	// memory, one per shard deciding at once.
	originScratch sync.Pool

	lifeMu  sync.Mutex
	running bool
	stopped bool
	stop    chan struct{}
	done    chan struct{}
}

// state is everything Observe changes; guarded by Signals.mu.
type state struct {
	services map[string]*service
	other    *service // services beyond MaxServices

	// scratch space of Observe, reused across requests
	resSvc   []*service
	resSpans []uint64
	scratch  []byte

	series    seriesTable
	denseLeft int // dense HyperLogLog sketches that may still be allocated
	freeAggs  []*minuteAgg

	cardSince, prevSince time.Time

	// rows whose write failed, retried at the next flush
	retryBuckets []Bucket
	retryOrigins []OriginRow

	lastMaintenance time.Time

	rng uint64 // xorshift state of the attribute sampling

	c counters
}

// counters are the tailgate_signals_* metrics.
type counters struct {
	spans, entrySpans, lateSpans uint64
	opsFolded, servicesFolded    uint64
	seriesOverflow               uint64
	untrackedKeys                uint64
	denseRefused                 uint64
	bucketsWritten, flushErrors  uint64
	rowsDropped                  uint64
}

// originState is the error origins recorded since the last flush, and
// their metrics; guarded by Signals.originMu.
type originState struct {
	pending                     map[originKey]*originAgg
	errorTraces, failedRequests uint64
	keysFolded                  uint64
	late                        uint64 // failed requests counted at analysis
}

// service is the state of one service.
type service struct {
	name    string
	ops     map[string]*operation
	opCache map[string]*operation // raw route or name -> operation
	// opFast is a small direct-mapped cache in front of opCache, indexed by
	// nameFingerprint: a comparison instead of a map lookup for the
	// service's busiest operations.
	opFast [16]opFastEntry
	other  *operation // operations beyond the limit
	folded bool       // this is the "other" service

	spanKeys, resKeys keyTable
	spans             uint64 // spans in the current cardinality window
	prevSpans         uint64
	fullReads         int   // spans still to read in full this window (fullReadsPerWindow)
	lastSeen          int64 // unix ns of the last span
}

type opFastEntry struct {
	raw string
	op  *operation
}

// operation is the state of one operation of a service.
type operation struct {
	svc      *service
	name     string
	folded   bool // the "other" operation
	cur      *minuteAgg
	aggs     []*minuteAgg // minutes not yet written, cur among them
	lastSeen int64

	seriesGen uint64
	series    [numStatusClasses * 2]*series // cache for built-in labels
}

// minuteAgg is one operation's signals over one minute.
type minuteAgg struct {
	minute units.Minute
	errors uint64
	sketch Sketch // durations; count and sum included
}

// New returns Signals ready to Observe; Start begins writing to the store.
func New(cfg Config, set Settings) (*Signals, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("signals config: %w", err)
	}
	if set.Store == nil {
		return nil, ErrNoStore
	}
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Signals{
		cfg:      cfg,
		log:      set.Logger,
		store:    set.Store,
		leader:   set.Leader,
		cp:       set.Checkpoint,
		lateness: int64(cfg.MaxLateness.Std()),
		stride:   sampleStride,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, l := range cfg.Labels {
		s.labels = append(s.labels, labelSpec{key: l, name: labelName(l), builtin: isBuiltinLabel(l)})
		if !isBuiltinLabel(l) {
			s.attrLabels = true
		}
	}
	for _, b := range cfg.HistogramBuckets {
		s.bounds = append(s.bounds, uint64(math.Round(b*1e9)))
	}
	s.descs = newDescs(s.labels)
	s.orig.pending = map[originKey]*originAgg{}
	s.originScratch.New = func() any { return new(originScratch) }
	s.st = state{
		services:  map[string]*service{},
		series:    newSeriesTable(cfg.SeriesLimit, len(s.bounds)),
		denseLeft: int(cfg.Cardinality.MaxMemory) / hllRegisters,
		rng:       0x9e3779b97f4a7c15,
	}
	if set.Registerer != nil {
		if err := set.Registerer.Register(s); err != nil {
			return nil, fmt.Errorf("register signals metrics: %w", err)
		}
	}
	return s, nil
}

// Observe counts the spans of an accepted request: golden signals of entry
// spans, /metrics series, and attribute cardinality. It must see every
// accepted span, before sampling, and does not keep req or any slice of it.
func (s *Signals) Observe(req *otlp.Request, now time.Time) { s.observe(req, now, 0) }

// ObserveFrom observes a request replayed from the write-ahead log: like
// Observe, but requests that end in a minute before from are skipped
// (their counts are stored already).
func (s *Signals) ObserveFrom(req *otlp.Request, now time.Time, from units.Minute) {
	s.observe(req, now, from)
}

func (s *Signals) observe(req *otlp.Request, now time.Time, from units.Minute) {
	if len(req.Spans) == 0 {
		return
	}
	nowNs := now.UnixNano()
	clock := units.NewEventClock(now, time.Duration(s.lateness))
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.st
	if st.cardSince.IsZero() {
		st.cardSince = now
	}
	nres := len(req.Resources)
	if cap(st.resSvc) < nres {
		st.resSvc = make([]*service, nres)
		st.resSpans = make([]uint64, nres)
	}
	st.resSvc, st.resSpans = st.resSvc[:nres], st.resSpans[:nres]
	clear(st.resSvc)
	clear(st.resSpans)
	st.c.spans += uint64(len(req.Spans))
	for i := range req.Spans {
		sp := &req.Spans[i]
		ri := req.Scopes[sp.Scope].Resource
		svc := st.resSvc[ri]
		if svc == nil {
			svc = s.service(req.Resources[ri].ServiceName)
			st.resSvc[ri] = svc
		}
		st.resSpans[ri]++
		attrs := req.SpanAttrs(sp)
		s.observeSpanAttrs(svc, attrs, sp.Name())
		if sp.Kind.IsEntry() {
			if from != 0 {
				if m, _ := clock.Minute(sp.EndUnixNano); m < from {
					continue
				}
			}
			s.observeEntry(svc, sp, attrs, req.ResourceAttrs(&req.Resources[ri]), nowNs, clock)
		}
	}
	for ri, svc := range st.resSvc {
		if svc == nil {
			continue
		}
		n := st.resSpans[ri]
		svc.spans += n
		svc.lastSeen = nowNs
		s.observeAttrs(&svc.resKeys, req.ResourceAttrs(&req.Resources[ri]), n, 1)
	}
}

// service returns the state of a service, creating it within the limit.
func (s *Signals) service(name string) *service {
	if svc, ok := s.st.services[name]; ok {
		return svc
	}
	if name == "" {
		if svc, ok := s.st.services[UnknownService]; ok {
			return svc
		}
		name = UnknownService
	}
	if len(s.st.services) >= s.cfg.MaxServices {
		if s.st.other == nil {
			s.st.other = s.newService(OtherService)
			s.st.other.folded = true
			s.log.Warn("service limit reached; further services are counted as \"other\"",
				"limit", s.cfg.MaxServices)
		}
		return s.st.other
	}
	svc := s.newService(name)
	s.st.services[name] = svc
	return svc
}

func (s *Signals) newService(name string) *service {
	return &service{
		name:      name,
		ops:       map[string]*operation{},
		opCache:   map[string]*operation{},
		fullReads: fullReadsPerWindow,
	}
}

// observeEntry counts one request, in the minute of its end time (see
// units.EventClock for the spans that count in now's minute instead);
// attrs are the span's attributes, resAttrs its resource's.
func (s *Signals) observeEntry(svc *service, sp *otlp.Span, attrs, resAttrs otlp.Attrs, nowNs int64, clock units.EventClock) {
	st := &s.st
	st.c.entrySpans++
	op := s.operation(svc, sp)
	if op.folded {
		st.c.opsFolded++
	}
	if svc.folded {
		st.c.servicesFolded++
	}
	op.lastSeen = nowNs
	minute, late := clock.Minute(sp.EndUnixNano)
	if late {
		st.c.lateSpans++
	}
	agg := op.cur
	if agg == nil || agg.minute != minute {
		agg = s.agg(op, minute)
	}
	var dur uint64
	if sp.EndUnixNano > sp.StartUnixNano {
		dur = sp.EndUnixNano - sp.StartUnixNano
	}
	bad := sp.Bad()
	agg.sketch.Add(dur)
	class := statusClassOf(sp, bad)
	var ser *series
	if s.attrLabels {
		ser = s.seriesFor(op, sp, attrs, resAttrs, class)
	} else {
		k := int(class)*2 + kindIndex(sp.Kind)
		if op.seriesGen != st.series.gen {
			op.series = [len(op.series)]*series{}
			op.seriesGen = st.series.gen
		}
		ser = op.series[k]
		if ser == nil {
			ser = s.seriesFor(op, sp, attrs, resAttrs, class)
			op.series[k] = ser
		}
	}
	ser.count++
	ser.sum += dur
	ser.lastSeen = nowNs
	b := 0
	for b < len(s.bounds) && dur > s.bounds[b] {
		b++
	}
	ser.buckets[b]++
	if bad {
		agg.errors++
		ser.errors++
	}
	if ser.overflow {
		st.c.seriesOverflow++
	}
}

// operation returns the operation of an entry span, creating it within the
// service's limit.
func (s *Signals) operation(svc *service, sp *otlp.Span) *operation {
	raw := sp.Route()
	if raw == nil {
		raw = sp.Name()
	}
	fast := &svc.opFast[nameFingerprint(raw)&15]
	if fast.op != nil && fast.raw == string(raw) {
		return fast.op
	}
	if op, ok := svc.opCache[string(raw)]; ok {
		if fast.op == nil {
			*fast = opFastEntry{raw: string(raw), op: op}
		}
		return op
	}
	s.st.scratch = appendNormalized(s.st.scratch[:0], raw)
	op, ok := svc.ops[string(s.st.scratch)]
	if !ok {
		if len(svc.ops) >= s.cfg.MaxOperationsPerService {
			if svc.other == nil {
				svc.other = &operation{svc: svc, name: OtherOperation, folded: true}
				s.log.Warn("operation limit reached; further operations are counted as \"other\"",
					"service", svc.name, "limit", s.cfg.MaxOperationsPerService)
			}
			op = svc.other
		} else {
			op = &operation{svc: svc, name: string(s.st.scratch)}
			svc.ops[op.name] = op
		}
	}
	// The cache holds raw names that map to an operation; it is bounded, and
	// emptied with each cardinality window, so a flood of raw URLs costs a
	// normalisation per span but no memory.
	if len(svc.opCache) < 4*s.cfg.MaxOperationsPerService {
		svc.opCache[string(raw)] = op
	}
	return op
}

// agg returns the op's aggregate of a minute, creating it.
func (s *Signals) agg(op *operation, minute units.Minute) *minuteAgg {
	for _, a := range op.aggs {
		if a.minute == minute {
			op.cur = a
			return a
		}
	}
	var a *minuteAgg
	if n := len(s.st.freeAggs); n > 0 {
		a = s.st.freeAggs[n-1]
		s.st.freeAggs = s.st.freeAggs[:n-1]
	} else {
		a = &minuteAgg{}
	}
	a.minute = minute
	op.aggs = append(op.aggs, a)
	op.cur = a
	return a
}

// releaseAggs returns written aggregates to the free list.
func (s *Signals) releaseAggs(aggs []takenAgg) {
	const maxFree = 4096
	for _, t := range aggs {
		if len(s.st.freeAggs) >= maxFree {
			return
		}
		t.agg.errors = 0
		t.agg.sketch.Reset()
		s.st.freeAggs = append(s.st.freeAggs, t.agg)
	}
}

// takenAgg is a minute aggregate moved out of memory to be written.
type takenAgg struct {
	service, operation string
	agg                *minuteAgg
}

// takeAggs removes the aggregates of minutes that ended at or before
// cutoff, or all of them.
func (s *Signals) takeAggs(cutoff time.Time, all bool) []takenAgg {
	var out []takenAgg
	take := func(op *operation) {
		kept := op.aggs[:0]
		for _, a := range op.aggs {
			if all || !(a.minute + 1).Time().After(cutoff) {
				out = append(out, takenAgg{op.svc.name, op.name, a})
				if op.cur == a {
					op.cur = nil
				}
				continue
			}
			kept = append(kept, a)
		}
		clear(op.aggs[len(kept):])
		op.aggs = kept
	}
	s.forEachService(func(svc *service) {
		for _, op := range svc.ops {
			take(op)
		}
		if svc.other != nil {
			take(svc.other)
		}
	})
	return out
}

func (s *Signals) forEachService(fn func(*service)) {
	for _, svc := range s.st.services {
		fn(svc)
	}
	if s.st.other != nil {
		fn(s.st.other)
	}
}
