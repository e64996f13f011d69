// Package shed protects a Go service from overload by refusing the requests
// that can wait, so the critical ones get through.
//
// A [Shedder] keeps an adaptive concurrency limit, found from latency in the
// manner of TCP Vegas (as in Netflix's concurrency-limits): while requests
// finish about as fast as the fastest seen, the limit grows; when latency
// shows a queue building up, it shrinks. Each request has a [Criticality]
// (critical, default or sheddable), read from the context, a header or a
// route table, and may use only its share of the limit: sheddable requests
// are refused first (by default above 50% of the limit), default ones next
// (above 80%), critical ones only at the full limit.
//
// An operator, or a tailgate kill switch, can raise a shed level: the share
// of sheddable requests refused whatever the load, read from a tailgate flag
// over the OpenFeature Remote Evaluation Protocol (OFREP) or set directly.
//
// Refusals answer HTTP 503 with Retry-After ([Shedder.Middleware]) or gRPC
// RESOURCE_EXHAUSTED (the interceptors of package shedgrpc, apart so that
// HTTP services do not link gRPC), and set the span attributes
// shed.reason and shed.criticality on the request's span, so tailgate can
// tell shed requests from failures. Metrics go through the OpenTelemetry
// metrics API.
package shed
