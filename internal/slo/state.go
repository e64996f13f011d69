package slo

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Group values that are not attribute values.
const (
	// GroupMissing holds the requests that lack the group_by key.
	GroupMissing = "(missing)"
	// GroupOther holds the requests of values beyond max_groups.
	GroupOther = "(other)"
)

// statusWindows are the windows every Status reports, in minutes.
var statusWindows = [...]struct {
	label string
	min   int64
}{{"5m", 5}, {"30m", 30}, {"1h", 60}, {"2h", 120}, {"6h", 360}, {"1d", 1440}, {"3d", 4320}}

// keyKind says where a filter or group key is read from.
type keyKind uint8

const (
	keySpanName keyKind = iota
	keyRoute
	keySpanAttr
	keyResourceAttr
)

// key is a compiled filter or group_by key.
type key struct {
	kind keyKind
	name string // attribute key
}

func compileKey(k string) key {
	switch {
	case k == "span_name":
		return key{kind: keySpanName}
	case k == "http.route":
		return key{kind: keyRoute}
	case strings.HasPrefix(k, "resource."):
		return key{kind: keyResourceAttr, name: strings.TrimPrefix(k, "resource.")}
	}
	return key{kind: keySpanAttr, name: k}
}

// value appends the key's value for a span to buf; ok is false when the
// span lacks it.
func (k *key) value(req *otlp.Request, sp *otlp.Span, buf []byte) ([]byte, bool) {
	switch k.kind {
	case keySpanName:
		return sp.Name(), true
	case keyRoute:
		r := sp.Route()
		return r, r != nil
	case keyResourceAttr:
		v, ok := req.ResourceAttrs(req.SpanResource(sp)).Get(k.name)
		if !ok {
			return nil, false
		}
		if v.Kind == otlp.ValueString {
			return v.Str(), true
		}
		return v.AppendText(buf), true
	}
	v, ok := req.SpanAttrs(sp).Get(k.name)
	if !ok {
		return nil, false
	}
	if v.Kind == otlp.ValueString {
		return v.Str(), true
	}
	return v.AppendText(buf), true
}

// cond is one filter term: key equals value.
type cond struct {
	key key
	val string
	// slot indexes the service plan's attribute keys when the key is a
	// span attribute read in the per-span pass; -1 otherwise.
	slot int
}

// svcPlan is what Observe does for the entry spans of one service: the
// SLOs to count, and the span attribute keys their filters and groups read,
// scanned once per span.
type svcPlan struct {
	slos  []*sloState
	attrs []string
}

// slotFor returns the plan's slot for a span attribute key, adding it
// when there is room; -1 when there is none.
func (p *svcPlan) slotFor(k key) int {
	if k.kind != keySpanAttr {
		return -1
	}
	if i := slices.Index(p.attrs, k.name); i >= 0 {
		return i
	}
	if len(p.attrs) == maxSlots {
		return -1
	}
	p.attrs = append(p.attrs, k.name)
	return len(p.attrs) - 1
}

// add puts an SLO in the plan and gives its attribute keys slots.
func (p *svcPlan) add(st *sloState) {
	p.slos = append(p.slos, st)
	for i := range st.filter {
		st.filter[i].slot = p.slotFor(st.filter[i].key)
	}
	st.groupSlot = -1
	if st.groupBy != nil {
		st.groupSlot = p.slotFor(*st.groupBy)
	}
}

// sloState is a compiled SLO with its series.
type sloState struct {
	spec      Spec
	eb        float64 // error budget: 1 - objective, as a fraction
	per       period
	kind      SLIKind
	threshold uint64 // latency threshold in ns
	client4xx bool
	filter    []cond
	groupBy   *key
	groupSlot int
	maxGroups int

	method      BudgetingMethod
	sliceLen    int64   // minutes, for the timeslices methods
	sliceTarget float64 // fraction

	rules       []rule
	minCoverage float64
	// windows are the distinct window lengths (minutes) evaluated besides
	// the SLO window; statusIdx indexes the status windows in it.
	windows   []int64
	statusIdx [len(statusWindows)]int
	oneHour   int // index of the 1h window

	agg    *series
	groups atomic.Pointer[groupSet]
	gmu    sync.Mutex // serialises group creation

	// Guarded by Engine.mu.
	corrections []Correction
	ivs         []interval
	ivsFrom     time.Time
	ivsTo       time.Time
	since       time.Time // tracking start of the SLO
}

