// Package slo keeps SLOs: their specs, SLI counts, error budgets, burn rates
// and alerts.
//
// # Counting
//
// Engine.Observe counts every entry span (kind SERVER or CONSUMER) of a
// service against the SLOs of that service, before sampling. A span is
// counted in the minute of its end time (event time), so that replaying a
// log or a Kafka partition lands each count in the same minute again. The
// rule is units.EventClock's, shared with golden signals: a span that ended
// more than EngineConfig.MaxLateness before now (the arrival instant passed
// to Observe), or in a minute that has not begun (clock skew), is counted in
// now's minute and in tailgate_slo_late_spans_total; no span is dropped for
// its timestamps. A count in a minute that is closed already joins that
// minute's history, recomputes its time slice, and is written to the store
// at the next flush. With EngineConfig.MaxSkew set, a span whose end time
// lies further than MaxSkew from now is not counted
// (tailgate_slo_spans_rejected_total).
//
// Counts go into one bucket per minute and per SLO (and per group value of a
// grouped SLO). A series keeps, for each minute that holds events, the
// cumulative good and total counts up to and including it, so the events of
// any window are the difference of two lookups: evaluating an SLO costs
// O(number of windows), whatever the traffic.
//
// # Windows
//
// A rolling window of n minutes evaluated at an instant in minute M holds the
// closed minutes M-n .. M-1 and the events of minute M so far. At a minute
// boundary that is exactly the last n minutes. A calendar window (month or
// week, Monday first, in the SLO's time zone) holds the minutes from the start
// of the current period to now.
//
// # Budget math (DESIGN.md, binding)
//
// With objective o (a fraction), over a window with total events T, of which
// B are bad:
//
//	allowed bad events (budget)  = (1 - o) × T
//	budget remaining (fraction)  = 1 - B / ((1 - o) × T)    (1 untouched, < 0 overspent)
//	SLI                          = (T - B) / T
//	burn rate                    = (B / T) / (1 - o)
//	time to exhaustion           = remaining × window length / burn rate(1h)
//
// Every value whose denominator is zero (no traffic) is reported as "no data"
// (a nil pointer, null in JSON), never NaN. An objective of 100% has no
// budget: remaining is 1 until the first bad event and 0 after it, and burn
// rates with bad events are nil (undefined).
//
// With the Timeslices budgeting method the events are time slices: a slice
// with data is good when its SLI reaches the slice target. With
// RatioTimeslices each slice with data counts as one event whose good part is
// its SLI. Slices are aligned to multiples of their length since the Unix
// epoch; a window holds the slices that start inside it.
//
// # Corrections
//
// A correction excludes the events of its periods (one-off, or recurring by
// an RFC 5545 RRULE) from every window. Periods are widened to whole minutes:
// a minute is excluded when it overlaps a correction period.
//
// # Alerts
//
// Each SLO (each group of a grouped SLO) has the multi-window multi-burn-rate
// tiers of the Google SRE Workbook, scaled to its window, and optional budget
// and no-data alerts. An alert goes inactive → pending → firing → resolved;
// see alert.go for the rules that keep it from flapping and from firing on a
// cold start.
package slo
