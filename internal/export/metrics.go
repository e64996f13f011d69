package export

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the exporter's Prometheus metrics, labelled with the exporter
// kind (otlp_grpc, otlp_http, file, none). Every span handed to the exporter
// ends in exactly one of sent, failed or abandoned; the sampler's
// not_sampled spans never reach it.
type metrics struct {
	sent     prometheus.Counter
	failed   prometheus.Counter
	dropped  prometheus.Counter
	retries  prometheus.Counter
	duration prometheus.Histogram
	queue    prometheus.GaugeFunc
	capacity prometheus.Gauge
}

func newMetrics(kind string, queueSpans func() float64) *metrics {
	labels := prometheus.Labels{"exporter": kind}
	return &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tailgate_exporter_sent_spans_total",
			Help:        "Spans of kept traces accepted by the export destination (for the none exporter: discarded as configured).",
			ConstLabels: labels,
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tailgate_exporter_failed_spans_total",
			Help:        "Spans the destination refused (permanent error or partial success) or that were still failing when retries ran out.",
			ConstLabels: labels,
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tailgate_exporter_abandoned_spans_total",
			Help:        "Spans lost because they were still queued or being retried when the shutdown deadline passed (never refused by the destination; see failed_spans_total for those).",
			ConstLabels: labels,
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tailgate_exporter_retries_total",
			Help:        "Batches sent again after a retryable error.",
			ConstLabels: labels,
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "tailgate_exporter_send_duration_seconds",
			Help:        "Duration of one attempt to send one batch.",
			ConstLabels: labels,
			Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		queue: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tailgate_exporter_queue_spans",
			Help:        "Spans held by the exporter: queued, being sent or waiting to be retried.",
			ConstLabels: labels,
		}, queueSpans),
		capacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "tailgate_exporter_queue_capacity_spans",
			Help:        "The most spans the exporter holds before Export blocks (queue.max_spans).",
			ConstLabels: labels,
		}),
	}
}

func (m *metrics) register(reg prometheus.Registerer, extra ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	var errs []error
	for _, c := range append([]prometheus.Collector{m.sent, m.failed, m.dropped, m.retries, m.duration, m.queue, m.capacity}, extra...) {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("register exporter metrics: %w", err)
	}
	return nil
}
