package canary

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// MaxThresholds bounds the latency thresholds counted per service.
const MaxThresholds = 2

// ringMinutes is how many minutes of counts a cell keeps in memory: three
// hours, enough for a canary analysis and a deploy marker's before and
// after windows. Longer analyses read older minutes from the store once
// the counts are flushed there (see Tracker.Rows).
const ringMinutes = 180

// DefaultVersionAttribute is the attribute that names a span's version
// unless configured otherwise.
const DefaultVersionAttribute = "service.version"

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// VersionAttribute is the resource (or, when the resource lacks it,
	// span) attribute that names the version; default service.version.
	VersionAttribute string
	// VersionAttributes overrides VersionAttribute per service, e.g.
	// rollouts-pod-template-hash for an Argo Rollout or
	// k8s.deployment.name for Flagger.
	VersionAttributes map[string]string
	// MaxOperations bounds the operations counted per version; the others
	// count under OtherOperation. Default 64.
	MaxOperations int
	// Lateness is how late a span may end and still count in its own
	// minute (units.EventClock); default 2 minutes.
	Lateness time.Duration
}

// OtherOperation names the operations beyond TrackerConfig.MaxOperations,
// and is also the operation of a span without name or route.
const OtherOperation = "(other)"

// NoVersion is the version of a span without the version attribute.
const NoVersion = "(none)"

// OpCounts are one version's (or one operation's) entry spans.
type OpCounts struct {
	Requests uint64 `json:"requests"`
	// Bad failed per DESIGN.md (status ERROR, HTTP 5xx, gRPC server fault).
	Bad uint64 `json:"bad"`
	// Slow counts the requests over each of the service's latency
	// thresholds, in the order given to Track.
	Slow [MaxThresholds]uint64 `json:"slow"`
}

func (c *OpCounts) add(o OpCounts) {
	c.Requests += o.Requests
	c.Bad += o.Bad
	for i := range c.Slow {
		c.Slow[i] += o.Slow[i]
	}
}

// Tracker counts entry spans per service, version, operation and minute
// for the services under analysis (Track). Observe is safe for concurrent
// use: it takes one lock per request and adds plainly under it (cheaper
// per span than atomic additions), and reads sum the minutes
// asked for.
type Tracker struct {
	cfg  TrackerConfig
	mu   sync.Mutex // serializes Track and Untrack
	plan atomic.Pointer[map[string]*service]
	// counts guards every cell's slots.
	counts sync.Mutex
}

type service struct {
	name       string
	versionKey string
	thresholds []uint64 // ns
	maxOps     int
	mu         sync.Mutex // serializes adding versions
	versions   atomic.Pointer[map[string]*version]
}

type version struct {
	name string
	id   uint64     // distinct among the service's versions, for Observe's cache
	mu   sync.Mutex // serializes adding operations
	ops  atomic.Pointer[map[string]*cell]
}

// cell holds one operation's counts of the last ringMinutes minutes.
type cell struct {
	op    string
	slots [ringMinutes]slot // guarded by Tracker.counts
}

type slot struct {
	minute        units.Minute
	requests, bad uint64
	slow          [MaxThresholds]uint64
}

// NewTracker returns a Tracker counting nothing until Track.
func NewTracker(cfg TrackerConfig) *Tracker {
	if cfg.VersionAttribute == "" {
		cfg.VersionAttribute = DefaultVersionAttribute
	}
	if cfg.MaxOperations <= 0 {
		cfg.MaxOperations = 64
	}
	if cfg.Lateness <= 0 {
		cfg.Lateness = 2 * time.Minute
	}
	r := &Tracker{cfg: cfg}
	empty := map[string]*service{}
	r.plan.Store(&empty)
	return r
}