// groupSet is an immutable snapshot of a grouped SLO's groups (copy on
// write, so Observe looks groups up without a lock).
type groupSet struct {
	byValue map[string]*series
	list    []*series
}

// series is the counts of one SLO or one group of it.
type series struct {
	group string
	// live holds the open minute's counts: total in the high 32 bits, bad
	// in the low 32, so one atomic add counts a request and one swap takes
	// a consistent pair.
	live atomic.Uint64

	// Guarded by Engine.mu.
	ev        prefix[units.Minute, uint64] // per minute: good, total (cumulative)
	peer      prefix[units.Minute, uint64] // the part of ev that other instances counted (FleetBucketStore)
	sl        prefix[int64, float64]       // per time slice (timeslices methods)
	nextSlice int64                        // first slice not yet closed
	since     time.Time                    // tracking start (coverage)
	alerts    []alertInstance

	// Flush bookkeeping, guarded by Engine.mu: every minute before
	// flushedMin is in the store but for the counts in pending, and
	// flushed holds what of minute flushedMin already is.
	pending     []pendingCount
	flushedMin  units.Minute
	flushedG    uint64
	flushedT    uint64
	flushedInit bool
}

// cnt is a pair of good and total counts.
type cnt struct{ good, total uint64 }

// pendingCount is a count of one minute not yet in the store: late counts
// of minutes already flushed, and writes that failed.
type pendingCount struct {
	m units.Minute
	c cnt
}

// addPending adds c at minute m to the pending counts, one entry a minute.
func addPending(p []pendingCount, m units.Minute, c cnt) []pendingCount {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i].m == m {
			p[i].c.good += c.good
			p[i].c.total += c.total
			return p
		}
	}
	return append(p, pendingCount{m, c})
}

func unpack(v uint64) cnt {
	t, b := v>>32, v&0xffffffff
	if b > t { // cannot happen: a bad request always adds its total
		b = t
	}
	return cnt{good: t - b, total: t}
}

const (
	liveGood = 1 << 32
	liveBad  = 1<<32 | 1
)

func newSeries(group string, nrules int, since time.Time) *series {
	return &series{group: group, alerts: make([]alertInstance, nrules), since: since}
}

