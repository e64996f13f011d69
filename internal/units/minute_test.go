package units

import (
	"testing"
	"time"
)

func TestMinuteOf(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want Minute
	}{
		{"epoch", time.Unix(0, 0), 0},
		{"59s", time.Unix(59, 999_999_999), 0},
		{"60s", time.Unix(60, 0), 1},
		{"before epoch", time.Unix(-1, 0), -1},
		{"minus 60s", time.Unix(-60, 0), -1},
		{"minus 61s", time.Unix(-61, 0), -2},
		// 2026-12-02T19:05:30Z is 29,937,305 minutes and 30 s after the epoch:
		// 20,789 days (56 years with 14 leap days, plus 335) × 1,440 + 19 × 60 + 5.
		{"a day in 2026", time.Date(2026, 12, 2, 19, 5, 30, 0, time.UTC), 20789*1440 + 19*60 + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MinuteOf(tt.in); got != tt.want {
				t.Errorf("MinuteOf(%v) = %d, want %d", tt.in, got, tt.want)
			}
			if tt.in.Unix() >= 0 {
				if got := MinuteOfUnixNano(uint64(tt.in.UnixNano())); got != tt.want {
					t.Errorf("MinuteOfUnixNano(%d) = %d, want %d", tt.in.UnixNano(), got, tt.want)
				}
			}
			start := tt.want.Time()
			if start.After(tt.in) || tt.in.Sub(start) >= time.Minute {
				t.Errorf("%d.Time() = %v does not hold %v", tt.want, start, tt.in)
			}
			if tt.want.Unix() != start.Unix() {
				t.Errorf("Unix() = %d, Time().Unix() = %d", tt.want.Unix(), start.Unix())
			}
		})
	}
}
