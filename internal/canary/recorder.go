package canary

import (
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
	// Thresholds maps a service to its latency SLO's threshold: requests
	// over it are slow. Services without one count no slow requests.
	Thresholds map[string]time.Duration
	// Retention is how long per-minute counts are kept; default 6h.
	Retention time.Duration
	// MaxVersions bounds the versions kept per service; more are counted
	// under "other". Default 64.
	MaxVersions int
}

// Recorder counts the entry spans of every service by version and
// minute, for canary and post-deploy checks. It is safe for concurrent
// use; Observe takes one lock per request.
type Recorder struct {
	cfg RecorderConfig

	mu        sync.Mutex
	services  map[string]*svcCounts
	lastPrune units.Minute
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

// version returns the counters of a resource's service and version.
func (r *Recorder) version(service string, attrs otlp.Attrs, now time.Time) (*svcCounts, *versionCounts) {
	svc := r.services[service]
	if svc == nil {
		svc = &svcCounts{versions: map[string]*versionCounts{}, slow: r.cfg.Thresholds[service]}
		r.services[service] = svc
	}
	var ver []byte
	if v, ok := attrs.Get(r.cfg.VersionAttribute); ok {
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
	svc := r.services[service]
	if svc == nil {
		return Counts{}
	}
	return sum(svc.versions[version], from, to)
}

// CountOthers returns the counts of every version of service but version,
// in the minutes from from's through to's: the baseline when none is
// named.
func (r *Recorder) CountOthers(service, version string, from, to time.Time) Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c Counts
	svc := r.services[service]
	if svc == nil {
		return c
	}
	for v, vc := range svc.versions {
		if v != version {
			s := sum(vc, from, to)
			c.Requests, c.Errors, c.Slow = c.Requests+s.Requests, c.Errors+s.Errors, c.Slow+s.Slow
		}
	}
	return c
}

// HasLatency reports whether a service's slow requests are counted.
func (r *Recorder) HasLatency(service string) bool {
	return r.cfg.Thresholds[service] > 0
}

// FirstSeen returns when a version was first seen.
func (r *Recorder) FirstSeen(service, version string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if svc := r.services[service]; svc != nil {
		if vc := svc.versions[version]; vc != nil {
			return vc.first, true
		}
	}
	return time.Time{}, false
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
		c.Requests, c.Errors, c.Slow = c.Requests+m.Requests, c.Errors+m.Errors, c.Slow+m.Slow
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
