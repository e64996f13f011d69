package shed

import (
	"math"
	"testing"
	"time"
)

func TestVegasUpdate(t *testing.T) {
	const ms = time.Millisecond
	// Expected limits worked out from the rule: step = max(1, log10(L)),
	// alpha = 3*step, beta = 6*step, queue = L*(1-minRTT/rtt).
	tests := []struct {
		name      string
		limit     float64
		min, max  float64
		smoothing float64
		rtt       time.Duration
		inflight  int
		want      float64
	}{
		// queue 0 <= step 1: grow by beta 6.
		{"no queue grows by beta", 10, 1, 100, 1, 10 * ms, 10, 16},
		// queue 100*(1-10/20) = 50 > beta 12: shrink by step 2.
		{"long queue shrinks by step", 100, 1, 1000, 1, 20 * ms, 100, 98},
		// queue 100*(1-10/10.5) = 4.76: over step 2, under alpha 6.
		{"short queue grows by step", 100, 1, 1000, 1, 10500 * time.Microsecond, 100, 102},
		// queue 10*(1-10/16) = 3.75, between alpha 3 and beta 6.
		{"queue in band holds", 10, 1, 100, 1, 16 * ms, 10, 10},
		// queue 10*(1-10/25) = 6, not over beta 6.
		{"queue at beta holds", 10, 1, 100, 1, 25 * ms, 10, 10},
		// queue 10*(1-10/40) = 7.5 > 6.
		{"queue over beta shrinks", 10, 1, 100, 1, 40 * ms, 10, 9},
		// 49*2 < 100: the service was not using its limit.
		{"app limited holds", 100, 1, 1000, 1, 10 * ms, 49, 100},
		// 50*2 = 100 is not under 100: queue 0 grows by beta 12.
		{"half used grows", 100, 1, 1000, 1, 10 * ms, 50, 112},
		// Shrinking does not need a busy service.
		{"app limited still shrinks", 10, 1, 100, 1, 40 * ms, 1, 9},
		{"clamped to max", 10, 1, 12, 1, 10 * ms, 10, 12},
		{"clamped to min", 4, 4, 100, 1, 40 * ms, 4, 4},
		// (1-0.5)*10 + 0.5*16.
		{"smoothing", 10, 1, 100, 0.5, 10 * ms, 10, 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := vegas{limit: tt.limit, min: tt.min, max: tt.max, smoothing: tt.smoothing, minRTT: 10 * ms}
			v.update(tt.rtt, tt.inflight)
			if math.Abs(v.limit-tt.want) > 1e-9 {
				t.Errorf("limit = %g, want %g", v.limit, tt.want)
			}
		})
	}
}

func TestVegasMinRTT(t *testing.T) {
	var v vegas
	v.update(10*time.Millisecond, 10) // no minRTT yet: nothing to compare with
	for _, d := range []time.Duration{30, 12, 0, 40} {
		v.sample(d * time.Millisecond)
	}
	if v.minRTT != 12*time.Millisecond {
		t.Errorf("minRTT = %s, want 12ms (the smallest positive sample)", v.minRTT)
	}
}
