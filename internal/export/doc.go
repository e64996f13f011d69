// Package export sends kept traces to their tracing backend: OTLP gRPC or
// HTTP, a file, or nowhere.
//
// The sampler hands Export encoded ExportTraceServiceRequest bytes (resource
// spans entries written by otlp.Encoder). They wait in a queue bounded in
// spans; when it is full, Export blocks, which pushes back on the sampler
// and from there on ingest instead of losing kept traces. Senders merge
// queued requests into batches by concatenating their bytes (concatenated
// resource_spans entries are a valid request) up to queue.max_batch_spans
// spans and queue.max_batch_bytes bytes, or after queue.batch_timeout. The OTLP exporters send those bytes
// as they are, without decoding them: gRPC through a pass-through codec,
// HTTP as an application/x-protobuf body. Retryable failures (per the OTLP
// specification) are retried with exponential backoff and jitter, honouring
// the server's RetryInfo or Retry-After; anything else fails the batch.
//
// Every span handed to Export ends up counted exactly once in
// tailgate_exporter_sent_spans_total, tailgate_exporter_failed_spans_total
// (the backend refused it, the error was permanent, or retries ran out) or
// tailgate_exporter_abandoned_spans_total (still queued or in retry when
// Shutdown's deadline passed).
//
// With queue.persistent (OTLP only) the queue lives in files under
// storage.path/export-queue/ instead (pqueue.go): Export returns once the
// request is written there, a request leaves the files only when the
// backend accepted it or refused it for good, the retry budget no longer
// fails a batch, and on start every request not acknowledged is sent again
// (at least once). Spans still queued at the shutdown deadline then stay
// in the files for the next start rather than count as abandoned. The
// queue is bounded in bytes (queue.max_bytes); past 90% of it only
// requests holding a span with status ERROR are taken, and the rest wait
// in Export as with the memory queue.
package export
