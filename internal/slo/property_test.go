package slo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// TestIncrementalMatchesBruteForce feeds random minute streams (gaps, late
// corrections, calendar and rolling windows, every budgeting method) to the
// engine and checks every window, at random instants and in the past,
// against a direct recomputation from the per-minute counts.
func TestIncrementalMatchesBruteForce(t *testing.T) {
	iterations := 150
	if testing.Short() {
		iterations = 30
	}
	for it := range iterations {
		seed := uint64(it)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			checkRandomStream(t, rand.New(rand.NewPCG(seed, 42)))
		})
	}
}

func checkRandomStream(t *testing.T, r *rand.Rand) {
	base := time.Date(2025, 3, 20, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(20*24*60)) * time.Minute)
	spec := Spec{Name: "p", Service: "svc", Objective: []float64{90, 99, 99.9, 95.5}[r.IntN(4)], SLI: SLISpec{Kind: Availability}}
	switch r.IntN(4) {
	case 0:
		spec.Calendar = Month
		spec.TimeZone = []string{"", "Europe/Berlin", "America/New_York", "Asia/Kathmandu"}[r.IntN(4)]
	case 1:
		spec.Calendar = Week
		spec.TimeZone = []string{"", "Europe/Berlin", "Australia/Lord_Howe"}[r.IntN(3)]
	default:
		spec.Window = units.Duration(time.Duration([]int{60, 120, 360, 1440, 4320}[r.IntN(5)]) * time.Minute)
	}
	switch r.IntN(3) {
	case 1:
		spec.Budgeting = Timeslices
		spec.TimeSlice = TimeSliceSpec{Window: units.Duration(time.Duration([]int{1, 2, 5, 7}[r.IntN(4)]) * time.Minute), Target: 80}
	case 2:
		spec.Budgeting = RatioTimeslices
		spec.TimeSlice = TimeSliceSpec{Window: units.Duration(time.Duration([]int{1, 3, 5}[r.IntN(3)]) * time.Minute)}
	}
	if spec.Calendar == NoCalendar {
		spec.TimeZone = ""
	}
	e, err := NewEngine([]Spec{spec}, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	st := e.slos[0]
	st.since, st.agg.since = base, base

	randCorrection := func(around time.Time, span int) Correction {
		s := around.Add(time.Duration(r.IntN(span*60)-span*30) * time.Second)
		c := Correction{SLO: "p", Start: s, Reason: "r"}
		if r.IntN(3) == 0 {
			c.RRule = []string{"FREQ=DAILY;COUNT=4", "FREQ=WEEKLY;BYDAY=MO,TH", "FREQ=DAILY;INTERVAL=2"}[r.IntN(3)]
			c.Duration = units.Duration(time.Duration(1+r.IntN(300)) * time.Minute)
		} else {
			c.End = s.Add(time.Duration(1+r.IntN(200*60)) * time.Second)
		}
		// A correction longer than the window is refused: clamp to it.
		if w := spec.Window.Std(); w > 0 {
			if c.RRule != "" && c.Duration.Std() > w {
				c.Duration = units.Duration(w)
			}
			if c.RRule == "" && c.End.Sub(s) > w {
				c.End = s.Add(w)
			}
		}
		return c
	}
	var corrs []Correction
	for range r.IntN(3) {
		c := randCorrection(base.Add(time.Duration(r.IntN(3000))*time.Minute), 600)
		corrs = append(corrs, c)
		if _, err := e.AddCorrection(t.Context(), c, base); err != nil {
			t.Fatal(err)
		}
	}

	raw := map[units.Minute]cnt{}
	m0 := units.MinuteOf(base)
	m := m0
	e.advance(m)
	steps := 500 + r.IntN(2500)
	for step := range steps {
		// Gaps: mostly consecutive minutes, sometimes hours of silence.
		switch x := r.IntN(100); {
		case x < 3:
			m += units.Minute(60 + r.IntN(24*60))
		case x < 20:
			m += units.Minute(1 + r.IntN(10))
		default:
			m++
		}
		e.advance(m)
		if r.IntN(10) > 0 {
			total := uint64(r.IntN(20))
			bad := uint64(0)
			if total > 0 {
				bad = uint64(r.IntN(int(total) + 1))
				if r.IntN(3) > 0 {
					bad /= 4
				}
			}
			raw[m] = cnt{good: total - bad, total: total}
			e.byName["p"].agg.live.Add(total<<32 | bad)
		}
		if step == steps/2 && r.IntN(2) == 0 {
			// A correction added after the fact.
			c := randCorrection((m - units.Minute(r.IntN(600))).Time(), 300)
			corrs = append(corrs, c)
			if _, err := e.AddCorrection(t.Context(), c, m.Time()); err != nil {
				t.Fatal(err)
			}
		}
		if r.IntN(40) == 0 || step == steps-1 {
			now := m.Time().Add(time.Duration(r.IntN(60)) * time.Second)
			compareAt(t, e, st, raw, corrs, now)
			// And an instant of the past, as History reads it.
			past := now.Add(-time.Duration(r.IntN(3000)) * time.Minute)
			if units.MinuteOf(past) > m0 {
				compareAt(t, e, st, raw, corrs, past)
			}
		}
	}
}

