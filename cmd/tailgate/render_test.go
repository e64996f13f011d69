package main

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
			if got := humanDuration(tt.d); got != tt.want {
				t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestBudgetBar(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	// Fractions that are exact in binary, so that the half-cell cases
	// really sit on the boundary.
	tests := []struct {
		name  string
		frac  *float64
		width int
		want  string
	}{
		{"no data", nil, 20, "[      no data       ]"},
		{"no data, too narrow for the words", nil, 4, "[    ]"},
		{"four fifths", f(0.8), 20, "[################....]"},
		{"one and a half cells round up", f(0.375), 4, "[##..]"},
		{"half a cell rounds up", f(0.0625), 8, "[#.......]"},
		{"just under half a cell rounds down", f(0.0624), 8, "[........]"},
		{"overspent is empty", f(-0.5), 4, "[....]"},
		{"more than full is full", f(1.5), 4, "[####]"},
		{"NaN is empty", f(math.NaN()), 4, "[....]"},
		{"three quarters of forty", f(0.75), 40, "[##############################..........]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := budgetBar(tt.frac, tt.width); got != tt.want {
				t.Errorf("budgetBar = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNumbers(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct{ got, want string }{
		{count(1234567.5), "1,234,568"},
		{count(1000), "1,000"},
		{count(999), "999"},
		{count(-999.4), "-999"},
		{count(-0.4), "0"},
		{percent(f(0.75), 1), "75.0%"},
		{percent(f(0.99975), 4), "99.9750%"},
		{percent(nil, 1), "-"},
		{pct(-0.125), "-12.5%"},
		{burnRate(f(0.25), 2), "0.25x"},
		{burnRate(nil, 2), "-"},
		{number(4000), "4000"},
		{number(0.25), "0.25"},
		{number(1.23456), "1.235"},
		{trimFloat(99.9), "99.9"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}
