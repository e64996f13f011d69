package canary

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Counts are one version's requests over a time range.
type Counts struct {
	Requests, Errors, Slow uint64
}

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// VersionAttribute is the resource attribute naming a span's version;
	// default service.version.
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
	// under "other". Default 64.
	MaxVersions int
}

// VersionRow is one version's counts of one minute, as stored: each
// instance of a fleet adds its own, and readers sum them.
type VersionRow struct {
	Service, Version string
	Minute           time.Time
	Counts
}

// Store keeps the counts of every instance, so that each instance of a
// fleet judges a canary from all of its requests.
type Store interface {
	// AddCanaryCounts adds rows to this instance's counts.
	AddCanaryCounts(ctx context.Context, rows []VersionRow) error
	// CanaryCounts returns the counts of the minutes since since, summed
	// per service, version and minute: this instance's own and its
	// peers'.
	CanaryCounts(ctx context.Context, since time.Time) (own, peers []VersionRow, err error)
	// PruneCanaryCounts deletes every instance's counts of the minutes
	// before cut.
	PruneCanaryCounts(ctx context.Context, cut time.Time) error
}

// Recorder counts the entry spans of every service by version and
// minute, for canary and post-deploy checks. It is safe for concurrent
// use; Observe takes one lock per request. With a Store, the counts are
// written there (Unstored, MarkStored) and the fleet's other instances'
// counts are added to every read (SetPeers).
type Recorder struct {
	cfg RecorderConfig

	mu        sync.Mutex
	services  map[string]*svcCounts
	lastPrune units.Minute
	// peers holds the other instances' counts, by service, version and
	// minute, as last read from the store.
	peers map[string]map[string]map[units.Minute]Counts
}

type svcCounts struct {
	versions map[string]*versionCounts
	slow     time.Duration // 0: no latency SLO
}

type versionCounts struct {
	first   time.Time
	minutes []minuteCounts // oldest first
}

type minuteCounts struct {
	m units.Minute
	Counts
	stored Counts // the part of Counts in the store
}

// OtherVersion collects the versions of a service beyond MaxVersions.
const OtherVersion = "other"

// NewRecorder returns an empty recorder.
func NewRecorder(cfg RecorderConfig) *Recorder {
	if cfg.VersionAttribute == "" {
		cfg.VersionAttribute = "service.version"
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 6 * time.Hour
	}
	if cfg.MaxVersions <= 0 {
		cfg.MaxVersions = 64
	}
	return &Recorder{cfg: cfg, services: map[string]*svcCounts{}}
}

// Observe counts the entry spans of req at now (in the minute they end
// in, clamped to now's minute as the SLIs count).
func (r *Recorder) Observe(req *otlp.Request, now time.Time) {
	clock := units.NewEventClock(now, time.Minute)
	r.mu.Lock()
	defer r.mu.Unlock()
	if cm := clock.Now(); cm-r.lastPrune >= 10 { // every ten minutes
		r.lastPrune = cm
		r.pruneLocked(now)
	}
	var res = int32(-1)
	var vc *versionCounts
	var svc *svcCounts
	for i := range req.Spans {
		sp := &req.Spans[i]
		if !sp.Kind.IsEntry() {
			continue
		}
		if ri := req.Scopes[sp.Scope].Resource; ri != res {
			res = ri
			rs := &req.Resources[ri]
			svc, vc = r.version(rs.ServiceName, req.ResourceAttrs(rs), now)
		}
		m, _ := clock.Minute(sp.EndUnixNano)
		mc := vc.minute(m)
		mc.Requests++
		if sp.Bad() {
			mc.Errors++
		}
		if svc.slow > 0 && sp.Duration() > svc.slow {
			mc.Slow++
		}
	}
}

// service returns a service's counters.
func (r *Recorder) service(service string) *svcCounts {
	svc := r.services[service]
	if svc == nil {
		svc = &svcCounts{versions: map[string]*versionCounts{}, slow: r.cfg.Thresholds[service]}
		r.services[service] = svc
	}
	return svc
}

// version returns the counters of a resource's service and version.
func (r *Recorder) version(service string, attrs otlp.Attrs, now time.Time) (*svcCounts, *versionCounts) {
	svc := r.service(service)
	var ver []byte
	key := r.cfg.VersionAttribute
	if k := r.cfg.VersionAttributes[service]; k != "" {
		key = k
	}
	if v, ok := attrs.Get(key); ok {
		ver = v.Str()
	}
	vc := svc.versions[string(ver)]
	if vc == nil {
		name := string(ver)
		if len(svc.versions) >= r.cfg.MaxVersions {
			name = OtherVersion
		}
		if vc = svc.versions[name]; vc == nil {
			vc = &versionCounts{first: now}
			svc.versions[name] = vc
		}
	}
	return svc, vc
}

// minute returns the counts of minute m, kept in order.
func (vc *versionCounts) minute(m units.Minute) *minuteCounts {
	n := len(vc.minutes)
	if n > 0 && vc.minutes[n-1].m == m {
		return &vc.minutes[n-1]
	}
	i, found := slices.BinarySearchFunc(vc.minutes, m, func(a minuteCounts, m units.Minute) int { return int(a.m - m) })
	if !found {
		vc.minutes = slices.Insert(vc.minutes, i, minuteCounts{m: m})
	}
	return &vc.minutes[i]
}

