package sampler

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// freeTraces bounds the recycled Trace structs a shard keeps.
const freeTraces = 1024

// maxInternedServices bounds a shard's service-name intern table.
const maxInternedServices = 10000

// shard owns the traces whose IDs hash to it. All its fields except the
// inbox and the published gauges are touched only by its goroutine (or by
// Shutdown when the sampler never started).
type shard struct {
	s   *Sampler
	idx int

	traces   map[otlp.TraceID]*Trace
	wheel    *wheel
	cache    *decisionCache
	services map[string]string
	groups   groupTable
	free     []*Trace

	wait, grace        int64
	maxSpans, maxBytes int64
	ntraces, nspans    int64
	nbytes             int64

	enc      otlp.Encoder
	sc       scratch
	out      []byte
	outSpans int
	raws     [][]byte
	full     []byte // span encodings with their trace IDs put back, for export
	counts   []int32
	order    []int32
	touched  []*Trace
	ins      []insertion
	recent   [recentTraces]*Trace // traces found in the current batch, by hash
	lastErr  int64                // unix nanos of the last export error logged

	// Under the push_back policy: overMode is set while the buffer is over
	// its limits; dirty then lists the traces that got spans since they
	// were last checked for a final verdict (see policy.final); over is
	// what Consume sees (through Sampler.overShards).
	overMode bool
	over     bool
	dirty    []*Trace

	gTraces, gSpans, gBytes, gCache atomic.Int64
	gOut                            atomic.Int64 // kept spans not yet handed to the exporter

	inMu      sync.Mutex
	inserting bool // drain holds batches taken from the inbox (under inMu)
	inbox     []*batch
	inSpans   int   // spans in inbox
	inBytes   int64 // their bytes
	wakeSpans int   // inSpans that wake the shard before its next tick
	spare     []*batch
	notify    chan struct{}
	tick      chan time.Time
	snap      chan snapRequest
}

