package canary

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Counts are requests over a time range (of one version, operation or
// minute).
type Counts struct {
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	Slow     uint64 `json:"slow"`
}

// DefaultVersionAttribute is the attribute that names a span's version
// unless configured otherwise.
const DefaultVersionAttribute = "service.version"

// OtherVersion collects the versions of a service beyond MaxVersions.
const OtherVersion = "other"

// NoVersion is the version of a span without the version attribute.
const NoVersion = "(none)"

// OtherOperation names the operations of a version beyond MaxOperations,
// and is also the operation of a span without name or route.
const OtherOperation = "(other)"

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// VersionAttribute is the resource attribute naming a span's version
	// (a span attribute when the resource lacks it); default
	// service.version.
	VersionAttribute string
	// VersionAttributes overrides VersionAttribute per service: an Argo
	// Rollout's pod-template hash as the k8sattributes processor exposes
	// it, or k8s.deployment.name for Flagger (canary <target>, baseline
	// <target>-primary).
	VersionAttributes map[string]string
	// Thresholds maps a service to its latency SLO's threshold: requests
	// over it are slow. Services without one count no slow requests.
	Thresholds map[string]time.Duration
	// Retention is how long per-minute counts are kept; default 6h.
	Retention time.Duration
	// MaxVersions bounds the versions kept per service; more are counted
	// under OtherVersion. Default 64.
	MaxVersions int
	// MaxOperations bounds the operations (http.route, else span name)
	// kept per version; more are counted under OtherOperation. Default 32.
	MaxOperations int
}

// VersionRow is one operation's counts of one version and minute, as
// stored: each instance of a fleet adds its own, and readers sum them.
type VersionRow struct {
	Service, Version, Operation string
	Minute                      time.Time
	Counts
}

// Store keeps the counts of every instance, so that each instance of a
// fleet judges a canary from all of its requests.
type Store interface {
	// AddCanaryCounts adds rows to this instance's counts.
	AddCanaryCounts(ctx context.Context, rows []VersionRow) error
	// CanaryCounts returns the counts of the minutes since since, summed
	// per service, version, operation and minute: this instance's own and
	// its peers'.
	CanaryCounts(ctx context.Context, since time.Time) (own, peers []VersionRow, err error)
	// PruneCanaryCounts deletes every instance's counts of the minutes
	// before cut.
	PruneCanaryCounts(ctx context.Context, cut time.Time) error
}

// Recorder counts the entry spans of every service by version, operation
// and minute, for canary and post-deploy checks. It is safe for
// concurrent use; Observe takes one lock per request. With a Store, the
// counts are written there (Unstored, MarkStored) and the fleet's other
// instances' counts are added to every read (SetPeers).
type Recorder struct {
	cfg RecorderConfig

	mu        sync.Mutex
	services  map[string]*svcCounts
	lastPrune units.Minute
	// peers holds the other instances' counts, by service, version,
	// operation and minute, as last read from the store.
	peers map[string]map[string]map[string]map[units.Minute]Counts
}

type svcCounts struct {
	versions   map[string]*versionCounts
	slow       time.Duration // 0: no latency SLO
	versionKey string
}

type versionCounts struct {
	// first is the first minute a request of the version was counted in
	// (the minute its span ended in, which may precede its arrival).
	first units.Minute
	ops   map[string]*opCounts
	// latency holds this instance's requests by duration, per minute,
	// oldest first: it explains a verdict (Quantiles) and is not stored.
	latency []*latencyHist
}

type opCounts struct {
	minutes []minuteCounts // oldest first
}

type minuteCounts struct {
	m units.Minute
	Counts
	stored Counts // the part of Counts in the store
}

// NewRecorder returns an empty recorder.
func NewRecorder(cfg RecorderConfig) *Recorder {
	if cfg.VersionAttribute == "" {
		cfg.VersionAttribute = DefaultVersionAttribute
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 6 * time.Hour
	}
	if cfg.MaxVersions <= 0 {
		cfg.MaxVersions = 64
	}
	if cfg.MaxOperations <= 0 {
		cfg.MaxOperations = 32
	}
	return &Recorder{cfg: cfg, services: map[string]*svcCounts{}}
}

