package signals

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// overflowLabel marks the series that collects label sets beyond the limit,
// named as the OpenTelemetry SDK names it.
const overflowLabel = "otel_metric_overflow"

// serviceLabelName is the Prometheus label of the built-in service entry,
// as the spanmetrics connector and Tempo's metrics generator name it. A
// label named service is overwritten by the Prometheus Operator's target
// label of the same name (and stored as exported_service).
const serviceLabelName = "service_name"

// maxLabelValueLen bounds a label value read from an attribute.
const maxLabelValueLen = 128

// statusClass is the status_class label: the HTTP status class when the
// span has one, else "error" or "ok" by the span's availability.
type statusClass uint8

const (
	classOK statusClass = iota
	classError
	class1xx
	class2xx
	class3xx
	class4xx
	class5xx
	numStatusClasses
)

var statusClassNames = [numStatusClasses]string{"ok", "error", "1xx", "2xx", "3xx", "4xx", "5xx"}

// String returns the label value.
func (c statusClass) String() string { return statusClassNames[c] }

func statusClassOf(sp *otlp.Span, bad bool) statusClass {
	if h := sp.HTTPStatus; h >= 100 && h <= 599 {
		return class1xx + statusClass(h/100-1)
	}
	if bad {
		return classError
	}
	return classOK
}

func kindIndex(k otlp.Kind) int {
	if k == otlp.KindConsumer {
		return 1
	}
	return 0
}

// labelSpec is one allow-listed label.
type labelSpec struct {
	key     string // the allow-list entry (an attribute key unless builtin)
	name    string // the Prometheus label name
	builtin bool
}

// series is one label set of the RED metrics.
type series struct {
	key      string   // the label values joined, the table's identity
	labels   []string // label values in allow-list order
	service  string
	overflow bool
	count    uint64
	errors   uint64
	sum      uint64   // ns
	buckets  []uint64 // per histogram bound, then +Inf; not cumulative
	lastSeen int64
}

// seriesTable holds the label sets of the RED metrics, at most limit of them
// counting the overflow series. The three metrics share the label sets, so
// each has the same series and the same limit.
type seriesTable struct {
	m        map[uint64]*series
	n        int // entries in m
	limit    int
	nbuckets int
	overflow *series
	gen      uint64 // bumped when series are dropped, to invalidate caches
}

func newSeriesTable(limit, bounds int) seriesTable {
	return seriesTable{m: map[uint64]*series{}, limit: limit, nbuckets: bounds + 1}
}

func (t *seriesTable) len() int {
	if t.overflow != nil {
		return t.n + 1
	}
	return t.n
}

// perService counts the label sets of each service.
func (t *seriesTable) perService() map[string]int {
	out := map[string]int{}
	for _, s := range t.m {
		out[s.service]++
	}
	return out
}

// purge drops series not seen since the given time (unix ns).
func (t *seriesTable) purge(since int64) {
	for h, s := range t.m {
		if s.lastSeen < since {
			delete(t.m, h)
			t.n--
		}
	}
	t.gen++
}

// seriesFor returns the series of a request of op, creating it within the
// limit. attrs are the span's attributes, resAttrs its resource's.
func (s *Signals) seriesFor(op *operation, sp *otlp.Span, attrs, resAttrs otlp.Attrs, class statusClass) *series {
	st := &s.st
	key := st.scratch[:0]
	for i, l := range s.labels {
		if i > 0 {
			key = append(key, 0xff) // never in UTF-8
		}
		start := len(key)
		switch {
		case !l.builtin:
			v, ok := attrs.Get(l.key)
			if !ok {
				v, ok = resAttrs.Get(l.key)
			}
			if ok {
				key = v.AppendText(key)
			}
			if len(key)-start > maxLabelValueLen {
				key = key[:start+maxLabelValueLen]
			}
		case l.key == LabelService:
			key = append(key, op.svc.name...)
		case l.key == LabelOperation:
			key = append(key, op.name...)
		case l.key == LabelStatusClass:
			key = append(key, class.String()...)
		case l.key == LabelSpanKind:
			key = append(key, sp.Kind.String()...)
		}
	}
	st.scratch = key
	h := hashBytes(key)
	t := &st.series
	if ser, ok := t.m[h]; ok && ser.key == string(key) {
		return ser
	} else if ok {
		// A 64-bit hash collision between two label sets: vanishingly rare,
		// and the overflow series is the honest place for it.
		return s.overflowSeries()
	}
	if t.n+1 >= t.limit {
		return s.overflowSeries()
	}
	ser := &series{key: string(key), service: op.svc.name, buckets: make([]uint64, t.nbuckets)}
	ser.labels = splitKey(ser.key, len(s.labels))
	t.m[h] = ser
	t.n++
	return ser
}

