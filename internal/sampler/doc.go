// Package sampler decides, per trace, whether to keep it.
//
// The sampler is a tail sampler: it buffers the spans of each trace until the
// trace is complete enough to judge, evaluates an ordered list of rules
// against the whole trace (first match wins), and hands kept traces to an
// Exporter, encoded as OTLP with their sampling rate and rule attached.
//
// # Data flow
//
// Consume copies the spans of a parsed OTLP request into one batch per shard
// (traces are sharded by trace ID) and queues the batches; a request is taken
// whole or refused whole with a *BackpressureError when the intake (spans
// queued but not yet buffered) is full. One goroutine owns each shard: it
// moves spans into per-trace buffers, decides traces when due, and encodes
// and exports the kept ones. No lock is taken per span.
//
// # Memory
//
// A buffered trace stores the encoded bytes of its spans in one arena
// ([]byte), without the trace_id field when it is a span's first or last
// (it is put back, byte for byte, on export); a 12-byte record per span
// (kind, status codes, root flag, resource group and where its bytes
// begin; IDs and times are read back from the bytes); and an 8-byte
// reference per distinct resource/scope pair, whose encodings each shard
// holds once for all its traces. The bytes counted against
// max_buffered_bytes are the capacities of the arena, records and group
// references, the shared groups, plus a fixed per-trace overhead.
//
// # Overload
//
// Beyond a shard's share of max_buffered_spans or max_buffered_bytes the
// overload policy applies. push_back (the default) decides early only the
// traces whose verdict is final, that no span still to come can change
// (see policy.final: conditions about the presence of something or about a
// bound that only grows stay true once true, error: false and
// attribute exists: false stay false once false, and rate_limit is never
// final), and while the shard stays over its share Consume refuses whole
// requests with a *BackpressureError (Buffer set) until decision deadlines
// drain it; requests are admitted again as soon as every shard is under
// its limits, whatever their size, so a retrying client always gets
// through. decide_early decides the traces nearest their deadline early
// (stress relief) until the buffer is back under 90% of the limit, logs
// once per episode and counts each activation; the IDs it dropped are
// remembered exactly so that a late error span of such a trace is exported
// alone, marked sampling.partial=true.
//
// # Timing
//
// There are no per-trace timers. Each shard keeps a timing wheel of
// trace IDs, one slot per tick (the idea of the OpenTelemetry Collector's
// idbatcher): a trace is entered in the slot of its deadline, which is the
// earliest of first span + decision_wait and root span + root_grace, and a
// single ticker advances every shard's wheel.
//
// # Decisions
//
// Rules are evaluated in order and the first whose conditions all hold
// decides; a trace no rule matches is dropped with the reason
// "no rule matched" (metric label rule="none"). sample_percent is
// deterministic in the trace ID as the OpenTelemetry probability sampling
// specification defines it: with R the low 56 bits of the trace ID and
// T = round((1-p) 2^56), a trace is kept iff R >= T, so every instance and
// every restart decides a trace the same way. Kept spans carry
// sampling.rate (1/p), sampling.rule and, for percentage rules, the W3C
// tracestate entry ot=th:T.
//
// # Decision cache
//
// Decided trace IDs are remembered for decision_cache.ttl so that late spans
// follow their trace's decision: kept IDs exactly (a map with the rule and
// rate, bounded by max_kept_traces), dropped IDs in a rotating pair of
// blocked Bloom filters sized for max_dropped_traces per ttl at
// false_positive_rate. A false positive makes the first span of a new trace
// look like a late span of a dropped one; with two filters the rate is at
// most twice false_positive_rate when both are full and far lower when
// they are not. So the filters are never trusted alone for a span that is
// bad for availability or a root span: those start a buffered trace
// (counted as overrides), and only spans without either signal are
// discarded on the filters' word. The cache is saved to a file every
// decision_cache.snapshot_interval (each shard copies its part between two
// batches; another goroutine writes the file and renames it into place)
// and on Shutdown, and loaded by New, so a restart does not split traces.
package sampler
