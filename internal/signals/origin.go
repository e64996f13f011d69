package signals

import (
	"bytes"
	"slices"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// TraceSpan is what error-origin analysis needs of one span of a trace.
type TraceSpan struct {
	// Service is the span's resource service.name.
	Service string
	// Name is the span name; Route its http.route ("" when absent).
	Name, Route  string
	SpanID       otlp.SpanID
	ParentSpanID otlp.SpanID
	Kind         otlp.Kind
	// Bad is otlp.Span.Bad: bad for availability.
	Bad bool
	// Timeout is set when the span failed because a deadline passed
	// (gRPC DEADLINE_EXCEEDED, HTTP 504, or an error type or status message
	// naming a timeout or deadline).
	Timeout bool
	// HTTPStatus is the HTTP response status, 0 when absent; it tells "5xx"
	// failures from other errors.
	HTTPStatus uint16
	// Start and End are unix nanoseconds.
	Start, End uint64
}

// fill sets the fields that are not strings from sp.
func (ts *TraceSpan) fill(sp *otlp.Span) {
	ts.SpanID, ts.ParentSpanID = sp.SpanID, sp.ParentSpanID
	ts.Kind = sp.Kind
	ts.Bad, ts.Timeout = sp.Bad(), IsTimeout(sp)
	ts.HTTPStatus = sp.HTTPStatus
	ts.Start, ts.End = sp.StartUnixNano, sp.EndUnixNano
}

// maxInterned bounds the distinct span names and routes a TraceBuilder
// keeps; past it, a new name costs a string allocation each time.
const maxInterned = 4096

// TraceBuilder turns the spans of a decided trace into the TraceSpans that
// ObserveTrace reads, reusing its memory from one trace to the next: span
// names and routes are interned, so a trace whose names were seen before
// costs no allocation. Its zero value is ready; it is not safe for
// concurrent use.
type TraceBuilder struct {
	spans []TraceSpan
	names map[string]string
}

// Reset empties the builder for the next trace.
func (b *TraceBuilder) Reset() {
	clear(b.spans)
	b.spans = b.spans[:0]
}

// Add appends sp, of the given service.
func (b *TraceBuilder) Add(sp *otlp.Span, service string) {
	ts := TraceSpan{Service: service, Name: b.intern(sp.Name()), Route: b.intern(sp.Route())}
	ts.fill(sp)
	b.spans = append(b.spans, ts)
}

// Spans returns the spans added since the last Reset; they are valid
// until then.
func (b *TraceBuilder) Spans() []TraceSpan { return b.spans }

func (b *TraceBuilder) intern(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if s, ok := b.names[string(v)]; ok {
		return s
	}
	s := string(v)
	if b.names == nil {
		b.names = map[string]string{}
	}
	if len(b.names) < maxInterned {
		b.names[s] = s
	}
	return s
}

// IsTimeout reports whether a bad span failed because a deadline passed:
// gRPC DEADLINE_EXCEEDED, HTTP 504, an error.type attribute or a status
// message that names a timeout or a deadline.
func IsTimeout(sp *otlp.Span) bool {
	if !sp.Bad() {
		return false
	}
	if sp.GRPCStatus == 4 || sp.HTTPStatus == 504 {
		return true
	}
	if v, ok := sp.Attr("error.type"); ok && mentionsTimeout(v.Str()) {
		return true
	}
	return mentionsTimeout(sp.StatusMessage())
}

func mentionsTimeout(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	var buf [256]byte
	low := buf[:0]
	for _, c := range b[:min(len(b), len(buf))] {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		low = append(low, c)
	}
	return bytes.Contains(low, []byte("timeout")) || bytes.Contains(low, []byte("timed out")) ||
		bytes.Contains(low, []byte("deadline"))
}

// Reasons an origin span failed.
const (
	ReasonTimeout = "timeout"
	Reason5xx     = "5xx"
	ReasonError   = "error"
)

// origin is where one failed request's error started.
type origin struct {
	span   int    // index into the trace's spans
	reason string // ReasonTimeout, Reason5xx or ReasonError
	// dependency: the origin is a call whose callee sent no spans.
	dependency bool
}

// failure is one failed request (a bad entry span) and its origins.
type failure struct {
	request int
	origins []origin
}

// findOrigins finds, for every bad entry span of a trace, the spans where
// its error started. The rules, in order:
//
//  1. Links. A span's parent is the span with its ParentSpanID. A span
//     whose parent is missing (an orphan) is adopted by the childless
//     outgoing span (CLIENT or PRODUCER) of another service that overlaps
//     it most in time, since that call's server span is the one missing;
//     orphans with the same missing parent are adopted together. Orphans no
//     call overlaps stay roots of their own subtrees. Duplicate span IDs
//     keep the first span; cycles are never entered.
//  2. Late children. A child that started after its parent ended (async
//     work) cannot explain the parent's failure and is ignored for it.
//  3. Propagation. A bad span with bad children failed because of them:
//     its origins are theirs (all of them, so errors on siblings give a
//     request several origins, each counting 1/n).
//  4. Timeouts count as the callee's. A bad outgoing span that timed out
//     and has only good children waited on a callee that was too slow: the
//     origin is its longest child, with reason "timeout".
//  5. Otherwise the bad span is the origin itself ("deepest bad span whose
//     children are all good"). When it is an outgoing span with no children
//     at all, the callee sent no spans: the origin is marked as an
//     uninstrumented dependency of the caller.
//
// The failures it returns, and their origins, live in sc until its next
// use.
func findOrigins(spans []TraceSpan, sc *originScratch) []failure {
	n := len(spans)
	if n == 0 {
		return nil
	}
	sc.reset(n)
	byID, dup, parent, hasChild, visited := sc.byID, sc.dup, sc.parent, sc.hasChild, sc.visited
	missing := sc.missing // orphans by their missing parent
	for i := range spans {
		if _, ok := byID[spans[i].SpanID]; ok {
			dup[i] = true
			continue
		}
		byID[spans[i].SpanID] = i
	}
	for i := range spans {
		parent[i] = -1
		if dup[i] || spans[i].ParentSpanID.IsZero() || spans[i].ParentSpanID == spans[i].SpanID {
			continue
		}
		if p, ok := byID[spans[i].ParentSpanID]; ok {
			parent[i] = p
		} else {
			missing[spans[i].ParentSpanID] = append(missing[spans[i].ParentSpanID], i)
		}
	}
	for _, p := range parent {
		if p >= 0 {
			hasChild[p] = true
		}
	}
	adoptOrphans(spans, parent, hasChild, dup, missing)

	children := sc.children
	for i, p := range parent {
		if p >= 0 {
			children[p] = append(children[p], i)
		}
	}

	// Post-order walk from the roots, iteratively; a span on a cycle has a
	// parent and is never reached from a root, so it is never visited.
	origins := sc.origins
	stack := sc.stack[:0]
	for root := range spans {
		if parent[root] >= 0 || dup[root] {
			continue
		}
		stack = append(stack[:0], frame{root, 0})
		visited[root] = true
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.next < len(children[f.span]) {
				c := children[f.span][f.next]
				f.next++
				if !visited[c] {
					visited[c] = true
					stack = append(stack, frame{c, 0})
				}
				continue
			}
			origins[f.span], sc.arena = spanOrigins(spans, f.span, children[f.span], origins, sc.arena)
			stack = stack[:len(stack)-1]
		}
	}
	sc.stack = stack

	out := sc.out[:0]
	for i := range spans {
		if visited[i] && spans[i].Bad && spans[i].Kind.IsEntry() && len(origins[i]) > 0 {
			out = append(out, failure{request: i, origins: origins[i]})
		}
	}
	sc.out = out
	return out
}

