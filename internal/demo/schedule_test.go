package demo

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestScheduleAt(t *testing.T) {
	s := Schedule{Calm: 10 * time.Second, Failure: 20 * time.Second, Recovery: 30 * time.Second}
	tests := []struct {
		name    string
		elapsed time.Duration
		phase   Phase
		frac    float64
	}{
		{"before the start", -time.Second, Calm, 0},
		{"start", 0, Calm, 0},
		{"middle of calm", 5 * time.Second, Calm, 0.5},
		{"failure begins", 10 * time.Second, Failure, 0},
		{"quarter into failure", 15 * time.Second, Failure, 0.25},
		{"recovery begins", 30 * time.Second, Recovery, 0},
		{"last instant", 60*time.Second - time.Millisecond, Recovery, 29.999 / 30},
		{"end", 60 * time.Second, Done, 1},
		{"after the end", time.Hour, Done, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, f := s.At(tt.elapsed)
			if p != tt.phase || !near(f, tt.frac, 1e-9) {
				t.Errorf("At(%s) = %s, %v; want %s, %v", tt.elapsed, p, f, tt.phase, tt.frac)
			}
		})
	}
}

func TestScheduleSkipsEmptyPhases(t *testing.T) {
	s := Schedule{Calm: 0, Failure: 5 * time.Second, Recovery: 0}
	if p, _ := s.At(0); p != Failure {
		t.Errorf("At(0) = %s, want failure (calm is empty)", p)
	}
	if p, _ := s.At(5 * time.Second); p != Done {
		t.Errorf("At(5s) = %s, want done", p)
	}
}

func TestScheduleStartAndLength(t *testing.T) {
	s := Schedule{Calm: 10 * time.Second, Failure: 20 * time.Second, Recovery: 30 * time.Second}
	got := []time.Duration{s.Start(Calm), s.Start(Failure), s.Start(Recovery), s.Start(Done), s.Length(Done)}
	want := []time.Duration{0, 10 * time.Second, 30 * time.Second, 60 * time.Second, 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("starts (-want +got):\n%s", diff)
	}
}

func TestScheduleScale(t *testing.T) {
	tests := []struct {
		name  string
		in    Schedule
		total time.Duration
		want  Schedule
	}{
		{"default to 90s halves every phase", DefaultSchedule(), 90 * time.Second,
			Schedule{Calm: 15 * time.Second, Failure: 20 * time.Second, Recovery: 55 * time.Second}},
		{"default to 45s", DefaultSchedule(), 45 * time.Second,
			Schedule{Calm: 7500 * time.Millisecond, Failure: 10 * time.Second, Recovery: 27500 * time.Millisecond}},
		{"thirds rounded, recovery takes the rest", Schedule{Calm: time.Second, Failure: time.Second, Recovery: time.Second}, time.Second,
			Schedule{Calm: 333 * time.Millisecond, Failure: 333 * time.Millisecond, Recovery: 334 * time.Millisecond}},
		{"longer", Schedule{Calm: time.Minute, Failure: time.Minute, Recovery: 2 * time.Minute}, 8 * time.Minute,
			Schedule{Calm: 2 * time.Minute, Failure: 2 * time.Minute, Recovery: 4 * time.Minute}},
		{"empty stays empty", Schedule{}, time.Minute, Schedule{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.Scale(tt.total)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Scale (-want +got):\n%s", diff)
			}
			if tt.in.Total() > 0 && got.Total() != tt.total {
				t.Errorf("scaled total %s, want %s", got.Total(), tt.total)
			}
		})
	}
}

func TestScheduleValidate(t *testing.T) {
	if err := DefaultSchedule().Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
	if DefaultSchedule().Total() != 3*time.Minute {
		t.Errorf("default total %s, want about 3 minutes", DefaultSchedule().Total())
	}
	for _, s := range []Schedule{{}, {Calm: -time.Second, Failure: time.Minute}} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

func TestFormats(t *testing.T) {
	got := []string{
		Schedule{Calm: 15 * time.Second, Failure: 90 * time.Second, Recovery: 2 * time.Minute}.String(),
		clock(0), clock(59*time.Second + 900*time.Millisecond), clock(61 * time.Second), clock(-time.Second),
		count(0), count(999), count(1000), count(1234567), count(-4200),
		pct(1, 3), pct(1, 0),
		units.Bar(0.5, 4, "█", "░"), units.Bar(-2, 4, "█", "░"), units.Bar(7, 4, "█", "░"),
		clip("abcdef", 4), clip("abc", 4),
	}
	want := []string{
		"calm 15s, failure 1m30s, recovery 2m",
		"0:00", "0:59", "1:01", "0:00",
		"0", "999", "1,000", "1,234,567", "-4,200",
		"33.3%", "-",
		"[██░░]", "[░░░░]", "[████]",
		"abc…", "abc",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("formats (-want +got):\n%s", diff)
	}
}

func near(a, b, eps float64) bool { return a-b <= eps && b-a <= eps }
