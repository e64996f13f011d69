package signals

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// CardinalityReport names, per service, the attribute keys with the most
// distinct values and what they would cost as metric labels.
type CardinalityReport struct {
	// WindowStart is when the current window began; counts are over it.
	WindowStart time.Time `json:"window_start"`
	// PreviousWindowStart is when the previous window began, if any.
	PreviousWindowStart *time.Time `json:"previous_window_start,omitempty"`
	FlagThreshold       int        `json:"flag_threshold"`
	// SeriesLimit and Series are the label-set limit and count of the RED
	// metrics; Overflowing is set once new label sets were folded.
	SeriesLimit int                  `json:"series_limit"`
	Series      int                  `json:"series"`
	Overflowing bool                 `json:"overflowing"`
	Services    []ServiceCardinality `json:"services"`
}

// ServiceCardinality is the report of one service.
type ServiceCardinality struct {
	Service string `json:"service"`
	// Spans counts the service's spans in the current window.
	Spans uint64 `json:"spans"`
	// Series counts the service's label sets in the RED metrics.
	Series int `json:"series"`
	// KeysTracked counts the keys tracked (span and resource); Flagged those
	// over the threshold; UntrackedKeys is a lower bound of the keys beyond
	// max_keys_per_service.
	KeysTracked   int              `json:"keys_tracked"`
	Flagged       int              `json:"flagged"`
	UntrackedKeys uint64           `json:"untracked_keys"`
	Keys          []KeyCardinality `json:"keys"`
}

// KeyCardinality is the report of one attribute key of a service.
type KeyCardinality struct {
	Key string `json:"key"`
	// Source is "span" or "resource".
	Source string `json:"source"`
	// Distinct is the estimated number of distinct values (HyperLogLog,
	// ~0.8% standard error) over the current window, or the previous one
	// when that was larger.
	Distinct uint64 `json:"distinct"`
	// DistinctIsLowerBound is set when the sketch memory budget ran out
	// before this key got a sketch.
	DistinctIsLowerBound   bool   `json:"distinct_is_lower_bound,omitempty"`
	CurrentWindowDistinct  uint64 `json:"current_window_distinct"`
	PreviousWindowDistinct uint64 `json:"previous_window_distinct"`
	// Share is the fraction of the service's spans that carry the key.
	Share float64 `json:"share"`
	// SeriesAsLabel estimates the series of one RED metric of the service
	// if the key became a label: distinct values times the service's
	// current series, capped by the spans that carry the key.
	SeriesAsLabel uint64 `json:"series_as_label"`
	// AddedSeries is SeriesAsLabel minus the service's current series.
	AddedSeries uint64 `json:"added_series"`
	// Flagged is set when Distinct reaches the flag threshold.
	Flagged    bool   `json:"flagged"`
	Suggestion string `json:"suggestion,omitempty"`
}

// Cardinality returns the report for one service (all when service is
// empty), with the top keys by distinct values of each (all when top <= 0).
// Services come worst first.
func (s *Signals) Cardinality(only string, top int) CardinalityReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.st
	rep := CardinalityReport{
		WindowStart:   st.cardSince.UTC(),
		FlagThreshold: s.cfg.Cardinality.FlagThreshold,
		SeriesLimit:   s.cfg.SeriesLimit,
		Series:        st.series.len(),
		Overflowing:   st.series.overflow != nil,
		Services:      []ServiceCardinality{},
	}
	if !st.prevSince.IsZero() {
		p := st.prevSince.UTC()
		rep.PreviousWindowStart = &p
	}
	perService := st.series.perService()
	s.forEachService(func(svc *service) {
		if only != "" && svc.name != only {
			return
		}
		rep.Services = append(rep.Services, s.serviceCardinality(svc, perService[svc.name], top))
	})
	worst := func(sc ServiceCardinality) uint64 {
		if len(sc.Keys) == 0 {
			return 0
		}
		return sc.Keys[0].Distinct
	}
	slices.SortFunc(rep.Services, func(a, b ServiceCardinality) int {
		if c := cmp.Compare(worst(b), worst(a)); c != 0 {
			return c
		}
		return strings.Compare(a.Service, b.Service)
	})
	return rep
}

