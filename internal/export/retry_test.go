package export

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"3", 3 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true}, // in the past: no wait
		{"99999999999", 24 * time.Hour, true},      // capped
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name string
		rand float64
		want []float64 // ms
	}{
		// Intervals 1, 1.5, 2.25, 3.375, then capped at 4 (in ms).
		{"no jitter", 0.5, []float64{1000, 1500, 2250, 3375, 4000, 4000}},
		{"least jitter is half the interval", 0, []float64{500, 750, 1125, 1687.5, 2000, 2000}},
		{"most jitter is capped at max", 0.999999, []float64{1500, 2250, 3375, 4000, 4000, 4000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backoff{interval: time.Second, max: 4 * time.Second, rand: func() float64 { return tt.rand }}
			var got []float64
			for range tt.want {
				got = append(got, float64(b.next())/float64(time.Millisecond))
			}
			// Float rounding of the 0.999999 case: a microsecond is plenty.
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateApprox(0, 0.01)); diff != "" {
				t.Errorf("waits in ms (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetryableHTTPStatus(t *testing.T) {
	for code := 100; code < 600; code++ {
		want := code == 429 || code == 502 || code == 503 || code == 504
		if got := retryableHTTPStatus(code); got != want {
			t.Errorf("retryableHTTPStatus(%d) = %v, want %v", code, got, want)
		}
	}
}
