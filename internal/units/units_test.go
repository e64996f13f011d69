package units

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"5s", 5 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"30d", 30 * 24 * time.Hour, false},
		{"1w", 7 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"2w1d", 15 * 24 * time.Hour, false},
		{"30", 0, true},
		{"", 0, true},
		{"d", 0, true},
		{"5x", 0, true},
		{"99999999999999999d", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseDuration(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFormatDurationRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 90 * time.Minute, 30 * 24 * time.Hour, 2 * time.Hour, 1500 * time.Millisecond} {
		s := FormatDuration(d)
		back, err := ParseDuration(s)
		if err != nil || back != d {
			t.Errorf("FormatDuration(%v) = %q, parses back to %v, %v", d, s, back, err)
		}
	}
	if got := FormatDuration(30 * 24 * time.Hour); got != "30d" {
		t.Errorf("FormatDuration(30d) = %q", got)
	}
	if got := FormatDuration(2 * time.Hour); got != "2h" {
		t.Errorf("FormatDuration(2h) = %q", got)
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"16MiB", 16 << 20, false},
		{"512KiB", 512 << 10, false},
		{"1GB", 1_000_000_000, false},
		{"100", 100, false},
		{"100B", 100, false},
		{"-1", 0, true},
		{"MiB", 0, true},
		{"1.5MiB", 0, true},
		{"9999999999TiB", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseBytes(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	if got := FormatBytes(16 << 20); got != "16MiB" {
		t.Errorf("FormatBytes(16MiB) = %q", got)
	}
}