// Observe counts the entry spans of req at now, each under its version
// and operation (http.route, else the span name), in the minute it ends
// in (clamped to now's minute as the SLIs count).
func (r *Recorder) Observe(req *otlp.Request, now time.Time) {
	clock := units.NewEventClock(now, time.Minute)
	r.mu.Lock()
	defer r.mu.Unlock()
	if cm := clock.Now(); cm-r.lastPrune >= 10 { // every ten minutes
		r.lastPrune = cm
		r.pruneLocked(now)
	}
	var (
		res    = int32(-1)
		svc    *svcCounts
		resVer *versionCounts // nil when the resource names no version
		// The operations met lately: a request's spans mostly repeat a
		// few, and byte compares are cheaper than the map.
		recent [8]recentOp
		next   int
		buf    [32]byte
		// The histogram of the last span's version and minute.
		lh    *latencyHist
		lhVer *versionCounts
	)
	for i := range req.Spans {
		sp := &req.Spans[i]
		if !sp.Kind.IsEntry() {
			continue
		}
		if ri := req.Scopes[sp.Scope].Resource; ri != res {
			res = ri
			rs := &req.Resources[ri]
			svc = r.service(rs.ServiceName)
			resVer = nil
			if v, ok := req.ResourceAttrs(rs).Get(svc.versionKey); ok {
				resVer = r.version(svc, versionText(v, buf[:0]), now)
			}
		}
		vc := resVer
		if vc == nil {
			v, _ := req.SpanAttrs(sp).Get(svc.versionKey)
			vc = r.version(svc, versionText(v, buf[:0]), now)
		}
		name := sp.Route()
		if name == nil {
			name = sp.Name()
		}
		var oc *opCounts
		for j := range recent {
			if e := &recent[j]; e.ver == vc && bytes.Equal(e.name, name) {
				oc = e.op
				break
			}
		}
		if oc == nil {
			oc = r.operation(vc, name)
			recent[next] = recentOp{ver: vc, name: name, op: oc}
			next = (next + 1) % len(recent)
		}
		m, _ := clock.Minute(sp.EndUnixNano)
		if m < vc.first {
			vc.first = m
		}
		mc := oc.minute(m)
		d := sp.Duration()
		if lh == nil || lhVer != vc || lh.m != m {
			lh, lhVer = vc.hist(m), vc
		}
		lh.n[latencyBucket(d)]++
		mc.Requests++
		if sp.Bad() {
			mc.Errors++
		}
		if svc.slow > 0 && d > svc.slow {
			mc.Slow++
		}
	}
}

// recentOp is an entry of Observe's cache of operations.
type recentOp struct {
	ver  *versionCounts
	name []byte
	op   *opCounts
}

// versionText returns a version attribute's value as text: a string's
// bytes, or the text of another kind (an integer build number).
func versionText(v otlp.Value, buf []byte) []byte {
	if v.Kind == otlp.ValueString || v.Kind == otlp.ValueEmpty {
		return v.Str()
	}
	return v.AppendText(buf)
}

// service returns a service's counters.
func (r *Recorder) service(service string) *svcCounts {
	svc := r.services[service]
	if svc == nil {
		key := r.cfg.VersionAttribute
		if k := r.cfg.VersionAttributes[service]; k != "" {
			key = k
		}
		svc = &svcCounts{versions: map[string]*versionCounts{}, slow: r.cfg.Thresholds[service], versionKey: key}
		r.services[service] = svc
	}
	return svc
}

// version returns the counters of a service's version named b.
func (r *Recorder) version(svc *svcCounts, b []byte, now time.Time) *versionCounts {
	return bounded(svc.versions, b, NoVersion, r.cfg.MaxVersions, OtherVersion, func() *versionCounts {
		return &versionCounts{first: units.MinuteOf(now), ops: map[string]*opCounts{}}
	})
}

// operation returns the counters of a version's operation named b.
func (r *Recorder) operation(vc *versionCounts, b []byte) *opCounts {
	return bounded(vc.ops, b, OtherOperation, r.cfg.MaxOperations, OtherOperation, func() *opCounts { return &opCounts{} })
}

// bounded returns m's entry named b (empty when b is), adding a new one
// when fewer than limit exist, else the overflow entry.
func bounded[T any](m map[string]*T, b []byte, empty string, limit int, overflow string, add func() *T) *T {
	if len(b) == 0 {
		b = []byte(empty)
	}
	if x := m[string(b)]; x != nil {
		return x
	}
	name := string(b)
	if len(m) >= limit {
		name = overflow
	}
	x := m[name]
	if x == nil {
		x = add()
		m[name] = x
	}
	return x
}

