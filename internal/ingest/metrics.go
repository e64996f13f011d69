package ingest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// protocol is the transport a request came over.
type protocol uint8

const (
	protocolGRPC protocol = iota
	protocolHTTP
	numProtocols
)

// String returns the metric label value.
func (p protocol) String() string {
	switch p {
	case protocolGRPC:
		return "grpc"
	case protocolHTTP:
		return "http"
	}
	return "unknown"
}

// outcome is how a request ended.
type outcome uint8

const (
	outcomeOK outcome = iota
	outcomePartial
	outcomeInvalid
	outcomeTooLarge
	outcomeBackpressure
	outcomeUnavailable
	// outcomeUnauthenticated: no token, or an unknown one
	// (ingest.require_token).
	outcomeUnauthenticated
	// outcomeForbidden: a known token without the ingest scope.
	outcomeForbidden
	numOutcomes
)

// String returns the metric label value.
func (o outcome) String() string {
	switch o {
	case outcomeOK:
		return "ok"
	case outcomePartial:
		return "partial"
	case outcomeInvalid:
		return "invalid"
	case outcomeTooLarge:
		return "too_large"
	case outcomeBackpressure:
		return "backpressure"
	case outcomeUnavailable:
		return "unavailable"
	case outcomeUnauthenticated:
		return "unauthenticated"
	case outcomeForbidden:
		return "forbidden"
	}
	return "unknown"
}

// metrics holds the receiver's collectors, with the children of each
// protocol resolved up front so the hot path does no label lookups.
type metrics struct {
	requests *prometheus.CounterVec
	accepted *prometheus.CounterVec
	rejected *prometheus.CounterVec
	bytes    *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	memory   *prometheus.CounterVec
	denied   *prometheus.CounterVec

	by [numProtocols]protocolMetrics
}

type protocolMetrics struct {
	requests [numOutcomes]prometheus.Counter
	accepted prometheus.Counter
	rejected prometheus.Counter
	bytes    prometheus.Observer
	inflight prometheus.Gauge
	// memoryRefused counts requests refused because memory was short;
	// they are also counted in requests under outcomeBackpressure.
	memoryRefused prometheus.Counter
	// denied counts spans refused because the request's token is bound
	// to other services; they are also counted in rejected.
	denied prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailgate_ingest_requests_total",
			Help: "OTLP export requests received, by protocol and outcome.",
		}, []string{"protocol", "outcome"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailgate_ingest_spans_accepted_total",
			Help: "Spans accepted and handed to the pipeline.",
		}, []string{"protocol"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailgate_ingest_spans_rejected_total",
			Help: "Spans refused in otherwise accepted requests (partial success): invalid, or of a service the request's token is not bound to.",
		}, []string{"protocol"}),
		bytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tailgate_ingest_request_bytes",
			Help:    "Size of OTLP export requests after decompression.",
			Buckets: prometheus.ExponentialBuckets(1<<10, 4, 8), // 1KiB .. 16MiB
		}, []string{"protocol"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tailgate_ingest_inflight_requests",
			Help: "OTLP export requests being read, decoded or consumed.",
		}, []string{"protocol"}),
		memory: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailgate_ingest_memory_backpressure_requests_total",
			Help: "OTLP export requests refused with backpressure because the heap was above the admission threshold (also counted in tailgate_ingest_requests_total{outcome=\"backpressure\"}).",
		}, []string{"protocol"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailgate_ingest_spans_service_denied_total",
			Help: "Spans refused because the request's token is bound to other services (auth.tokens[].services; also counted in tailgate_ingest_spans_rejected_total).",
		}, []string{"protocol"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.accepted, m.rejected, m.bytes, m.inflight, m.memory, m.denied} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register ingest metrics: %w", err)
		}
	}
	for p := range numProtocols {
		pm := &m.by[p]
		for o := range numOutcomes {
			pm.requests[o] = m.requests.WithLabelValues(p.String(), o.String())
		}
		pm.accepted = m.accepted.WithLabelValues(p.String())
		pm.rejected = m.rejected.WithLabelValues(p.String())
		pm.bytes = m.bytes.WithLabelValues(p.String())
		pm.inflight = m.inflight.WithLabelValues(p.String())
		pm.memoryRefused = m.memory.WithLabelValues(p.String())
		pm.denied = m.denied.WithLabelValues(p.String())
	}
	return m, nil
}