func splitKey(key string, n int) []string {
	out := make([]string, 0, n)
	start := 0
	for i := 0; i < len(key); i++ {
		if key[i] == 0xff {
			out = append(out, key[start:i])
			start = i + 1
		}
	}
	return append(out, key[start:])
}

func (s *Signals) overflowSeries() *series {
	t := &s.st.series
	if t.overflow == nil {
		t.overflow = &series{overflow: true, buckets: make([]uint64, t.nbuckets)}
		s.log.Warn("metric series limit reached; new label sets fold into the series labelled otel_metric_overflow=\"true\"",
			"limit", t.limit, "metrics", "tailgate_service_requests_total, tailgate_service_errors_total, tailgate_service_request_duration_seconds")
	}
	return t.overflow
}

// descs are the metric descriptions of the collector.
type descs struct {
	requests, errors, duration                         *prometheus.Desc
	requestsOverflow, errorsOverflow, durationOverflow *prometheus.Desc

	seriesOverflow, spans, entrySpans, lateSpans, opsFolded, servicesFolded  *prometheus.Desc
	untrackedKeys, denseRefused, errorTraces, failedRequests, bucketsWritten *prometheus.Desc
	flushErrors, rowsDropped, originKeysFolded                               *prometheus.Desc
	series, services, sketchBytes                                            *prometheus.Desc
}

func newDescs(labels []labelSpec) descs {
	names := make([]string, len(labels))
	for i, l := range labels {
		names[i] = l.name
	}
	over := []string{overflowLabel}
	const (
		reqHelp = "Requests (entry spans) per service, operation and status class, from 100% of spans before sampling."
		errHelp = "Requests that were bad for availability (status ERROR, HTTP 5xx, or a server-fault gRPC code)."
		durHelp = "Duration of requests (entry spans) in seconds."
	)
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return descs{
		requests:         prometheus.NewDesc("tailgate_service_requests_total", reqHelp, names, nil),
		errors:           prometheus.NewDesc("tailgate_service_errors_total", errHelp, names, nil),
		duration:         prometheus.NewDesc("tailgate_service_request_duration_seconds", durHelp, names, nil),
		requestsOverflow: prometheus.NewDesc("tailgate_service_requests_total", reqHelp, over, nil),
		errorsOverflow:   prometheus.NewDesc("tailgate_service_errors_total", errHelp, over, nil),
		durationOverflow: prometheus.NewDesc("tailgate_service_request_duration_seconds", durHelp, over, nil),

		seriesOverflow:   d("tailgate_signals_overflow_requests_total", "Requests counted in the otel_metric_overflow series because the series limit was reached."),
		spans:            d("tailgate_signals_spans_total", "Spans observed for golden signals and cardinality."),
		entrySpans:       d("tailgate_signals_entry_spans_total", "Entry spans (SERVER or CONSUMER) counted as requests."),
		lateSpans:        d("tailgate_signals_late_spans_total", "Requests counted in the minute they arrived because they ended more than max_lateness earlier, or in a minute that had not begun."),
		opsFolded:        d("tailgate_signals_other_operation_requests_total", "Requests counted under operation \"other\" because their service reached max_operations_per_service."),
		servicesFolded:   d("tailgate_signals_other_service_requests_total", "Requests counted under service \"other\" because max_services was reached."),
		untrackedKeys:    d("tailgate_signals_cardinality_untracked_attributes_total", "Attributes not tracked because their service reached max_keys_per_service."),
		denseRefused:     d("tailgate_signals_cardinality_sketches_refused_total", "Attribute keys whose distinct count became a lower bound because cardinality.max_memory was used up."),
		errorTraces:      d("tailgate_signals_error_traces_total", "Error traces analysed for error origins."),
		failedRequests:   d("tailgate_signals_failed_requests_total", "Failed requests (bad entry spans) whose error origin was recorded."),
		bucketsWritten:   d("tailgate_signals_buckets_written_total", "Minute buckets written to the store."),
		flushErrors:      d("tailgate_signals_flush_errors_total", "Failed writes of buckets or error origins to the store (retried at the next flush)."),
		rowsDropped:      d("tailgate_signals_rows_dropped_total", "Bucket and origin rows dropped because the store failed for too long."),
		originKeysFolded: d("tailgate_signals_origin_rows_folded_total", "Error origins counted under \"other\" because too many distinct origins arrived between flushes."),
		series:           d("tailgate_signals_series", "Label sets of the RED metrics, counting the overflow series."),
		services:         d("tailgate_signals_services", "Services tracked."),
		sketchBytes:      d("tailgate_signals_cardinality_sketch_bytes", "Memory of the distinct-value counters of the cardinality report."),
	}
}