// frame is a step of findOrigins' post-order walk.
type frame struct{ span, next int }

// originScratch is findOrigins' memory, reused from trace to trace.
type originScratch struct {
	byID     map[otlp.SpanID]int
	missing  map[otlp.SpanID][]int
	dup      []bool
	hasChild []bool
	visited  []bool
	parent   []int
	children [][]int
	origins  [][]origin
	arena    []origin // every span's origins, one run each
	stack    []frame
	out      []failure
}

// reset readies sc for a trace of n spans.
func (sc *originScratch) reset(n int) {
	if sc.byID == nil {
		sc.byID, sc.missing = map[otlp.SpanID]int{}, map[otlp.SpanID][]int{}
	}
	clear(sc.byID)
	clear(sc.missing)
	sc.dup = resetSlice(sc.dup, n)
	sc.hasChild = resetSlice(sc.hasChild, n)
	sc.visited = resetSlice(sc.visited, n)
	sc.parent = resetSlice(sc.parent, n)
	sc.origins = resetSlice(sc.origins, n)
	if cap(sc.children) < n {
		sc.children = make([][]int, n)
	}
	sc.children = sc.children[:n]
	for i := range sc.children {
		sc.children[i] = sc.children[i][:0]
	}
	sc.arena = sc.arena[:0]
}

