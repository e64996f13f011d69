package export

import (
	"context"
	"errors"
	"net/http"
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
