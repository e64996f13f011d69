package canary

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// SeriesPoint is one minute of a canary analysis, for the dashboard's
// canary view: both sides' counts of the minute, and the test as it stood
// with the counts up to the minute's end.
type SeriesPoint struct {
	Minute   time.Time `json:"minute"`
	Canary   Counts    `json:"canary"`
	Baseline Counts    `json:"baseline"`
	// ErrorRatio and Latency are the cumulative test: the difference of
	// the ratios with its always-valid interval. A canary fails once
	// Lower is above the test's margin, passes once Upper is below its
	// tolerance: the decision boundaries. Nil on the minute before the
	// analysis, which shows the baseline alone.
	ErrorRatio *TestStats `json:"error_ratio,omitempty"`
	Latency    *TestStats `json:"latency,omitempty"`
	// Verdict is the verdict with the counts up to the minute's end;
	// empty on the minute before the analysis.
	Verdict Outcome `json:"verdict,omitempty"`
}

// SeriesResult is a canary's verdict now with its history, minute by
// minute since the analysis began.
type SeriesResult struct {
	CheckResult
	Points []SeriesPoint `json:"points"`
}

// Series judges a canary now, as Check does, and again at the end of each
// minute since the analysis began (at most the last 6 hours). The minute
// before it is the first point, with the baseline's counts alone, when
// the baseline served then.
func (c *Checker) Series(req CheckRequest) (SeriesResult, error) {
	res, err := c.Check(req)
	if err != nil {
		return SeriesResult{}, err
	}
	req.Service, req.Canary, req.Baseline = res.Service, res.CanaryVersion, strings.TrimSpace(req.Baseline)
	cfg := c.configFor(req.Service)
	isCanary, isBaseline := versionMatch(req.Canary, req.Baseline)
	from, to := units.MinuteOf(res.Since), units.MinuteOf(res.At)
	if to-from > 360 {
		from = to - 360
	}
	canary := c.rec.OperationMinutes(req.Service, isCanary, from.Time(), to.Time())
	base := c.rec.OperationMinutes(req.Service, isBaseline, from.Time(), to.Time())
	slow := c.rec.Threshold(req.Service) > 0
	cumC, cumB := map[string]Counts{}, map[string]Counts{}
	out := SeriesResult{CheckResult: res, Points: []SeriesPoint{}}
	before := (from - 1).Time()
	if b := sumOps(c.rec.Operations(req.Service, isBaseline, before, before)); b.Requests > 0 {
		out.Points = append(out.Points, SeriesPoint{Minute: before, Baseline: b})
	}
	for m := from; m <= to; m++ {
		cm, bm := canary[m], base[m]
		if len(cm) == 0 && len(bm) == 0 {
			continue
		}
		p := SeriesPoint{Minute: m.Time(), Canary: sumOps(cm), Baseline: sumOps(bm)}
		addOps(cumC, cm)
		addOps(cumB, bm)
		in, _ := compareInput(cumC, cumB, slow, cfg.PerOperation)
		in.Objective = c.objectives[req.Service]
		v := Judge(in, cfg)
		p.ErrorRatio, p.Latency, p.Verdict = &v.ErrorRatio, v.Latency, v.Verdict
		out.Points = append(out.Points, p)
	}
	return out, nil
}

func addOps(to, from map[string]Counts) {
	for op, x := range from {
		to[op] = to[op].add(x)
	}
}

// sumOps returns the sum of counts per operation.
func sumOps(ops map[string]Counts) Counts {
	var c Counts
	for _, x := range ops {
		c = c.add(x)
	}
	return c
}

// OperationMinutes returns the counts per minute and operation of the
// service's versions that match, in the minutes from from's through to's,
// with the peers'.
func (r *Recorder) OperationMinutes(service string, match func(version string) bool, from, to time.Time) map[units.Minute]map[string]Counts {
	out := map[units.Minute]map[string]Counts{}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.each(service, match, from, to, func(_, op string, m units.Minute, c Counts) {
		ops := out[m]
		if ops == nil {
			ops = map[string]Counts{}
			out[m] = ops
		}
		ops[op] = ops[op].add(c)
	})
	return out
}

// VersionTraffic is one version's requests over a time range.
type VersionTraffic struct {
	Version   string    `json:"version"`
	FirstSeen time.Time `json:"first_seen"`
	Counts
}

// ServiceVersions are a service's versions with traffic, busiest first.
type ServiceVersions struct {
	Service  string           `json:"service"`
	Versions []VersionTraffic `json:"versions"`
}

// Versions returns the services with more than one version serving in
// the minutes from from's through to's (the fleet's counts included),
// each with its versions, busiest first: the canaries there are to
// judge, the busiest version being the baseline.
func (r *Recorder) Versions(from, to time.Time) []ServiceVersions {
	r.mu.Lock()
	names := make([]string, 0, len(r.services)+len(r.peers))
	for s := range r.services {
		names = append(names, s)
	}
	for s := range r.peers {
		if r.services[s] == nil {
			names = append(names, s)
		}
	}
	r.mu.Unlock()
	slices.Sort(names)
	var out []ServiceVersions
	for _, s := range names {
		by := map[string]Counts{}
		r.mu.Lock()
		r.each(s, func(string) bool { return true }, from, to, func(v, _ string, _ units.Minute, c Counts) { by[v] = by[v].add(c) })
		r.mu.Unlock()
		if len(by) < 2 {
			continue
		}
		sv := ServiceVersions{Service: s}
		for v, c := range by {
			first, _ := r.FirstSeen(s, v)
			sv.Versions = append(sv.Versions, VersionTraffic{Version: v, FirstSeen: first.UTC(), Counts: c})
		}
		slices.SortFunc(sv.Versions, func(a, b VersionTraffic) int {
			if a.Requests != b.Requests {
				return cmp.Compare(b.Requests, a.Requests)
			}
			return strings.Compare(a.Version, b.Version)
		})
		out = append(out, sv)
	}
	return out
}

// Versions returns the services with more than one version serving in
// the last window (see Recorder.Versions).
func (c *Checker) Versions(window time.Duration) []ServiceVersions {
	now := c.now()
	return c.rec.Versions(now.Add(-window), now)
}