// resetSlice returns s with length n, every element zero, reusing its
// array when it is large enough.
func resetSlice[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// spanOrigins applies rules 2 to 5 to span i whose children are done,
// appending its origins to arena; it returns them and the arena.
func spanOrigins(spans []TraceSpan, i int, children []int, done [][]origin, arena []origin) ([]origin, []origin) {
	sp := &spans[i]
	if !sp.Bad {
		return nil, arena
	}
	start := len(arena)
	onTime := 0
	longest := -1
	for _, c := range children {
		ch := &spans[c]
		if ch.Start > sp.End && sp.End > 0 {
			continue // rule 2: started after the parent ended
		}
		onTime++
		if ch.Bad {
			for _, o := range done[c] {
				if !slices.Contains(arena[start:], o) {
					arena = append(arena, o)
				}
			}
			continue
		}
		if longest < 0 || duration(ch) > duration(&spans[longest]) {
			longest = c
		}
	}
	if len(arena) == start {
		outgoing := sp.Kind == otlp.KindClient || sp.Kind == otlp.KindProducer
		if sp.Timeout && outgoing && longest >= 0 {
			arena = append(arena, origin{span: longest, reason: ReasonTimeout}) // rule 4
		} else {
			arena = append(arena, origin{span: i, reason: reasonOf(sp), dependency: outgoing && len(children) == 0}) // rule 5
		}
	} // else rule 3: its bad children's origins
	return arena[start:len(arena):len(arena)], arena
}

func duration(s *TraceSpan) uint64 {
	if s.End <= s.Start {
		return 0
	}
	return s.End - s.Start
}

func reasonOf(s *TraceSpan) string {
	switch {
	case s.Timeout:
		return ReasonTimeout
	case s.HTTPStatus >= 500 && s.HTTPStatus <= 599:
		return Reason5xx
	}
	return ReasonError
}

// adoptOrphans applies rule 1's adoption: each group of orphans with the
// same missing parent goes under the childless outgoing span of another
// service that overlaps the group most in time.
func adoptOrphans(spans []TraceSpan, parent []int, hasChild, dup []bool, missing map[otlp.SpanID][]int) {
	if len(missing) == 0 {
		return
	}
	// Deterministic order: by the first orphan's index.
	groups := make([][]int, 0, len(missing))
	for _, g := range missing {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b []int) int { return a[0] - b[0] })
	taken := make([]bool, len(spans))
	for _, g := range groups {
		lo, hi := spans[g[0]].Start, spans[g[0]].End
		for _, i := range g[1:] {
			lo, hi = min(lo, spans[i].Start), max(hi, spans[i].End)
		}
		best, bestOverlap := -1, uint64(0)
		for c := range spans {
			cs := &spans[c]
			if dup[c] || hasChild[c] || taken[c] || (cs.Kind != otlp.KindClient && cs.Kind != otlp.KindProducer) {
				continue
			}
			if cs.Service == spans[g[0]].Service || slices.Contains(g, c) {
				continue
			}
			ov := overlap(cs.Start, cs.End, lo, hi)
			if ov == 0 {
				continue
			}
			if best < 0 || ov > bestOverlap || ov == bestOverlap && duration(cs) < duration(&spans[best]) {
				best, bestOverlap = c, ov
			}
		}
		if best < 0 || isDescendant(parent, best, g) {
			continue
		}
		taken[best] = true
		hasChild[best] = true
		for _, i := range g {
			parent[i] = best
		}
	}
}

