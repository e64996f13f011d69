// Package retry holds the retry policy that tailgate's outbound clients (the
// span exporter, the alert notifiers) share: exponential backoff with jitter
// from github.com/cenkalti/backoff/v5, and the server's Retry-After.
package retry

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

const (
	// Multiplier is how much each wait grows over the one before it.
	Multiplier = 1.5
	// Jitter is the randomization factor: a wait is the current interval
	// ±50%, so clients that failed together do not retry together.
	Jitter = 0.5
	// maxRetryAfter caps a server's requested wait rather than overflow.
	maxRetryAfter = 24 * time.Hour
)

// NewBackOff returns exponential backoff with jitter: the first wait is
// initial ±jitter (a fraction, Jitter in production, 0 in tests that check
// exact waits), each later interval is Multiplier times the one before, and
// the interval is capped at max; a wait never exceeds max.
func NewBackOff(initial, max time.Duration, jitter float64) backoff.BackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     initial,
		RandomizationFactor: jitter,
		Multiplier:          Multiplier,
		MaxInterval:         max,
	}
	b.Reset()
	return capped{b: b, max: max}
}

// capped bounds the waits of a backoff: ExponentialBackOff caps the
// interval, but jitter can take a wait up to 50% beyond it.
type capped struct {
	b   backoff.BackOff
	max time.Duration
}

// NextBackOff implements backoff.BackOff.
func (c capped) NextBackOff() time.Duration {
	d := c.b.NextBackOff()
	if d == backoff.Stop {
		return d
	}
	return min(d, c.max)
}

// Reset implements backoff.BackOff.
func (c capped) Reset() { c.b.Reset() }

// ParseRetryAfter reads a Retry-After header (RFC 9110, section 10.2.3):
// delay seconds or an HTTP date, relative to now. A date in the past means
// no wait; absurd values are capped at a day. ok is false when the header
// is absent or unreadable.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}

// ThrottleStatus reports whether an HTTP status is one whose Retry-After
// says when to try again (429 Too Many Requests, 503 Service Unavailable).
func ThrottleStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
}