// Count returns a version's counts in the minutes from from's through
// to's.
func (r *Recorder) Count(service, version string, from, to time.Time) Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c Counts
	if svc := r.services[service]; svc != nil {
		c = sum(svc.versions[version], from, to)
	}
	return c.add(sumPeers(r.peers[service][version], from, to))
}

// CountOthers returns the counts of every version of service but version,
// in the minutes from from's through to's: the baseline when none is
// named.
func (r *Recorder) CountOthers(service, version string, from, to time.Time) Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c Counts
	if svc := r.services[service]; svc != nil {
		for v, vc := range svc.versions {
			if v != version {
				c = c.add(sum(vc, from, to))
			}
		}
	}
	for v, ms := range r.peers[service] {
		if v != version {
			c = c.add(sumPeers(ms, from, to))
		}
	}
	return c
}

func (c Counts) add(o Counts) Counts {
	return Counts{c.Requests + o.Requests, c.Errors + o.Errors, c.Slow + o.Slow}
}

func (c Counts) sub(o Counts) Counts {
	return Counts{c.Requests - o.Requests, c.Errors - o.Errors, c.Slow - o.Slow}
}

// sumPeers sums a version's peer counts in the minutes from from's
// through to's.
func sumPeers(ms map[units.Minute]Counts, from, to time.Time) Counts {
	var c Counts
	lo, hi := units.MinuteOf(from), units.MinuteOf(to)
	if int(hi-lo) < len(ms) {
		for m := lo; m <= hi; m++ {
			c = c.add(ms[m])
		}
		return c
	}
	for m, v := range ms {
		if m >= lo && m <= hi {
			c = c.add(v)
		}
	}
	return c
}

// CountAll returns the counts of every version of service in the minutes
// from from's through to's.
func (r *Recorder) CountAll(service string, from, to time.Time) Counts {
	return r.CountOthers(service, "\x00", from, to) // no version is named NUL
}

// Threshold returns the latency threshold a service's slow requests are
// counted over, 0 when none.
func (r *Recorder) Threshold(service string) time.Duration { return r.cfg.Thresholds[service] }

// HasLatency reports whether a service's slow requests are counted.
func (r *Recorder) HasLatency(service string) bool {
	return r.cfg.Thresholds[service] > 0
}

// FirstSeen returns when a version was first seen, here or (to the
// minute) by a peer.
func (r *Recorder) FirstSeen(service, version string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	ok := false
	if svc := r.services[service]; svc != nil {
		if vc := svc.versions[version]; vc != nil {
			first, ok = vc.first, true
		}
	}
	for m := range r.peers[service][version] {
		if t := m.Time(); !ok || t.Before(first) {
			first, ok = t, true
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
			for i := range vc.minutes {
				mc := &vc.minutes[i]
				if mc.Counts != mc.stored {
					rows = append(rows, VersionRow{Service: sname, Version: vname, Minute: mc.m.Time(), Counts: mc.Counts.sub(mc.stored)})
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
		if svc == nil || svc.versions[row.Version] == nil {
			continue // pruned meanwhile
		}
		vc := svc.versions[row.Version]
		m := units.MinuteOf(row.Minute)
		if i, found := slices.BinarySearchFunc(vc.minutes, m, func(a minuteCounts, m units.Minute) int { return int(a.m - m) }); found {
			vc.minutes[i].stored = vc.minutes[i].stored.add(row.Counts)
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
			vc = &versionCounts{first: row.Minute}
			svc.versions[row.Version] = vc
		}
		if row.Minute.Before(vc.first) {
			vc.first = row.Minute
		}
		mc := vc.minute(units.MinuteOf(row.Minute))
		mc.Counts = mc.Counts.add(row.Counts)
		mc.stored = mc.stored.add(row.Counts)
	}
}

// SetPeers replaces the other instances' counts with rows.
func (r *Recorder) SetPeers(rows []VersionRow) {
	peers := map[string]map[string]map[units.Minute]Counts{}
	for _, row := range rows {
		vs := peers[row.Service]
		if vs == nil {
			vs = map[string]map[units.Minute]Counts{}
			peers[row.Service] = vs
		}
		ms := vs[row.Version]
		if ms == nil {
			ms = map[units.Minute]Counts{}
			vs[row.Version] = ms
		}
		m := units.MinuteOf(row.Minute)
		ms[m] = ms[m].add(row.Counts)
	}
	r.mu.Lock()
	r.peers = peers
	r.mu.Unlock()
}

func sum(vc *versionCounts, from, to time.Time) Counts {
	var c Counts
	if vc == nil {
		return c
	}
	lo, hi := units.MinuteOf(from), units.MinuteOf(to)
	for _, m := range vc.minutes {
		if m.m < lo || m.m > hi {
			continue
		}
		c = c.add(m.Counts)
	}
	return c
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
	for _, svc := range r.services {
		for v, vc := range svc.versions {
			i := 0
			for i < len(vc.minutes) && vc.minutes[i].m < cut {
				i++
			}
			vc.minutes = slices.Delete(vc.minutes, 0, i)
			if len(vc.minutes) == 0 && vc.first.Before(now.Add(-r.cfg.Retention)) {
				delete(svc.versions, v)
			}
		}
	}
}
