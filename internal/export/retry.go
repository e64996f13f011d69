package export

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sendError is a failed attempt, classified at the edge where the protocol's
// status is known.
type sendError struct {
	err       error
	retryable bool
	// throttle is the server's requested wait (RetryInfo, Retry-After);
	// 0 when it gave none.
	throttle time.Duration
}

func (e *sendError) Error() string { return e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

func permanent(err error) error { return &sendError{err: err} }

func retryable(err error, throttle time.Duration) error {
	return &sendError{err: err, retryable: true, throttle: throttle}
}

// classify returns whether err may be retried and the server's wait.
// Errors that are not a sendError (a client's bug, say) are permanent.
func classify(err error) (bool, time.Duration) {
	var se *sendError
	if errors.As(err, &se) {
		return se.retryable, se.throttle
	}
	return false, 0
}

// backoff is exponential backoff with jitter: each wait is the current
// interval ±50%, capped at max, and the interval grows 1.5 times per wait.
type backoff struct {
	interval time.Duration
	max      time.Duration
	rand     func() float64 // in [0, 1)
}

const (
	backoffMultiplier = 1.5
	backoffJitter     = 0.5
)

func (b *backoff) next() time.Duration {
	d := time.Duration(float64(b.interval) * (1 - backoffJitter + 2*backoffJitter*b.rand()))
	b.interval = min(time.Duration(float64(b.interval)*backoffMultiplier), b.max)
	return min(d, b.max)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryableHTTPStatus reports the statuses OTLP/HTTP clients retry.
func retryableHTTPStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date
// (relative to now). Dates in the past mean no wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		// Cap absurd values rather than overflow.
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