// Describe implements prometheus.Collector. It sends no descriptions, which
// makes the collector unchecked: the overflow series carries only the
// otel_metric_overflow label, as the OpenTelemetry SDK writes it, so its
// label names differ from the other series of the same metric.
func (s *Signals) Describe(chan<- *prometheus.Desc) {}

// seriesSnapshot is a series copied out of the lock.
type seriesSnapshot struct {
	labels        []string
	overflow      bool
	count, errors uint64
	sum           float64
	buckets       []uint64
}

// Collect implements prometheus.Collector.
func (s *Signals) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	st := &s.st
	snaps := make([]seriesSnapshot, 0, st.series.len())
	snap := func(ser *series) {
		snaps = append(snaps, seriesSnapshot{
			labels: ser.labels, overflow: ser.overflow,
			count: ser.count, errors: ser.errors, sum: float64(ser.sum) / 1e9,
			buckets: append([]uint64(nil), ser.buckets...),
		})
	}
	for _, ser := range st.series.m {
		snap(ser)
	}
	if st.series.overflow != nil {
		snap(st.series.overflow)
	}
	c := st.c
	nseries := st.series.len()
	nservices := len(st.services)
	if st.other != nil {
		nservices++
	}
	sketchBytes := 0
	s.forEachService(func(svc *service) {
		for _, t := range []*keyTable{&svc.spanKeys, &svc.resKeys} {
			for _, k := range t.keys {
				sketchBytes += k.values.memory()
			}
		}
	})
	s.mu.Unlock()
	s.originMu.Lock()
	orig := s.orig
	s.originMu.Unlock()

	bounds := s.cfg.HistogramBuckets
	for _, sn := range snaps {
		reqD, errD, durD := s.descs.requests, s.descs.errors, s.descs.duration
		labels := sn.labels
		if sn.overflow {
			reqD, errD, durD = s.descs.requestsOverflow, s.descs.errorsOverflow, s.descs.durationOverflow
			labels = []string{"true"}
		}
		ch <- prometheus.MustNewConstMetric(reqD, prometheus.CounterValue, float64(sn.count), labels...)
		ch <- prometheus.MustNewConstMetric(errD, prometheus.CounterValue, float64(sn.errors), labels...)
		cum := make(map[float64]uint64, len(bounds))
		var acc uint64
		for i, b := range bounds {
			acc += sn.buckets[i]
			cum[b] = acc
		}
		ch <- prometheus.MustNewConstHistogram(durD, sn.count, sn.sum, cum, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(s.descs.seriesOverflow, c.seriesOverflow)
	counter(s.descs.spans, c.spans)
	counter(s.descs.entrySpans, c.entrySpans)
	counter(s.descs.lateSpans, c.lateSpans+orig.late)
	counter(s.descs.opsFolded, c.opsFolded)
	counter(s.descs.servicesFolded, c.servicesFolded)
	counter(s.descs.untrackedKeys, c.untrackedKeys)
	counter(s.descs.denseRefused, c.denseRefused)
	counter(s.descs.errorTraces, orig.errorTraces)
	counter(s.descs.failedRequests, orig.failedRequests)
	counter(s.descs.bucketsWritten, c.bucketsWritten)
	counter(s.descs.flushErrors, c.flushErrors)
	counter(s.descs.rowsDropped, c.rowsDropped)
	counter(s.descs.originKeysFolded, orig.keysFolded)
	ch <- prometheus.MustNewConstMetric(s.descs.series, prometheus.GaugeValue, float64(nseries))
	ch <- prometheus.MustNewConstMetric(s.descs.services, prometheus.GaugeValue, float64(nservices))
	ch <- prometheus.MustNewConstMetric(s.descs.sketchBytes, prometheus.GaugeValue, float64(sketchBytes))
}
