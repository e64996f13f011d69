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
// Field numbers follow opentelemetry/proto/trace/v1/trace.proto and
// opentelemetry/proto/common/v1/common.proto.
package otlp
