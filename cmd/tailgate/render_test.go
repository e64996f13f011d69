package main

import (
	"math"
	"testing"
)

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