// isDescendant reports whether span c lies under one of the roots (so that
// adopting the roots under c would close a cycle).
func isDescendant(parent []int, c int, roots []int) bool {
	for steps := 0; c >= 0 && steps <= len(parent); steps++ {
		if slices.Contains(roots, c) {
			return true
		}
		c = parent[c]
	}
	return false
}

func overlap(a0, a1, b0, b1 uint64) uint64 {
	lo, hi := max(a0, b0), min(a1, b1)
	if hi <= lo {
		// Zero-length spans inside the other still overlap.
		if a0 == a1 && a0 >= b0 && a0 <= b1 || b0 == b1 && b0 >= a0 && b0 <= a1 {
			return 1
		}
		return 0
	}
	return hi - lo
}

// originKey identifies a pending origin row.
type originKey struct {
	minute          units.Minute
	service         string
	originService   string
	originOperation string
	reason          string
	dependency      bool
}

type originAgg struct {
	requests, requests5xx float64
}

// maxPendingOrigins bounds the distinct origin rows kept between flushes.
const maxPendingOrigins = 10_000

// ObserveTrace records where the errors of a decided error trace started.
// Call it once per trace, with the spans the sampler holds when it decides;
// spans that arrive after the decision are not analysed. It does not keep
// spans. A failed request counts in the minute its span ended, by the rule
// of Observe (units.EventClock, with now as the arrival time).
func (s *Signals) ObserveTrace(spans []TraceSpan, now time.Time) {
	sc := s.originScratch.Get().(*originScratch)
	defer s.originScratch.Put(sc)
	fails := findOrigins(spans, sc)
	clock := units.NewEventClock(now, time.Duration(s.lateness))
	var buf []byte
	s.originMu.Lock()
	defer s.originMu.Unlock()
	rec := &s.orig
	rec.errorTraces++
	for _, f := range fails {
		rec.failedRequests++
		req := &spans[f.request]
		m, late := clock.Minute(req.End)
		if late {
			rec.late++
		}
		w := 1 / float64(len(f.origins))
		is5xx := req.HTTPStatus >= 500 && req.HTTPStatus <= 599
		for _, o := range f.origins {
			os := &spans[o.span]
			raw := os.Route
			if raw == "" {
				raw = os.Name
			}
			buf = appendNormalized(buf[:0], []byte(raw))
			k := originKey{
				minute:          m,
				service:         serviceName(req.Service),
				originService:   serviceName(os.Service),
				originOperation: string(buf),
				reason:          o.reason,
				dependency:      o.dependency,
			}
			a, ok := rec.pending[k]
			if !ok {
				if len(rec.pending) >= maxPendingOrigins {
					rec.keysFolded++
					k.originService, k.originOperation = OtherService, OtherOperation
					a = rec.pending[k]
				}
				if a == nil {
					a = &originAgg{}
					rec.pending[k] = a
				}
			}
			a.requests += w
			if is5xx {
				a.requests5xx += w
			}
		}
	}
}

func serviceName(s string) string {
	if s == "" {
		return UnknownService
	}
	return s
}

// takeOrigins appends the pending origin rows to rows and empties them.
func (s *Signals) takeOrigins(rows []OriginRow) []OriginRow {
	s.originMu.Lock()
	defer s.originMu.Unlock()
	for k, a := range s.orig.pending {
		rows = append(rows, OriginRow{
			Start:           k.minute.Time(),
			Service:         k.service,
			OriginService:   k.originService,
			OriginOperation: k.originOperation,
			Reason:          k.reason,
			Dependency:      k.dependency,
			Requests:        a.requests,
			Requests5xx:     a.requests5xx,
		})
	}
	clear(s.orig.pending)
	return rows
}