// compareAt checks every window of st at now against brute force.
func compareAt(t *testing.T, e *Engine, st *sloState, raw map[units.Minute]cnt, corrs []Correction, now time.Time) {
	t.Helper()
	e.mu.RLock()
	defer e.mu.RUnlock()
	cur := e.openMinute()
	live := unpack(st.agg.live.Load())
	M := units.MinuteOf(now)
	// Minutes that overlap a correction period, marked one by one.
	excl := map[units.Minute]bool{}
	oldest := cur - units.Minute(e.retention) + 60 // older minutes may be pruned
	for i := range corrs {
		corrs[i].Occurrences(oldest.Time(), (M + 1).Time(), func(s, e time.Time) {
			for k := units.MinuteOf(s); k.Time().Before(e); k++ {
				excl[k] = true
			}
		})
	}
	net := func(k units.Minute) cnt {
		if excl[k] {
			return cnt{}
		}
		return raw[k]
	}
	brute := func(a units.Minute) (good, total float64) {
		if st.method == Occurrences {
			for k := a; k <= M; k++ {
				c := net(k)
				good += float64(c.good)
				total += float64(c.total)
			}
			return good, total
		}
		L := units.Minute(st.sliceLen)
		for k := units.Minute(floorDiv(int64(a), st.sliceLen)) - 1; k*L <= M; k++ {
			if k*L < a {
				continue
			}
			var c cnt
			for x := k * L; x < (k+1)*L && x <= M; x++ {
				n := net(x)
				c.good += n.good
				c.total += n.total
			}
			if c.total == 0 {
				continue
			}
			ratio := float64(c.good) / float64(c.total)
			total++
			switch {
			case st.method == RatioTimeslices:
				good += ratio
			case ratio >= st.sliceTarget:
				good++
			}
		}
		return good, total
	}
	check := func(label string, a units.Minute) {
		if a < oldest {
			return
		}
		g, tot := st.counts(st.agg, a, M, cur, live)
		bg, bt := brute(a)
		if math.Abs(g-bg) > 1e-9*math.Max(1, bg) || math.Abs(tot-bt) > 1e-9*math.Max(1, bt) {
			t.Errorf("%s at %s (window from %s, method %s): engine good/total %v/%v, brute force %v/%v",
				label, now.Format(time.RFC3339), a.Time().Format(time.RFC3339), st.method, g, tot, bg, bt)
		}
	}
	for _, w := range st.windows {
		check(windowLabel(w), M-units.Minute(w))
	}
	a, _ := st.per.bounds(now)
	check("whole "+st.per.label, a)
}
