// Package signals turns every span into golden signals per service and
// operation, guards metric cardinality, and finds where errors start.
//
// Observe sees 100% of accepted spans, before sampling. For each entry span
// (SERVER or CONSUMER, DESIGN.md) it counts a request of its service and
// operation, whether it was bad for availability, and its latency in a
// mergeable sketch; in-flight requests (saturation) follow from Little's law
// as the sum of request durations over the bucket's length. The counts live
// in per-minute buckets in memory and are written to the Store once a minute
// can no longer receive spans (max_lateness after its end), so every range
// the API asks for is answered by merging buckets.
//
// The same pass feeds the /metrics RED metrics, whose labels come from an
// allow-list and whose series are capped per metric (new label sets beyond
// the limit fold into one series labelled otel_metric_overflow="true"), and
// the cardinality report: a HyperLogLog of the values of every attribute key
// per service, which names the keys that would explode a metrics backend if
// they became labels.
//
// ObserveTrace analyses decided error traces and records, for each failed
// request, the span where its error started (see origin.go for the rules).
package signals