func (s *Signals) serviceCardinality(svc *service, series int, top int) ServiceCardinality {
	sc := ServiceCardinality{
		Service:     svc.name,
		Spans:       svc.spans,
		Series:      series,
		KeysTracked: len(svc.spanKeys.keys) + len(svc.resKeys.keys),
		Keys:        []KeyCardinality{},
	}
	u1, _ := svc.spanKeys.untracked.estimate()
	u2, _ := svc.resKeys.untracked.estimate()
	sc.UntrackedKeys = u1 + u2
	spans := max(svc.spans, 1)
	add := func(t *keyTable, source string) {
		for _, k := range t.keys {
			cur, atLeast := k.values.estimate()
			kc := KeyCardinality{
				Key:                    k.name,
				Source:                 source,
				Distinct:               cur,
				DistinctIsLowerBound:   atLeast,
				CurrentWindowDistinct:  cur,
				PreviousWindowDistinct: k.prev.distinct,
				Share:                  min(float64(k.spans)/float64(spans), 1),
			}
			carriers := k.spans
			if k.prev.distinct > cur {
				kc.Distinct, kc.DistinctIsLowerBound = k.prev.distinct, k.prev.atLeast
				carriers = max(carriers, k.prev.spans)
			}
			if svc.spans == 0 && svc.prevSpans > 0 {
				kc.Share = min(float64(k.prev.spans)/float64(svc.prevSpans), 1)
			}
			base := uint64(max(series, 1))
			kc.SeriesAsLabel = min(satMul(kc.Distinct, base), max(carriers, kc.Distinct))
			if kc.SeriesAsLabel > uint64(series) {
				kc.AddedSeries = kc.SeriesAsLabel - uint64(series)
			}
			if kc.Distinct >= uint64(s.cfg.Cardinality.FlagThreshold) {
				kc.Flagged = true
				kc.Suggestion = suggestion(k.name, source)
				sc.Flagged++
			}
			sc.Keys = append(sc.Keys, kc)
		}
	}
	add(&svc.spanKeys, "span")
	add(&svc.resKeys, "resource")
	slices.SortFunc(sc.Keys, func(a, b KeyCardinality) int {
		if c := cmp.Compare(b.Distinct, a.Distinct); c != 0 {
			return c
		}
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	if top > 0 && len(sc.Keys) > top {
		sc.Keys = sc.Keys[:top]
	}
	return sc
}

func satMul(a, b uint64) uint64 {
	if a != 0 && b > ^uint64(0)/a {
		return ^uint64(0)
	}
	return a * b
}

// suggestion says what to do instead of using a high-cardinality key as a
// label, from the key's name.
func suggestion(key, source string) string {
	k := strings.ToLower(key)
	has := func(parts ...string) bool {
		for _, p := range parts {
			if strings.Contains(k, p) {
				return true
			}
		}
		return false
	}
	switch {
	case has("url", "uri", "http.target", "path"):
		return "a raw URL or path: label by http.route (the templated route, as the operation label does) instead"
	case has("statement", "query", "db.query"):
		return "a query text: label by db.operation.name and db.collection.name, or normalise the statement"
	case source == "resource" && has("instance", "pod", "container", "host.id", "process.pid"):
		return "an instance identifier that changes with every deploy: aggregate by service, version or deployment instead"
	case has("session", "user", "token", "account", "customer", "email") ||
		strings.HasSuffix(k, ".id") || strings.HasSuffix(k, "_id") || strings.HasSuffix(k, "id"):
		return "an identifier: keep it on spans to search traces and use exemplars, never as a metric label"
	case has("address", ".ip", "peer", "host", "port"):
		return "a network address: label by the service or group it belongs to, not per address"
	case has("time", "date"):
		return "a timestamp: never a metric label"
	}
	return "too many values for a label: bucket them into a small set, or keep the key on spans only"
}
