package sampler

import (
	"errors"
	"fmt"
	"time"
)

// ErrShuttingDown is returned by Consume once Shutdown has begun; receivers
// map it to gRPC UNAVAILABLE / HTTP 503.
var ErrShuttingDown = errors.New("sampler is shutting down")

// BackpressureError is returned by Consume when the intake is full or, under
// the push_back overload policy, the trace buffer is over its limits; none of
// the request's spans were taken. Receivers map it to gRPC
// RESOURCE_EXHAUSTED with RetryInfo / HTTP 429 with Retry-After.
type BackpressureError struct {
	// Spans is the size of the refused request.
	Spans int
	// Buffer is true when the trace buffer, not the intake, was full (the
	// push_back overload policy).
	Buffer bool
	// Delay is the suggested wait before retrying.
	Delay time.Duration
}

// Error implements error.
func (e *BackpressureError) Error() string {
	what := "sampler intake is full"
	if e.Buffer {
		what = "sampler trace buffer is over its limits"
	}
	return fmt.Sprintf("%s, %d spans refused: retry after %s", what, e.Spans, e.Delay)
}

// RetryAfter returns the suggested wait before retrying.
func (e *BackpressureError) RetryAfter() time.Duration { return e.Delay }

// Decision is what the sampler did with a trace.
type Decision uint8

// Decisions.
const (
	// Drop means the trace's spans are discarded.
	Drop Decision = iota
	// Keep means the trace's spans are exported.
	Keep
)

// String returns "keep" or "drop".
func (d Decision) String() string {
	switch d {
	case Keep:
		return "keep"
	case Drop:
		return "drop"
	default:
		return fmt.Sprintf("Decision(%d)", uint8(d))
	}
}

// MarshalText writes the decision's String form.
func (d Decision) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Trigger is why a trace was decided when it was.
type Trigger uint8

// Triggers.
const (
	// TriggerRoot: the root span arrived root_grace ago.
	TriggerRoot Trigger = iota
	// TriggerWait: the first span arrived decision_wait ago.
	TriggerWait
	// TriggerStress: the buffer was over its limits (stress relief).
	TriggerStress
	// TriggerShutdown: the sampler is shutting down.
	TriggerShutdown
	// TriggerSize: the trace alone outgrew what one trace may hold.
	TriggerSize
	// TriggerFinal: the buffer was over its limits (push_back policy) and
	// no span that may still arrive can change the trace's verdict.
	TriggerFinal
)

// String returns the trigger's name.
func (t Trigger) String() string {
	switch t {
	case TriggerRoot:
		return "root"
	case TriggerWait:
		return "decision_wait"
	case TriggerStress:
		return "stress_relief"
	case TriggerShutdown:
		return "shutdown"
	case TriggerSize:
		return "trace_size"
	case TriggerFinal:
		return "verdict_final"
	default:
		return fmt.Sprintf("Trigger(%d)", uint8(t))
	}
}
