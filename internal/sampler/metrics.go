package sampler

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sampler's Prometheus metrics. Counters are resolved per
// rule up front so the hot path does no label lookups.
type metrics struct {
	received     prometheus.Counter
	backpressure prometheus.Counter
	// stressEpisodes counts the starts of stress relief episodes and
	// stressTraces the traces decided early within them.
	stressEpisodes prometheus.Counter
	stressTraces   prometheus.Counter
	latency        prometheus.Histogram
	exportFailed   prometheus.Counter

	// Indexed by extension index (rules first, then rules known only from
	// a loaded decision cache); the last entry is the "none" rule.
	decidedKeep []prometheus.Counter
	decidedDrop []prometheus.Counter
	spansKept   []prometheus.Counter
	spansDrop   []prometheus.Counter

	lateKeep prometheus.Counter
	lateDrop prometheus.Counter

	// The push_back overload policy: refused requests, traces decided
	// early on a final verdict, episodes of refusal.
	overloadRefused  prometheus.Counter
	finalEarly       prometheus.Counter
	pushBackEpisodes prometheus.Counter
	// The dropped-ID filter: hits, and hits not trusted, by reason.
	filterHits    prometheus.Counter
	overrideError prometheus.Counter
	overrideRoot  prometheus.Counter
	// partialSpans counts late error spans of stress-dropped traces kept.
	partialSpans prometheus.Counter
	// snapshotFailed counts periodic decision cache saves that failed;
	// snapshotSeconds and snapshotBytes describe the last one that did
	// not.
	snapshotFailed  prometheus.Counter
	snapshotSeconds prometheus.Gauge
	snapshotBytes   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, ruleNames []string, s *Sampler) (*metrics, error) {
	decided := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tailgate_sampler_traces_decided_total",
		Help: "Traces decided, by decision and by the rule that decided (none: no rule matched).",
	}, []string{"decision", "rule"})
	kept := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tailgate_sampler_spans_kept_total",
		Help: "Spans kept (handed to the exporter), including late spans of kept traces, by rule.",
	}, []string{"rule"})
	// Not "dropped": these spans were decided against, not lost, and
	// tailgate_exporter_failed_spans_total and
	// tailgate_exporter_abandoned_spans_total count the lost ones.
	notSampled := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tailgate_sampler_spans_not_sampled_total",
		Help: "Spans of traces the sampler decided not to keep (a sampling decision, not a loss), by rule (none: no rule matched).",
	}, []string{"rule"})
	late := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tailgate_sampler_late_spans_total",
		Help: "Spans that arrived after their trace was decided; they follow the decision.",
	}, []string{"decision"})
	overrides := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tailgate_sampler_dropped_filter_overrides_total",
		Help: "Spans whose trace ID hit the dropped-trace filter but that started a buffered trace instead of being discarded, by reason (error: the span is bad for availability; root: a root span).",
	}, []string{"reason"})
	m := &metrics{
		overloadRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_overload_refused_requests_total",
			Help: "Export requests refused (all of their spans) because the trace buffer was over its limits (overload policy push_back).",
		}),
		finalEarly: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_overload_early_traces_total",
			Help: "Traces decided before their decision wait because the trace buffer was over its limits and no further span could change their verdict (overload policy push_back).",
		}),
		pushBackEpisodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_overload_episodes_total",
			Help: "Episodes begun in which the trace buffer stayed over its limits and new requests were refused (overload policy push_back).",
		}),
		filterHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_dropped_filter_hits_total",
			Help: "Spans of unbuffered traces whose trace ID the dropped-trace filter reported as dropped (true hits and false positives).",
		}),
		overrideError: overrides.WithLabelValues("error"),
		overrideRoot:  overrides.WithLabelValues("root"),
		partialSpans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_partial_spans_total",
			Help: "Late error spans of traces that stress relief had dropped, exported alone with sampling.partial=true.",
		}),
		snapshotFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_decision_cache_snapshot_failures_total",
			Help: "Periodic saves of the decision cache file that failed (each is logged).",
		}),
		snapshotSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tailgate_sampler_decision_cache_last_snapshot_duration_seconds",
			Help: "How long the last periodic save of the decision cache file took: the shards' copies, encoding, writing and fsync.",
		}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tailgate_sampler_decision_cache_last_snapshot_bytes",
			Help: "Size of the decision cache file the last periodic save wrote.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_spans_received_total",
			Help: "Spans accepted by the sampler.",
		}),
		backpressure: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_backpressure_requests_total",
			Help: "Export requests refused (all of their spans) because the sampler's intake was full.",
		}),
		stressEpisodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_stress_relief_episodes_total",
			Help: "Stress relief episodes begun: the trace buffer went over max_buffered_spans or max_buffered_bytes after a second or more within its limits.",
		}),
		stressTraces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_stress_relief_traces_total",
			Help: "Traces decided early, before their decision wait ended, because the trace buffer was over its limits.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tailgate_sampler_decision_latency_seconds",
			Help:    "Time from a trace's first span to its decision.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 2.5, 3, 5, 10, 20, 30, 45, 60, 120},
		}),
		exportFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_sampler_export_failed_spans_total",
			Help: "Kept spans the exporter did not take (its context ended, e.g. at the shutdown deadline).",
		}),
		lateKeep: late.WithLabelValues(Keep.String()),
		lateDrop: late.WithLabelValues(Drop.String()),
	}
	for _, name := range append(ruleNames, noRuleLabel) {
		m.decidedKeep = append(m.decidedKeep, decided.WithLabelValues(Keep.String(), name))
		m.decidedDrop = append(m.decidedDrop, decided.WithLabelValues(Drop.String(), name))
		m.spansKept = append(m.spansKept, kept.WithLabelValues(name))
		m.spansDrop = append(m.spansDrop, notSampled.WithLabelValues(name))
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	collectors := []prometheus.Collector{
		m.overloadRefused, m.finalEarly, m.pushBackEpisodes, m.filterHits, overrides, m.partialSpans, m.snapshotFailed,
		m.snapshotSeconds, m.snapshotBytes,
		m.received, m.backpressure, m.stressEpisodes, m.stressTraces, m.latency, m.exportFailed, decided, kept, notSampled, late,
		gauge("tailgate_sampler_buffered_traces", "Traces buffered, waiting for a decision.",
			func() float64 { return float64(s.sum(func(sh *shard) int64 { return sh.gTraces.Load() })) }),
		gauge("tailgate_sampler_buffered_spans", "Spans buffered, waiting for their trace's decision.",
			func() float64 { return float64(s.sum(func(sh *shard) int64 { return sh.gSpans.Load() })) }),
		gauge("tailgate_sampler_buffered_bytes", "Bytes held by buffered traces (arenas, span records, resource/scope copies).",
			func() float64 { return float64(s.sum(func(sh *shard) int64 { return sh.gBytes.Load() })) }),
		gauge("tailgate_sampler_decision_cache_bytes", "Estimated memory of the decision cache (kept IDs, dropped-ID filters and the storage their snapshot copies are made in).",
			func() float64 { return float64(s.sum(func(sh *shard) int64 { return sh.gCache.Load() })) }),
		gauge("tailgate_sampler_intake_spans", "Spans accepted but not yet buffered by their shard.",
			func() float64 { return float64(s.intake.Load()) }),
	}
	if reg != nil {
		for _, c := range collectors {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register sampler metrics: %w", err)
			}
		}
	}
	return m, nil
}