func newShard(s *Sampler, idx, n int, shape bloomShape, now int64) *shard {
	cfg := &s.cfg
	horizon := max(int64(cfg.DecisionWait), int64(cfg.RootGrace))
	dc := cfg.DecisionCache
	return &shard{
		s:        s,
		idx:      idx,
		traces:   make(map[otlp.TraceID]*Trace),
		wheel:    newWheel(int64(cfg.Tick), horizon, now),
		cache:    newDecisionCache(dc.TTL.Std(), ceilDiv(dc.MaxKeptTraces, n), ceilDiv(dc.MaxDroppedTraces, n), shape, now),
		services: make(map[string]string),
		groups:   newGroupTable(),
		wait:     int64(cfg.DecisionWait),
		grace:    int64(cfg.RootGrace),
		maxSpans: int64(ceilDiv(cfg.MaxBufferedSpans, n)),
		maxBytes: int64(cfg.MaxBufferedBytes) / int64(n),
		// A quarter of the shard's share of the intake: a burst wakes it
		// well before the intake fills and Consume refuses requests.
		wakeSpans: min(maxWakeSpans, max(1, cfg.IntakeSpans/(4*n))),
		notify:    make(chan struct{}, 1),
		tick:      make(chan time.Time, 1),
		snap:      make(chan snapRequest, 1),
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// maxWakeSpans bounds the spans a shard's inbox holds before it is woken.
const maxWakeSpans = 4096

// enqueue hands a batch to the shard; it never blocks for long (the intake
// bound was checked by Consume). The shard inserts its inbox at its next
// tick, or at once when the inbox holds wakeSpans spans: at a modest rate
// a request then costs no goroutine wake-up of its own (enqueue's were
// 2.5% of the daemon's CPU in a profile of BenchmarkE2E's warm load), and
// a burst is still inserted as it comes. A trace's deadline counts from
// its batch's arrival, and a tick inserts before it decides, so no span
// that arrived before a decision misses it.
func (sh *shard) enqueue(b *batch) {
	sh.inMu.Lock()
	sh.inbox = append(sh.inbox, b)
	sh.inSpans += len(b.spans)
	sh.inBytes += int64(len(b.buf))
	wake := sh.inSpans >= sh.wakeSpans ||
		// Near the buffer's limits, the overload policy acts on every
		// request, as it would without the inbox.
		2*(sh.gSpans.Load()+int64(sh.inSpans)) >= sh.maxSpans ||
		2*(sh.gBytes.Load()+sh.inBytes) >= sh.maxBytes
	sh.inMu.Unlock()
	sh.s.rouse()
	if !wake {
		return
	}
	select {
	case sh.notify <- struct{}{}:
	default:
	}
}

func (sh *shard) run() {
	for {
		select {
		case <-sh.s.stop:
			sh.finish(sh.s.now().UnixNano())
			return
		case <-sh.notify:
			sh.drain()
		case t := <-sh.tick:
			sh.onTick(t.UnixNano())
		case r := <-sh.snap:
			kept, filters := sh.snapshotPart(r.now, true)
			r.out <- snapshotPart{kept: kept, filters: filters}
		}
	}
}

// drain inserts every queued batch, relieving stress after each.
func (sh *shard) drain() {
	sh.inMu.Lock()
	batches := sh.inbox
	sh.inbox = sh.spare[:0]
	sh.inSpans, sh.inBytes = 0, 0
	sh.inserting = len(batches) > 0
	sh.inMu.Unlock()
	for i, b := range batches {
		sh.insert(b)
		n := len(b.spans)
		at := b.at
		b.reset()
		sh.s.batchPool.Put(b)
		batches[i] = nil
		sh.s.intake.Add(-int64(n))
		sh.relieve(at)
	}
	sh.spare = batches[:0]
	sh.publish()
	if sh.inserting {
		sh.inMu.Lock()
		sh.inserting = false
		sh.inMu.Unlock()
	}
}

// idle reports, from another goroutine, whether a tick would find no
// work but the upkeep: no trace buffered, nothing in the inbox or being
// inserted from it, no kept spans waiting for the exporter. drain marks
// the batches it takes under the inbox's lock and publishes its counts
// before it clears the mark, so no batch is missed between the two.
func (sh *shard) idle() bool {
	if sh.gTraces.Load() != 0 || sh.gOut.Load() != 0 {
		return false
	}
	sh.inMu.Lock()
	defer sh.inMu.Unlock()
	return len(sh.inbox) == 0 && !sh.inserting
}

func (sh *shard) publish() {
	sh.gOut.Store(int64(sh.outSpans))
	sh.gTraces.Store(sh.ntraces)
	sh.gSpans.Store(sh.nspans)
	sh.gBytes.Store(sh.nbytes)
}

// recentTraces is the size of the direct-mapped cache of the current
// batch's traces: a request's spans come grouped by resource, so a trace's
// spans are met in several runs, and the cache spares the map lookup of
// all but the first.
const recentTraces = 64

func recentSlot(id *otlp.TraceID) int {
	h := binary.LittleEndian.Uint64(id[0:8]) ^ binary.LittleEndian.Uint64(id[8:16])
	return int((h * 0x9e3779b97f4a7c15) >> 58) // 6 bits: recentTraces
}

// insertion is a trace's scratch while a batch is inserted (kept out of
// Trace, which would otherwise carry it for its whole life).
type insertion struct {
	tr         *Trace
	pending    uint32 // bytes to append from the batch
	pendingN   uint32 // spans to append from the batch
	batchGroup int32  // the batch group of the last span appended, or -1
	traceGroup uint16 // its index in tr.groups
}

// insertionOf returns tr's entry in ins, adding one when tr has none yet
// for this batch.
func (sh *shard) insertionOf(tr *Trace) *insertion {
	if i := int(tr.ins); i < len(sh.ins) && sh.ins[i].tr == tr {
		return &sh.ins[i]
	}
	tr.ins = int32(len(sh.ins))
	sh.ins = append(sh.ins, insertion{tr: tr, batchGroup: -1})
	return &sh.ins[tr.ins]
}

// insert moves a batch's spans into their traces. The first pass finds (or
// creates) each span's trace and sums the bytes it will add, so the second
// pass grows each trace's arena and records at most once per batch.
func (sh *shard) insert(b *batch) {
	sh.groups.index(b)
	now := b.at
	touched := sh.touched[:0]
	var last *Trace
	for i := range b.spans {
		in := &b.spans[i]
		tr := last
		if tr == nil || tr.id != in.traceID {
			slot := recentSlot(&in.traceID)
			if tr = sh.recent[slot]; tr == nil || tr.id != in.traceID {
				tr = sh.traces[in.traceID]
			}
			if tr == nil {
				if sh.late(b, in) {
					touched = append(touched, nil)
					last = nil
					continue
				}
				tr = sh.newTrace(in.traceID, now)
			}
			sh.recent[slot] = tr
			last = tr
		}
		p := sh.insertionOf(tr)
		p.pending += in.size
		p.pendingN++
		touched = append(touched, tr)
	}
	for i := range b.spans {
		tr := touched[i]
		if tr == nil {
			continue
		}
		in := &b.spans[i]
		if tr.decided {
			// Decided during this batch (it outgrew a trace's bounds).
			sh.lateDecided(b, in)
			continue
		}
		p := &sh.ins[tr.ins]
		if p.pendingN > 0 && !sh.grow(tr, p, now) {
			sh.lateDecided(b, in)
			continue
		}
		if p.batchGroup != int32(in.rec.group) {
			idx, ok := sh.findGroup(tr, in.rec.group)
			if !ok {
				if len(tr.groups) >= maxTraceGroups {
					sh.decide(tr, now, TriggerSize)
					sh.lateDecided(b, in)
					continue
				}
				idx = sh.addGroup(tr, b, in.rec.group)
			}
			p.batchGroup, p.traceGroup = int32(in.rec.group), uint16(idx)
		}
		sh.appendSpan(tr, b, in, p.traceGroup, now)
	}
	clear(touched)
	sh.touched = touched[:0]
	clear(sh.ins)
	sh.ins = sh.ins[:0]
	clear(sh.recent[:]) // its traces may be decided and recycled before the next batch
}

// grow makes room in tr for the spans of the current batch; it returns
// false (after deciding the trace) when the trace would be too large.
func (sh *shard) grow(tr *Trace, p *insertion, now int64) bool {
	need := len(tr.arena) + int(p.pending)
	if need > maxTraceBytes {
		sh.decide(tr, now, TriggerSize)
		return false
	}
	before := tr.memBytes()
	switch {
	case len(tr.arena) == 0 && (cap(tr.arena) < need || cap(tr.arena) > need+need/4+64):
		// A new trace (or a recycled arena that does not fit): exact size.
		tr.arena = make([]byte, 0, need)
	case need > cap(tr.arena):
		a := make([]byte, len(tr.arena), growTo(cap(tr.arena), need))
		copy(a, tr.arena)
		tr.arena = a
	}
	needN := len(tr.spans) + int(p.pendingN)
	switch {
	case len(tr.spans) == 0 && (cap(tr.spans) < needN || cap(tr.spans) > needN+needN/4+2):
		tr.spans = make([]spanRec, 0, needN)
	case needN > cap(tr.spans):
		r := make([]spanRec, len(tr.spans), growTo(cap(tr.spans), needN))
		copy(r, tr.spans)
		tr.spans = r
	}
	p.pending, p.pendingN, p.batchGroup = 0, 0, -1
	sh.nbytes += int64(tr.memBytes() - before)
	return true
}

// findGroup looks for batch group g among tr's groups.
func (sh *shard) findGroup(tr *Trace, g uint16) (int, bool) {
	sg := sh.groups.lookup(g)
	if sg == nil {
		return 0, false
	}
	for i := range tr.groups {
		if tr.groups[i].sharedGroup == sg {
			return i, true
		}
	}
	return 0, false
}

// addGroup gives tr a reference to batch group g, shared with every other
// trace of the shard under the same resource and scope.
func (sh *shard) addGroup(tr *Trace, b *batch, g uint16) int {
	before := tr.memBytes()
	shared, added := sh.groups.acquireBatch(g)
	sh.nbytes += int64(added)
	if added > 0 {
		// The service name is a function of the resource, so of the key.
		shared.service = sh.intern(b.groups[g].service.in(b.buf))
	}
	tg := group{sharedGroup: shared}
	if len(tr.groups) == cap(tr.groups) {
		gs := make([]group, len(tr.groups), max(2*cap(tr.groups), 2))
		copy(gs, tr.groups)
		tr.groups = gs
	}
	tr.groups = append(tr.groups, tg)
	sh.nbytes += int64(tr.memBytes() - before)
	return len(tr.groups) - 1
}

func (sh *shard) intern(b []byte) string {
	if s, ok := sh.services[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(sh.services) < maxInternedServices {
		sh.services[s] = s
	}
	return s
}

func (sh *shard) appendSpan(tr *Trace, b *batch, in *inSpan, group uint16, now int64) {
	rec := in.rec
	rec.off = uint32(len(tr.arena))
	rec.group = group
	tr.arena = append(tr.arena, b.buf[in.rec.off:in.rec.off+in.size]...)
	idx := len(tr.spans)
	tr.spans = append(tr.spans, rec)
	tr.minStart = min(tr.minStart, in.start)
	tr.maxEnd = max(tr.maxEnd, in.end)
	if !tr.bad && rec.bad() {
		tr.bad = true
	}
	if tr.root < 0 && rec.flags&spanRoot != 0 {
		tr.root = int32(idx)
		if d := now + sh.grace; d < tr.deadline {
			tr.deadline = d
			tr.rootDue = true
			sh.wheel.add(tr.id, d)
		}
	}
	sh.nspans++
	if sh.overMode && !tr.dirty {
		tr.dirty = true
		sh.dirty = append(sh.dirty, tr)
	}
}

func (sh *shard) newTrace(id otlp.TraceID, now int64) *Trace {
	var tr *Trace
	if n := len(sh.free); n > 0 {
		tr = sh.free[n-1]
		sh.free[n-1] = nil
		sh.free = sh.free[:n-1]
		*tr = Trace{arena: tr.arena[:0], spans: tr.spans[:0], groups: tr.groups[:0]}
	} else {
		tr = new(Trace)
	}
	tr.id = id
	tr.firstSeen = now
	tr.deadline = now + sh.wait
	tr.root = -1
	tr.minStart = math.MaxUint64
	sh.traces[id] = tr
	sh.wheel.add(id, tr.deadline)
	sh.ntraces++
	sh.nbytes += int64(tr.memBytes())
	return tr
}

// lateDecided handles a span of a trace decided while its batch was
// inserted: the span follows the decision, and is discarded when late
// would rather start a new trace with it (its trace was just decided).
func (sh *shard) lateDecided(b *batch, in *inSpan) {
	if !sh.late(b, in) {
		sh.s.m.lateDrop.Inc()
	}
}

// partialAttr is the encoding of the span attribute sampling.partial=true
// (Span field 9, a KeyValue with a bool AnyValue), appended to a span
// exported alone from a trace that stress relief dropped.
var partialAttr = []byte{0x4a, 0x16, 0x0a, 0x10,
	's', 'a', 'm', 'p', 'l', 'i', 'n', 'g', '.', 'p', 'a', 'r', 't', 'i', 'a', 'l',
	0x12, 0x02, 0x10, 0x01}

// late handles a span whose trace is not buffered: it follows a
// remembered decision (kept: exported at once with the trace's rule and
// rate; dropped: discarded) and reports true, or reports false when the
// trace is unknown. Two exceptions: an error span of a trace that stress
// relief dropped (not a rule) is exported alone, marked
// sampling.partial=true; and the dropped-ID Bloom filters are not trusted
// alone for an error span or a root span (a false positive would lose a
// new trace): they report false, so the span starts a buffered trace.
func (sh *shard) late(b *batch, in *inSpan) bool {
	if e, ok := sh.cache.lookupKept(&in.traceID); ok {
		ext := sh.s.exts[e.ext]
		ext.Rate = e.rate
		sh.encodeSpan(b, in, &ext, false)
		sh.s.m.lateKeep.Inc()
		sh.s.m.spansKept[e.ext].Inc()
		sh.queued(1)
		return true
	}
	if sh.cache.stressDropped(&in.traceID) {
		if in.rec.bad() {
			sh.exportPartial(b, in)
			return true
		}
		sh.s.m.lateDrop.Inc()
		return true
	}
	if sh.cache.dropped(&in.traceID) || sh.restoredDropped(&in.traceID) {
		m := sh.s.m
		m.filterHits.Inc()
		switch {
		case in.rec.bad():
			m.overrideError.Inc()
			return false
		case in.rec.flags&spanRoot != 0:
			m.overrideRoot.Inc()
			return false
		}
		m.lateDrop.Inc()
		return true
	}
	return false
}

// exportPartial exports one span alone, with sampling.partial=true.
func (sh *shard) exportPartial(b *batch, in *inSpan) {
	sh.encodeSpan(b, in, &otlp.Extension{Rate: 1}, true)
	m := sh.s.m
	m.partialSpans.Inc()
	m.spansKept[len(m.spansKept)-1].Inc()
	sh.queued(1)
}

// encodeSpan appends one span of a batch, alone in its resource_spans, to
// the shard's pending export request; partial marks it
// sampling.partial=true. Nothing is encoded for a discarding exporter.
func (sh *shard) encodeSpan(b *batch, in *inSpan, ext *otlp.Extension, partial bool) {
	if sh.s.discard {
		return
	}
	g := b.groups[in.rec.group].otlpGroup(b.buf)
	sh.full = appendSpanEncoding(sh.full[:0], &in.traceID, b.buf[in.rec.off:in.rec.off+in.size], in.rec.flags)
	if partial {
		sh.full = append(sh.full, partialAttr...)
	}
	sh.raws = append(sh.raws[:0], sh.full)
	sh.out = sh.enc.AppendResourceSpans(sh.out, &g, sh.raws, ext)
	sh.raws[0] = nil
}

func (sh *shard) restoredDropped(id *otlp.TraceID) bool {
	for _, f := range sh.s.restoredFilters() {
		if f.has(id) {
			return true
		}
	}
	return false
}

// decide runs the rules on tr, reports the decision, exports a kept trace,
// remembers the decision and frees the trace.
func (sh *shard) decide(tr *Trace, now int64, trig Trigger) {
	s := sh.s
	v := s.policy.evaluate(tr, time.Unix(0, now), &sh.sc)
	tr.decided, tr.decision, tr.trigger = true, v.decision, trig
	mi := len(s.exts) // metrics index of "none"
	tr.rule = nil
	if v.rule >= 0 {
		mi = v.rule
		tr.rule = &s.policy.rules[v.rule].name
	}
	if s.hook != nil {
		s.hook(tr, v.decision)
	}
	s.m.latency.Observe(float64(now-tr.firstSeen) / 1e9)
	n := float64(len(tr.spans))
	delete(sh.traces, tr.id)
	if v.decision == Keep {
		s.m.decidedKeep[mi].Inc()
		s.m.spansKept[mi].Add(n)
		sh.cache.addKept(tr.id, keptEntry{at: now, rate: v.rate, ext: uint32(v.rule)})
		ext := s.exts[v.rule]
		ext.Rate = v.rate
		sh.export(tr, &ext)
	} else {
		s.m.decidedDrop[mi].Inc()
		s.m.spansDrop[mi].Add(n)
		sh.cache.addDropped(&tr.id, now)
		if trig == TriggerStress {
			sh.cache.addStressDropped(tr.id, now)
		}
	}
	sh.ntraces--
	sh.nspans -= int64(len(tr.spans))
	sh.nbytes -= int64(tr.memBytes())
	for i := range tr.groups {
		sh.nbytes -= int64(sh.groups.release(tr.groups[i].sharedGroup))
		tr.groups[i] = group{}
	}
	sh.recycle(tr)
}

// recycle keeps a decided trace's struct and modest buffers for reuse.
func (sh *shard) recycle(tr *Trace) {
	if len(sh.free) >= freeTraces {
		return
	}
	if cap(tr.arena) > 16<<10 {
		tr.arena = nil
	}
	if cap(tr.spans) > 128 {
		tr.spans = nil
	}
	if cap(tr.groups) > 8 {
		tr.groups = nil
	}
	sh.free = append(sh.free, tr)
}

// export adds a kept trace to the shard's pending export request.
func (sh *shard) export(tr *Trace, ext *otlp.Extension) {
	sh.encode(tr, ext)
	sh.queued(len(tr.spans))
}

// queued counts n kept spans into the pending export request, which goes
// to the exporter once it holds export_batch_spans.
func (sh *shard) queued(n int) {
	sh.outSpans += n
	if sh.outSpans >= sh.s.cfg.ExportBatchSpans {
		sh.flush()
	}
}

// encode appends a kept trace, one resource_spans per group, to the
// shard's pending export request; nothing for a discarding exporter.
func (sh *shard) encode(tr *Trace, ext *otlp.Extension) {
	if sh.s.discard {
		return
	}
	raws := sh.raws[:0]
	// Room for every span's encoding, so that the slices taken as it
	// fills stay valid.
	if need := len(tr.arena) + traceIDFieldLen*len(tr.spans); cap(sh.full) < need {
		sh.full = make([]byte, 0, need)
	}
	sh.full = sh.full[:0]
	if len(tr.groups) == 1 {
		for i := range tr.spans {
			raws = append(raws, sh.fullSpan(tr, i))
		}
		g := tr.otlpGroup(0)
		sh.out = sh.enc.AppendResourceSpans(sh.out, &g, raws, ext)
	} else {
		// Counting sort of the spans by group.
		counts := sh.counts[:0]
		for range len(tr.groups) + 1 {
			counts = append(counts, 0)
		}
		for i := range tr.spans {
			counts[tr.spans[i].group+1]++
		}
		for g := 1; g < len(counts); g++ {
			counts[g] += counts[g-1]
		}
		order := sh.order[:0]
		for range tr.spans {
			order = append(order, 0)
		}
		for i := range tr.spans {
			g := tr.spans[i].group
			order[counts[g]] = int32(i)
			counts[g]++
		}
		for _, i := range order {
			raws = append(raws, sh.fullSpan(tr, int(i)))
		}
		start := 0
		for g := range tr.groups {
			end := int(counts[g])
			if end > start {
				grp := tr.otlpGroup(g)
				sh.out = sh.enc.AppendResourceSpans(sh.out, &grp, raws[start:end], ext)
			}
			start = end
		}
		sh.counts, sh.order = counts, order
	}
	clear(raws)
	sh.raws = raws[:0]
	if cap(sh.full) > 1<<20 {
		sh.full = nil // one very large trace; do not keep its scratch
	}
}

// fullSpan appends span i's encoding to sh.full, which export sized to
// hold the whole trace, and returns it.
func (sh *shard) fullSpan(tr *Trace, i int) []byte {
	start := len(sh.full)
	sh.full = appendSpanEncoding(sh.full, &tr.id, tr.spanBytes(i), tr.spans[i].flags)
	return sh.full[start:len(sh.full):len(sh.full)]
}

func (t *Trace) otlpGroup(i int) otlp.Group {
	g := &t.groups[i]
	return otlp.Group{
		Resource: g.resource, ResourceSchemaURL: g.resourceSchema,
		Scope: g.scope, ScopeSchemaURL: g.scopeSchema,
	}
}

// flush hands the pending export request to the exporter, blocking while
// its queue is full (which is how backpressure reaches Consume).
func (sh *shard) flush() {
	if sh.outSpans == 0 {
		return
	}
	req, n := sh.out, sh.outSpans
	sh.out, sh.outSpans = make([]byte, 0, len(req)+len(req)/8), 0
	if err := sh.s.exp.Export(sh.s.runCtx, req, n); err != nil {
		sh.s.m.exportFailed.Add(float64(n))
		sh.s.failed.Add(int64(n))
		now := sh.s.now().UnixNano()
		if now-sh.lastErr > int64(10*time.Second) {
			sh.lastErr = now
			sh.s.log.Error("kept spans were not exported", "shard", sh.idx, "spans", n, "err", err)
		}
	}
}

// onTick decides the traces that are due by now, expires the decision
// cache and flushes kept traces.
func (sh *shard) onTick(now int64) {
	sh.drain()
	for {
		ids, ok := sh.wheel.due(now)
		if !ok {
			break
		}
		tick := sh.wheel.cur - 1
		for _, id := range ids {
			tr := sh.traces[id]
			if tr == nil {
				continue
			}
			if tr.deadline > now {
				sh.wheel.add(id, tr.deadline)
				continue
			}
			trig := TriggerWait
			if tr.rootDue {
				trig = TriggerRoot
			}
			sh.decide(tr, now, trig)
		}
		sh.wheel.release(tick, ids)
	}
	if sh.overMode && sh.nspans <= sh.maxSpans && sh.nbytes <= sh.maxBytes {
		sh.leaveOverMode()
	}
	sh.cache.expire(now)
	sh.gCache.Store(int64(sh.cache.memBytes()))
	sh.flush()
	sh.publish()
}

// snapshotPart returns the shard's kept IDs younger than the TTL and its
// dropped-ID filters; clone copies the filters (the shard goes on using
// its own) as snapshot copies, which can only be encoded. The copies live
// in the cache's copy storage, which the next periodic snapshot reuses:
// the tick loop asks for one only after the last one's file is written.
func (sh *shard) snapshotPart(now int64, clone bool) ([]savedKept, []*bloom) {
	s := sh.s
	ttl := int64(s.cfg.DecisionCache.TTL)
	c := sh.cache
	kept := make([]savedKept, 0, len(c.order)-c.head)
	for _, ref := range c.order[c.head:] {
		e, ok := c.kept[ref.id]
		if !ok || e.at != ref.at || e.at+ttl < now {
			continue
		}
		kept = append(kept, savedKept{id: ref.id, at: e.at, rate: e.rate, ext: s.exts[e.ext]})
	}
	var filters []*bloom
	for i, f := range []*bloom{c.cur, c.prev} {
		if f != nil && f.count > 0 {
			if clone {
				f = f.snapshotCopy(&c.copies[i])
			}
			filters = append(filters, f)
		}
	}
	return kept, filters
}

// finish drains the inbox, decides every buffered trace and flushes: the
// shard's part of Shutdown.
func (sh *shard) finish(now int64) {
	sh.drain()
	for _, tr := range sh.traces {
		sh.decide(tr, now, TriggerShutdown)
	}
	sh.flush()
	sh.publish()
}
