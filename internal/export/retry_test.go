package export

import (
	"errors"
	"testing"
	"time"
)

func TestRetryableHTTPStatus(t *testing.T) {
	for code := 100; code < 600; code++ {
		want := code == 429 || code == 502 || code == 503 || code == 504
		if got := retryableHTTPStatus(code); got != want {
			t.Errorf("retryableHTTPStatus(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name      string
		err       error
		retry     bool
		throttled time.Duration
	}{
		{"permanent", permanent(base), false, 0},
		{"retryable without a wait", retryable(base, 0), true, 0},
		{"retryable with the server's wait", retryable(base, 3*time.Second), true, 3 * time.Second},
		{"wrapped", errors.Join(errors.New("context"), retryable(base, time.Second)), true, time.Second},
		{"unclassified errors are permanent", base, false, 0},
	}
	for _, tt := range tests {
		retry, throttle := classify(tt.err)
		if retry != tt.retry || throttle != tt.throttled {
			t.Errorf("%s: classify = %v, %v; want %v, %v", tt.name, retry, throttle, tt.retry, tt.throttled)
		}
	}
}