// minute returns the counts of minute m, kept in order.
func (oc *opCounts) minute(m units.Minute) *minuteCounts {
	n := len(oc.minutes)
	if n > 0 && oc.minutes[n-1].m == m {
		return &oc.minutes[n-1]
	}
	i, found := slices.BinarySearchFunc(oc.minutes, m, func(a minuteCounts, m units.Minute) int { return int(a.m - m) })
	if !found {
		oc.minutes = slices.Insert(oc.minutes, i, minuteCounts{m: m})
	}
	return &oc.minutes[i]
}

// each calls f with every version's, operation's and minute's counts, this instance's and the
// peers', of the service's versions that match, in the minutes from
// from's through to's. The caller holds r.mu.
func (r *Recorder) each(service string, match func(version string) bool, from, to time.Time, f func(version, op string, m units.Minute, c Counts)) {
	lo, hi := units.MinuteOf(from), units.MinuteOf(to)
	if svc := r.services[service]; svc != nil {
		for v, vc := range svc.versions {
			if !match(v) {
				continue
			}
			for op, oc := range vc.ops {
				i, _ := slices.BinarySearchFunc(oc.minutes, lo, func(a minuteCounts, m units.Minute) int { return int(a.m - m) })
				for ; i < len(oc.minutes) && oc.minutes[i].m <= hi; i++ {
					f(v, op, oc.minutes[i].m, oc.minutes[i].Counts)
				}
			}
		}
	}
	for v, ops := range r.peers[service] {
		if !match(v) {
			continue
		}
		for op, ms := range ops {
			if int(hi-lo) < len(ms) {
				for m := lo; m <= hi; m++ {
					if c, ok := ms[m]; ok {
						f(v, op, m, c)
					}
				}
				continue
			}
			for m, c := range ms {
				if m >= lo && m <= hi {
					f(v, op, m, c)
				}
			}
		}
	}
}

// Operations returns the counts per operation of the service's versions
// that match, in the minutes from from's through to's, with the peers'.
func (r *Recorder) Operations(service string, match func(version string) bool, from, to time.Time) map[string]Counts {
	out := map[string]Counts{}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.each(service, match, from, to, func(_, op string, _ units.Minute, c Counts) {
		out[op] = out[op].add(c)
	})
	return out
}

func (c Counts) add(o Counts) Counts {
	return Counts{c.Requests + o.Requests, c.Errors + o.Errors, c.Slow + o.Slow}
}

func (c Counts) sub(o Counts) Counts {
	return Counts{c.Requests - o.Requests, c.Errors - o.Errors, c.Slow - o.Slow}
}

// Threshold returns the latency threshold a service's slow requests are
// counted over, 0 when none.
func (r *Recorder) Threshold(service string) time.Duration { return r.cfg.Thresholds[service] }

// FirstSeen returns the start of the first minute a version's requests
// were counted in (by the end of their spans), here or by a peer.
func (r *Recorder) FirstSeen(service, version string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	ok := false
	if svc := r.services[service]; svc != nil {
		if vc := svc.versions[version]; vc != nil {
			first, ok = vc.first.Time(), true
		}
	}
	for _, ms := range r.peers[service][version] {
		for m := range ms {
			if t := m.Time(); !ok || t.Before(first) {
				first, ok = t, true
			}
		}
	}
	return first, ok
}

// Unstored returns the counts not in the store yet, as rows of deltas.
// Once they are stored, MarkStored(rows) records it; until then they are
// returned again.
func (r *Recorder) Unstored() []VersionRow {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rows []VersionRow
	for sname, svc := range r.services {
		for vname, vc := range svc.versions {
			for op, oc := range vc.ops {
				for i := range oc.minutes {
					mc := &oc.minutes[i]
					if mc.Counts != mc.stored {
						rows = append(rows, VersionRow{Service: sname, Version: vname, Operation: op, Minute: mc.m.Time(), Counts: mc.Counts.sub(mc.stored)})
					}
				}
			}
		}
	}
	return rows
}

// MarkStored records that rows (from Unstored) are in the store.
func (r *Recorder) MarkStored(rows []VersionRow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, row := range rows {
		svc := r.services[row.Service]
		if svc == nil || svc.versions[row.Version] == nil || svc.versions[row.Version].ops[row.Operation] == nil {
			continue // pruned meanwhile
		}
		oc := svc.versions[row.Version].ops[row.Operation]
		m := units.MinuteOf(row.Minute)
		if i, found := slices.BinarySearchFunc(oc.minutes, m, func(a minuteCounts, m units.Minute) int { return int(a.m - m) }); found {
			oc.minutes[i].stored = oc.minutes[i].stored.add(row.Counts)
		}
	}
}

