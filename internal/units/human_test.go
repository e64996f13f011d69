package units

import (
	"math"
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	// Each want is worked out by hand from the rule: pick the precision by
	// size after rounding (ms below a minute, s below an hour, m below a
	// day, h from a day on); time.Duration.Round rounds halves away from 0.
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"zero", 0, "0s"},
		{"sub-millisecond rounds to zero", 400 * time.Microsecond, "0s"},
		{"milliseconds", 250 * time.Millisecond, "250ms"},
		{"half a millisecond rounds up", 1499500 * time.Microsecond, "1.5s"},
		{"just under the minute boundary", 59499400 * time.Microsecond, "59.499s"},
		{"half a second before a minute is a minute", 59500 * time.Millisecond, "1m"},
		{"minute and seconds", 90 * time.Second, "1m30s"},
		{"seconds round half up", 45*time.Minute + 30500*time.Millisecond, "45m31s"},
		{"below the hour boundary keeps seconds", 59*time.Minute + 29500*time.Millisecond, "59m30s"},
		{"half a minute before an hour is an hour", 59*time.Minute + 30*time.Second, "1h"},
		{"hours round to the minute", 2*time.Hour + 14*time.Minute + 30*time.Second, "2h15m"},
		{"whole hours drop the minutes", 2*time.Hour + 10*time.Second, "2h"},
		{"below the day boundary keeps minutes", 23*time.Hour + 29*time.Minute + 59*time.Second, "23h30m"},
		{"half an hour before a day is a day", 23*time.Hour + 30*time.Minute, "1d"},
		{"days and hours", 3*24*time.Hour + 4*time.Hour + 29*time.Minute, "3d4h"},
		{"hours carry into days", 3*24*time.Hour + 23*time.Hour + 30*time.Minute, "4d"},
		{"whole days", 48 * time.Hour, "2d"},
		{"negative", -90 * time.Second, "-1m30s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HumanDuration(tt.d); got != tt.want {
				t.Errorf("HumanDuration(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestBar(t *testing.T) {
	// Cells by hand: round(frac × width), clamped to [0, width].
	tests := []struct {
		frac  float64
		width int
		want  string
	}{
		{0, 4, "[....]"},
		{1, 4, "[####]"},
		{0.25, 8, "[##......]"},
		{0.125, 4, "[#...]"}, // half a cell rounds up
		{0.124, 4, "[....]"},
		{-0.5, 4, "[....]"}, // overspent
		{1.5, 4, "[####]"},
		{math.NaN(), 4, "[....]"},
	}
	for _, tt := range tests {
		if got := Bar(tt.frac, tt.width, "#", "."); got != tt.want {
			t.Errorf("Bar(%v, %d) = %q, want %q", tt.frac, tt.width, got, tt.want)
		}
	}
	if got := Bar(0.5, 4, "█", "░"); got != "[██░░]" {
		t.Errorf("Bar with blocks = %q", got)
	}
}
