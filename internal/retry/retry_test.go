package retry

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},              // in the past: no wait
		{"99999999999", 24 * time.Hour, true},                   // capped
		{"Mon, 01 Mar 2027 12:00:00 GMT", 24 * time.Hour, true}, // capped
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestBackOffWithoutJitter(t *testing.T) {
	b := NewBackOff(time.Second, 4*time.Second, 0)
	var got []time.Duration
	for range 6 {
		got = append(got, b.NextBackOff())
	}
	// 1s x 1.5^n: 1, 1.5, 2.25, 3.375, then the 4s cap.
	want := []time.Duration{1000 * time.Millisecond, 1500 * time.Millisecond, 2250 * time.Millisecond,
		3375 * time.Millisecond, 4 * time.Second, 4 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	b.Reset()
	if d := b.NextBackOff(); d != time.Second {
		t.Errorf("after Reset: %v, want the initial 1s", d)
	}
}

// TestBackOffJitter checks the bounds of jittered waits: each is within
// ±50% of the interval without jitter, and never over the cap.
func TestBackOffJitter(t *testing.T) {
	intervals := []time.Duration{1000 * time.Millisecond, 1500 * time.Millisecond, 2250 * time.Millisecond,
		3375 * time.Millisecond, 4 * time.Second, 4 * time.Second}
	first := map[time.Duration]bool{}
	for range 200 {
		b := NewBackOff(time.Second, 4*time.Second, Jitter)
		for i, iv := range intervals {
			d := b.NextBackOff()
			lo, hi := iv/2, min(iv*3/2, 4*time.Second)
			if d < lo || d > hi+time.Nanosecond {
				t.Fatalf("wait %d = %v, want within [%v, %v]", i, d, lo, hi)
			}
			if i == 0 {
				first[d] = true
			}
		}
	}
	// 200 draws from [0.5s, 1.5s] that all agree would mean no jitter.
	if len(first) == 1 {
		t.Error("every first wait was the same: no jitter")
	}
}

func TestThrottleStatus(t *testing.T) {
	for code := 100; code < 600; code++ {
		want := code == 429 || code == 503
		if got := ThrottleStatus(code); got != want {
			t.Errorf("ThrottleStatus(%d) = %v, want %v", code, got, want)
		}
	}
}