// Seed adds this instance's stored counts (at start, before any Observe):
// they are counted, and stored already.
func (r *Recorder) Seed(rows []VersionRow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, row := range rows {
		svc := r.service(row.Service)
		vc := svc.versions[row.Version]
		if vc == nil {
			vc = &versionCounts{first: units.MinuteOf(row.Minute), ops: map[string]*opCounts{}}
			svc.versions[row.Version] = vc
		}
		if m := units.MinuteOf(row.Minute); m < vc.first {
			vc.first = m
		}
		oc := vc.ops[row.Operation]
		if oc == nil {
			oc = &opCounts{}
			vc.ops[row.Operation] = oc
		}
		mc := oc.minute(units.MinuteOf(row.Minute))
		mc.Counts = mc.Counts.add(row.Counts)
		mc.stored = mc.stored.add(row.Counts)
	}
}

// SetPeers replaces the other instances' counts with rows.
func (r *Recorder) SetPeers(rows []VersionRow) {
	peers := map[string]map[string]map[string]map[units.Minute]Counts{}
	addPeerRows(peers, rows)
	r.mu.Lock()
	r.peers = peers
	r.mu.Unlock()
}

// MergePeers replaces the other instances' counts of the minutes from
// from's on with rows (read from the store since from), and keeps their
// older minutes: a sync can read the last minutes only.
func (r *Recorder) MergePeers(rows []VersionRow, from time.Time) {
	cut := units.MinuteOf(from)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers == nil {
		r.peers = map[string]map[string]map[string]map[units.Minute]Counts{}
	}
	r.dropPeerMinutes(func(m units.Minute) bool { return m >= cut })
	addPeerRows(r.peers, rows)
}

// dropPeerMinutes deletes the peers' minutes drop reports true for, and
// the maps it leaves empty. r.mu is held.
func (r *Recorder) dropPeerMinutes(drop func(units.Minute) bool) {
	for svc, vs := range r.peers {
		for v, ops := range vs {
			for op, ms := range ops {
				for m := range ms {
					if drop(m) {
						delete(ms, m)
					}
				}
				if len(ms) == 0 {
					delete(ops, op)
				}
			}
			if len(ops) == 0 {
				delete(vs, v)
			}
		}
		if len(vs) == 0 {
			delete(r.peers, svc)
		}
	}
}

// addPeerRows adds rows to peers.
func addPeerRows(peers map[string]map[string]map[string]map[units.Minute]Counts, rows []VersionRow) {
	for _, row := range rows {
		vs := peers[row.Service]
		if vs == nil {
			vs = map[string]map[string]map[units.Minute]Counts{}
			peers[row.Service] = vs
		}
		ops := vs[row.Version]
		if ops == nil {
			ops = map[string]map[units.Minute]Counts{}
			vs[row.Version] = ops
		}
		ms := ops[row.Operation]
		if ms == nil {
			ms = map[units.Minute]Counts{}
			ops[row.Operation] = ms
		}
		m := units.MinuteOf(row.Minute)
		ms[m] = ms[m].add(row.Counts)
	}
}

// Prune drops minutes older than the retention; Observe does it every
// ten minutes.
func (r *Recorder) Prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(now)
}

func (r *Recorder) pruneLocked(now time.Time) {
	cut := units.MinuteOf(now.Add(-r.cfg.Retention))
	r.dropPeerMinutes(func(m units.Minute) bool { return m < cut })
	for _, svc := range r.services {
		for v, vc := range svc.versions {
			for op, oc := range vc.ops {
				i := 0
				for i < len(oc.minutes) && oc.minutes[i].m < cut {
					i++
				}
				oc.minutes = slices.Delete(oc.minutes, 0, i)
				if len(oc.minutes) == 0 {
					delete(vc.ops, op)
				}
			}
			j := 0
			for j < len(vc.latency) && vc.latency[j].m < cut {
				j++
			}
			vc.latency = slices.Delete(vc.latency, 0, j)
			if len(vc.ops) == 0 && vc.first < cut {
				delete(svc.versions, v)
			}
		}
	}
}