// compile builds the runtime form of a validated spec.
func compile(s Spec) (*sloState, error) {
	st := &sloState{spec: s, eb: errorBudget(s.Objective), kind: s.SLI.Kind, client4xx: s.SLI.ClientErrorsBad, method: s.Budgeting}
	if s.SLI.Kind == Latency {
		st.threshold = uint64(s.SLI.Threshold.Std())
	}
	if s.Calendar != NoCalendar {
		loc := time.UTC
		if s.TimeZone != "" {
			l, err := time.LoadLocation(s.TimeZone)
			if err != nil {
				return nil, fmt.Errorf("slo %q: time zone: %w", s.Name, err)
			}
			loc = l
		}
		st.per = period{calendar: s.Calendar, loc: loc, label: s.Calendar.String(), nominal: referenceWindow}
		if s.CalendarStart != "" {
			a, err := time.ParseInLocation(CalendarStartLayout, s.CalendarStart, loc)
			if err != nil {
				return nil, fmt.Errorf("slo %q: calendar_start: %w", s.Name, err)
			}
			st.per.anchor = a
		}
		if s.Calendar == Week {
			st.per.nominal = 7 * 24 * time.Hour
		}
	} else {
		st.per = period{rolling: int64(s.Window.Std() / time.Minute), label: s.Window.String(), nominal: s.Window.Std()}
	}
	keys := make([]string, 0, len(s.SLI.Filter))
	for k := range s.SLI.Filter {
		keys = append(keys, k)
	}
	// Cheap keys first: name and route are fields, attributes need a scan.
	slices.SortFunc(keys, func(a, b string) int {
		ka, kb := compileKey(a), compileKey(b)
		if ka.kind != kb.kind {
			return int(ka.kind) - int(kb.kind)
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		st.filter = append(st.filter, cond{key: compileKey(k), val: s.SLI.Filter[k], slot: -1})
	}
	if s.SLI.GroupBy != "" {
		k := compileKey(s.SLI.GroupBy)
		st.groupBy = &k
		st.maxGroups = s.SLI.MaxGroups
		if st.maxGroups == 0 {
			st.maxGroups = DefaultMaxGroups
		}
		st.groups.Store(&groupSet{byValue: map[string]*series{}})
	}
	if st.method != Occurrences {
		st.sliceLen = 1
		if w := s.TimeSlice.Window.Std(); w > 0 {
			st.sliceLen = int64(w / time.Minute)
		}
		st.sliceTarget = s.TimeSlice.Target / 100
	}
	st.rules = compileRules(&s.Alerting, st.per.nominal)
	st.minCoverage = DefaultMinCoverage
	if s.Alerting.MinCoverage != nil {
		st.minCoverage = *s.Alerting.MinCoverage
	}
	idx := func(m int64) int {
		if i := slices.Index(st.windows, m); i >= 0 {
			return i
		}
		st.windows = append(st.windows, m)
		return len(st.windows) - 1
	}
	for i, w := range statusWindows {
		st.statusIdx[i] = idx(w.min)
	}
	st.oneHour = st.statusIdx[2]
	for i := range st.rules {
		r := &st.rules[i]
		r.longIdx = idx(r.long)
		if r.kind == BurnRateAlert {
			r.shortIdx = idx(r.short)
		}
	}
	st.agg = newSeries("", len(st.rules), time.Time{})
	for i, c := range s.Corrections {
		cor, err := c.correction(s.Name)
		if err != nil {
			return nil, fmt.Errorf("slo %q: corrections[%d]: %w", s.Name, i, err)
		}
		st.corrections = append(st.corrections, cor)
	}
	return st, nil
}

// match reports whether an entry span of the SLO's service counts for it;
// av holds the span's attributes of the service plan's slots.
func (st *sloState) match(req *otlp.Request, sp *otlp.Span, plan *svcPlan, av *attrValues) bool {
	for i := range st.filter {
		c := &st.filter[i]
		if c.slot >= 0 {
			if v, ok := av.get(req, sp, plan, c.slot); !ok || string(v) != c.val {
				return false
			}
			continue
		}
		var buf [32]byte
		v, ok := c.key.value(req, sp, buf[:0])
		if !ok || string(v) != c.val {
			return false
		}
	}
	return true
}

// bad reports whether a matching request is bad for the SLO.
func (st *sloState) bad(sp *otlp.Span) bool {
	if st.kind == Latency {
		return uint64(sp.Duration()) > st.threshold
	}
	return sp.Bad() || st.client4xx && sp.HTTPStatus >= 400 && sp.HTTPStatus <= 499
}

// groupValue returns the span's value of the group_by key; ok is false
// when the span lacks it. The value may view buf or the span's bytes.
func (st *sloState) groupValue(req *otlp.Request, sp *otlp.Span, plan *svcPlan, av *attrValues, buf []byte) ([]byte, bool) {
	if st.groupSlot >= 0 {
		return av.get(req, sp, plan, st.groupSlot)
	}
	return st.groupBy.value(req, sp, buf)
}

// group returns the series of a group value, creating it when new.
func (st *sloState) group(v []byte, ok bool, since time.Time) *series {
	gs := st.groups.Load()
	if !ok {
		if s := gs.byValue[GroupMissing]; s != nil {
			return s
		}
		return st.newGroup(GroupMissing, since)
	}
	if s := gs.byValue[string(v)]; s != nil {
		return s
	}
	return st.newGroup(string(v), since)
}

func (st *sloState) newGroup(v string, since time.Time) *series {
	st.gmu.Lock()
	defer st.gmu.Unlock()
	gs := st.groups.Load()
	if s := gs.byValue[v]; s != nil {
		return s
	}
	if len(gs.list) >= st.maxGroups && v != GroupOther && v != GroupMissing {
		if s := gs.byValue[GroupOther]; s != nil {
			return s
		}
		v = GroupOther
	}
	s := newSeries(v, len(st.rules), since)
	next := &groupSet{byValue: make(map[string]*series, len(gs.byValue)+1), list: append(slices.Clip(gs.list), s)}
	for k, x := range gs.byValue {
		next.byValue[k] = x
	}
	next.byValue[v] = s
	st.groups.Store(next)
	return s
}

// allSeries calls fn for the aggregate series and each group.
func (st *sloState) allSeries(fn func(*series)) {
	fn(st.agg)
	if st.groupBy != nil {
		for _, s := range st.groups.Load().list {
			fn(s)
		}
	}
}

// raw returns the events of minutes [a, b) before corrections; the open
// minute cur contributes live.
func (s *series) raw(a, b, cur units.Minute, live cnt) cnt {
	if b <= a {
		return cnt{}
	}
	g, t := s.ev.sum(a, b)
	if a <= cur && cur < b {
		g += live.good
		t += live.total
	}
	return cnt{g, t}
}

// events returns the events of minutes [a, b) net of corrections.
func (st *sloState) events(s *series, a, b, cur units.Minute, live cnt) cnt {
	c := s.raw(a, b, cur, live)
	if len(st.ivs) == 0 || c.total == 0 {
		return c
	}
	i, _ := slices.BinarySearchFunc(st.ivs, a, func(iv interval, a units.Minute) int {
		if iv.e <= a {
			return -1
		}
		return 1
	})
	for ; i < len(st.ivs) && st.ivs[i].s < b; i++ {
		x := s.raw(max(a, st.ivs[i].s), min(b, st.ivs[i].e), cur, live)
		c.good -= x.good
		c.total -= x.total
	}
	return c
}

// sliceValue returns the good part and the weight (0 or 1) of one time
// slice with the given net counts.
func (st *sloState) sliceValue(c cnt) (good, total float64) {
	if c.total == 0 {
		return 0, 0
	}
	ratio := float64(c.good) / float64(c.total)
	if st.method == RatioTimeslices {
		return ratio, 1
	}
	if ratio >= st.sliceTarget {
		return 1, 1
	}
	return 0, 1
}

// counts returns the good and total "events" of the budgeting method over
// minutes [a, m+1) evaluated in minute m: requests for occurrences, time
// slices otherwise (the closed slices starting at or after a, and the
// slice holding m so far).
func (st *sloState) counts(s *series, a, m, cur units.Minute, live cnt) (good, total float64) {
	if st.method == Occurrences {
		c := st.events(s, a, m+1, cur, live)
		return float64(c.good), float64(c.total)
	}
	L := st.sliceLen
	first := ceilDiv(int64(a), L)
	open := sliceOf(m, L)
	if first < open {
		good, total = s.sl.sum(first, open)
	}
	if sliceStart(open, L) >= a {
		g, t := st.sliceValue(st.events(s, sliceStart(open, L), m+1, cur, live))
		good += g
		total += t
	}
	return good, total
}

// closeSlices adds to s.sl the slices that end at or before minute upTo.
func (st *sloState) closeSlices(s *series, upTo units.Minute) {
	if st.method == Occurrences {
		return
	}
	L := st.sliceLen
	end := sliceOf(upTo, L) // slices < end are complete
	if s.nextSlice >= end {
		return
	}
	// Walk only the minutes that hold data.
	k := s.nextSlice
	for {
		i := searchPoint(s.ev.pts, sliceStart(k, L))
		if i >= len(s.ev.pts) {
			break
		}
		k = sliceOf(s.ev.pts[i].k, L)
		if k >= end {
			break
		}
		g, t := st.sliceValue(st.events(s, sliceStart(k, L), sliceStart(k+1, L), math.MinInt64, cnt{}))
		s.sl.add(k, g, t)
		k++
	}
	s.nextSlice = end
}

// reslice recomputes the closed time slice holding minute m, after a late
// count was added to it.
func (st *sloState) reslice(s *series, m units.Minute) {
	if st.method == Occurrences {
		return
	}
	L := st.sliceLen
	k := sliceOf(m, L)
	if k >= s.nextSlice {
		return // still open: closeSlices will read it
	}
	og, ot := s.sl.at(k)
	g, t := st.sliceValue(st.events(s, sliceStart(k, L), sliceStart(k+1, L), math.MinInt64, cnt{}))
	s.sl.add(k, g-og, t-ot)
}

// rebuildSlices recomputes the slices from the minute counts, after the
// corrections changed.
func (st *sloState) rebuildSlices(s *series) {
	if st.method == Occurrences {
		return
	}
	end := s.nextSlice
	s.sl.reset()
	s.nextSlice = 0
	if first, ok := s.ev.first(); ok {
		s.nextSlice = sliceOf(first, st.sliceLen)
	}
	st.closeSlices(s, sliceStart(end, st.sliceLen))
}

func searchPoint[K ~int64, T uint64 | float64](pts []point[K, T], k K) int {
	lo, hi := 0, len(pts)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if pts[h].k < k {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo
}

// sliceOf returns the index of the time slice of L minutes holding m.
func sliceOf(m units.Minute, L int64) int64 { return floorDiv(int64(m), L) }

// sliceStart returns the first minute of time slice k of L minutes.
func sliceStart(k, L int64) units.Minute { return units.Minute(k * L) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// windowLabel formats a window of m minutes.
func windowLabel(m int64) string { return units.FormatDuration(time.Duration(m) * time.Minute) }
