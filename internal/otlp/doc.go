// Package otlp reads and writes the OTLP trace wire format
// (opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest) directly
// from and into protobuf bytes.
//
// The hot path of tailgate touches every span a fleet sends. Decoding each
// span into pdata objects and encoding it again costs allocations and several
// times the span's encoded size in memory. Instead, Parse validates a request
// in one schema-aware scan and returns compact Span views whose Raw field is
// the span's own encoding; the sampler buffers those bytes and the exporter
// writes them back out unchanged, with the sampling attributes appended
// (repeated fields may be appended in protobuf, and a repeated singular field
// takes its last value, which is how trace_state is rewritten).
//
// Parse validates every attribute, so it also splits each one as it goes:
// Request.SpanAttrs and Request.ResourceAttrs return them as key/value
// views without another walk, and the SLO engine, the golden signals and
// anything else handed the Request read those lists instead of the bytes.
// Code that kept only a span's bytes (the sampler's buffer) reads them
// with Span.Attr and Span.Attrs. No other package decodes OTLP protobuf:
// ParseExportResponse and ParseStatusMessage read the exporters' replies.
//
// Field numbers follow opentelemetry/proto/trace/v1/trace.proto and
// opentelemetry/proto/common/v1/common.proto.
package otlp