// Track starts counting a service's entry spans, with up to MaxThresholds
// latency thresholds (those of its latency SLOs). Tracking a tracked
// service again keeps its counts; its thresholds must be the same.
func (r *Tracker) Track(name string, thresholds ...time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.plan.Load()
	if _, ok := old[name]; ok {
		return
	}
	s := &service{name: name, versionKey: r.cfg.VersionAttribute, maxOps: r.cfg.MaxOperations}
	if k := r.cfg.VersionAttributes[name]; k != "" {
		s.versionKey = k
	}
	for i, t := range thresholds {
		if i == MaxThresholds {
			break
		}
		s.thresholds = append(s.thresholds, uint64(t))
	}
	empty := map[string]*version{}
	s.versions.Store(&empty)
	next := make(map[string]*service, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[name] = s
	r.plan.Store(&next)
}

// Untrack stops counting a service and drops its counts.
func (r *Tracker) Untrack(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.plan.Load()
	if _, ok := old[name]; !ok {
		return
	}
	next := make(map[string]*service, len(old))
	for k, v := range old {
		if k != name {
			next[k] = v
		}
	}
	r.plan.Store(&next)
}

// Thresholds returns a tracked service's latency thresholds.
func (r *Tracker) Thresholds(name string) []time.Duration {
	s := (*r.plan.Load())[name]
	if s == nil {
		return nil
	}
	out := make([]time.Duration, len(s.thresholds))
	for i, t := range s.thresholds {
		out[i] = time.Duration(t)
	}
	return out
}

// Observe counts the entry spans (SERVER and CONSUMER) of the tracked
// services in req, each in the minute of its end time per
// units.EventClock, for a request that arrived at now. It does not
// retain req.
func (r *Tracker) Observe(req *otlp.Request, now time.Time) {
	plan := *r.plan.Load()
	if len(plan) == 0 || len(req.Spans) == 0 {
		return
	}
	clock := units.NewEventClock(now, r.cfg.Lateness)
	r.counts.Lock()
	defer r.counts.Unlock()
	scope := int32(-1)
	var (
		svc    *service
		res    *otlp.Resource
		resVer *version // the resource's version; nil when spans name theirs
		// memo caches the cells met in this request by version and
		// operation, direct-mapped by a hash of both: far cheaper than
		// the version's map for the few operations a request repeats.
		memo [64]memoEntry
		buf  [32]byte
	)
	for i := range req.Spans {
		sp := &req.Spans[i]
		if !sp.Kind.IsEntry() {
			continue
		}
		if sp.Scope != scope {
			scope = sp.Scope
			if rs := req.SpanResource(sp); rs != res {
				res = rs
				if svc == nil || svc.name != res.ServiceName {
					svc = plan[res.ServiceName]
				}
				resVer = nil
				if svc != nil {
					if v, ok := req.ResourceAttrs(res).Get(svc.versionKey); ok {
						resVer = svc.version(versionText(v, buf[:0]))
					}
				}
			}
		}
		if svc == nil {
			continue
		}
		ver := resVer
		if ver == nil {
			v, _ := req.SpanAttrs(sp).Get(svc.versionKey)
			ver = svc.version(versionText(v, buf[:0]))
		}
		op := sp.Route()
		if op == nil {
			op = sp.Name()
		}
		h := opHash(op)
		e := &memo[(h+ver.id*0x9e3779b97f4a7c15)>>58]
		c := e.c
		// A cell that holds overflowed operations is named OtherOperation
		// and never matches here: those spans take the map each time.
		if e.ver != ver || e.h != h || c.op != string(op) {
			c = ver.cell(op, svc.maxOps)
			*e = memoEntry{ver: ver, h: h, c: c}
		}
		m, _ := clock.Minute(sp.EndUnixNano)
		s := c.slot(m)
		s.requests++
		if sp.Bad() {
			s.bad++
		}
		if len(svc.thresholds) > 0 {
			d := uint64(sp.Duration())
			for j, t := range svc.thresholds {
				if d > t {
					s.slow[j]++
				}
			}
		}
	}
}

// versionText returns a version attribute's value as text: a string's
// bytes, or the text of another kind (an integer build number).
func versionText(v otlp.Value, buf []byte) []byte {
	if v.Kind == otlp.ValueString || v.Kind == otlp.ValueEmpty {
		return v.Str()
	}
	return v.AppendText(buf)
}

// memoEntry is a cell of Observe's cache.
type memoEntry struct {
	ver *version
	h   uint64
	c   *cell
}

// opHash is FNV-1a of an operation name, mixed so that its top bits
// (which index the cache) depend on every byte.
func opHash(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, x := range b {
		h ^= uint64(x)
		h *= 1099511628211
	}
	return h * 0x9e3779b97f4a7c15
}

// version returns the version named b, adding it when new.
func (s *service) version(b []byte) *version {
	if len(b) == 0 {
		b = []byte(NoVersion)
	}
	if v := (*s.versions.Load())[string(b)]; v != nil {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.versions.Load()
	if v := old[string(b)]; v != nil {
		return v
	}
	v := &version{name: string(b), id: uint64(len(old)) + 1}
	empty := map[string]*cell{}
	v.ops.Store(&empty)
	next := make(map[string]*version, len(old)+1)
	for k, x := range old {
		next[k] = x
	}
	next[v.name] = v
	s.versions.Store(&next)
	return v
}

// cell returns the cell of operation b, adding it when new and fewer
// than maxOps exist, else the OtherOperation cell.
func (v *version) cell(b []byte, maxOps int) *cell {
	if len(b) == 0 {
		b = []byte(OtherOperation)
	}
	ops := *v.ops.Load()
	if c := ops[string(b)]; c != nil {
		return c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	old := *v.ops.Load()
	if c := old[string(b)]; c != nil {
		return c
	}
	name := string(b)
	if len(old) >= maxOps {
		if c := old[OtherOperation]; c != nil {
			return c
		}
		name = OtherOperation
	}
	c := &cell{op: name}
	next := make(map[string]*cell, len(old)+1)
	for k, x := range old {
		next[k] = x
	}
	next[name] = c
	v.ops.Store(&next)
	return c
}

// slot returns the slot of minute m, emptying it first when it held an
// older minute. The caller holds Tracker.counts.
func (c *cell) slot(m units.Minute) *slot {
	s := &c.slots[int64(m)%ringMinutes]
	if s.minute != m {
		*s = slot{minute: m}
	}
	return s
}

// sum adds the counts of minutes [from, to] held by c. The caller holds
// Tracker.counts.
func (c *cell) sum(from, to units.Minute) OpCounts {
	var out OpCounts
	if to-from >= ringMinutes {
		from = to - ringMinutes + 1
	}
	for m := from; m <= to; m++ {
		s := &c.slots[int64(m)%ringMinutes]
		if s.minute != m {
			continue
		}
		out.Requests += s.requests
		out.Bad += s.bad
		for i := range s.slow {
			out.Slow[i] += s.slow[i]
		}
	}
	return out
}

// Operations returns the counts per operation of a tracked service's
// versions that match, in the minutes [from, to]; nil when the service is
// not tracked. match is called with the counts locked.
func (r *Tracker) Operations(name string, match func(version string) bool, from, to units.Minute) map[string]OpCounts {
	s := (*r.plan.Load())[name]
	if s == nil {
		return nil
	}
	out := map[string]OpCounts{}
	r.counts.Lock()
	defer r.counts.Unlock()
	for vn, v := range *s.versions.Load() {
		if !match(vn) {
			continue
		}
		for op, c := range *v.ops.Load() {
			sum := c.sum(from, to)
			if sum.Requests == 0 {
				continue
			}
			x := out[op]
			x.add(sum)
			out[op] = x
		}
	}
	return out
}

// Versions returns the versions of a tracked service seen so far.
func (r *Tracker) Versions(name string) []string {
	s := (*r.plan.Load())[name]
	if s == nil {
		return nil
	}
	var out []string
	for vn := range *s.versions.Load() {
		out = append(out, vn)
	}
	return out
}

// Row is one minute's counts of one service, version and operation: the
// additive row the store keeps, so that every instance of a fleet sums
// the same counts.
type Row struct {
	Service   string       `json:"service"`
	Version   string       `json:"version"`
	Operation string       `json:"operation"`
	Minute    units.Minute `json:"minute"`
	OpCounts
}

// Rows returns the non-empty rows of minutes [from, to] held in memory,
// for a flush to the store.
func (r *Tracker) Rows(from, to units.Minute) []Row {
	var out []Row
	r.counts.Lock()
	defer r.counts.Unlock()
	for sn, s := range *r.plan.Load() {
		for vn, v := range *s.versions.Load() {
			for op, c := range *v.ops.Load() {
				for m := max(from, to-ringMinutes+1); m <= to; m++ {
					x := c.sum(m, m)
					if x.Requests == 0 {
						continue
					}
					out = append(out, Row{Service: sn, Version: vn, Operation: op, Minute: m, OpCounts: x})
				}
			}
		}
	}
	return out
}
