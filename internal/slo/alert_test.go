package slo

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTierWindowsScale(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		window time.Duration
		want   [][2]int64 // long, short minutes per default tier
	}{
		{30 * day, [][2]int64{{60, 5}, {360, 30}, {1440, 120}, {4320, 360}}},
		// 28/30: 1h → 56m, 5m → 4.67m → 5m, 6h → 336m, 30m → 28m, 1d → 1344m, 2h → 112m, 3d → 4032m, 6h → 336m.
		{28 * day, [][2]int64{{56, 5}, {336, 28}, {1344, 112}, {4032, 336}}},
		{7 * day, [][2]int64{{14, 1}, {84, 7}, {336, 28}, {1008, 84}}},
		{90 * day, [][2]int64{{180, 15}, {1080, 90}, {4320, 360}, {12960, 1080}}},
		// A 1h SLO window: 1h/720 = 5s and 5m/720 rounds up to the 1m floor.
		{time.Hour, [][2]int64{{1, 1}, {1, 1}, {2, 1}, {6, 1}}},
	}
	for _, tt := range tests {
		rules := compileRules(&AlertingSpec{}, tt.window)
		var got [][2]int64
		for _, r := range rules {
			if r.kind == BurnRateAlert {
				got = append(got, [2]int64{r.long, r.short})
			}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("window %s (-want +got):\n%s", tt.window, diff)
		}
		// The budget share per tier stays that of the Workbook:
		// burn × long / window = 2%, 5%, 10%, 10% (up to the minute rounding).
		if tt.window >= 7*day {
			for i, share := range []float64{0.02, 0.05, 0.10, 0.10} {
				r := rules[i]
				got := r.burn * float64(time.Duration(r.long)*time.Minute) / float64(tt.window)
				if d := got - share; d > 0.001 || d < -0.001 {
					t.Errorf("window %s tier %s spends %.4f of the budget, want %.2f", tt.window, r.name, got, share)
				}
			}
		}
	}
}

func TestAlertStateMachine(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &rule{forDur: 2 * time.Minute, keepFiringFor: 3 * time.Minute}
	var a alertInstance
	type step struct {
		at     time.Duration
		cond   bool
		state  AlertState
		change bool
	}
	steps := []step{
		{0, false, Inactive, false},
		{1 * time.Minute, true, Pending, true},
		{2 * time.Minute, false, Inactive, true}, // dropped while pending: back to inactive
		{3 * time.Minute, true, Pending, true},
		{4 * time.Minute, true, Pending, false},
		{5 * time.Minute, true, Firing, true}, // held for 2m
		{6 * time.Minute, false, Firing, false},
		{7 * time.Minute, true, Firing, false}, // flap absorbed
		{8 * time.Minute, false, Firing, false},
		{10 * time.Minute, false, Resolved, true}, // false for 3m since 7m
		{11 * time.Minute, false, Inactive, false},
		{12 * time.Minute, true, Pending, true},
	}
	for _, s := range steps {
		_, to, changed := a.step(s.cond, t0.Add(s.at), r)
		if to != s.state || changed != s.change {
			t.Errorf("at %s cond %v: state %s changed %v, want %s %v", s.at, s.cond, to, changed, s.state, s.change)
		}
	}
	if !a.activeAt.Equal(t0.Add(12 * time.Minute)) {
		t.Errorf("activeAt = %s", a.activeAt)
	}
}
