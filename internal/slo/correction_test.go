package slo

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/units"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestRRuleOccurrences(t *testing.T) {
	// Expected dates read off a calendar.
	tests := []struct {
		name  string
		start string
		tz    string
		rule  string
		want  []string
	}{
		{"daily count", "2024-01-01T02:00:00Z", "", "FREQ=DAILY;COUNT=3",
			[]string{"2024-01-01T02:00:00Z", "2024-01-02T02:00:00Z", "2024-01-03T02:00:00Z"}},
		{"every other day", "2024-01-01T00:00:00Z", "", "FREQ=DAILY;INTERVAL=2;COUNT=3",
			[]string{"2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z", "2024-01-05T00:00:00Z"}},
		{"weekends until", "2024-01-01T22:00:00Z", "", "FREQ=WEEKLY;BYDAY=SA,SU;UNTIL=20240115T000000Z",
			[]string{"2024-01-06T22:00:00Z", "2024-01-07T22:00:00Z", "2024-01-13T22:00:00Z", "2024-01-14T22:00:00Z"}},
		{"start off the rule", "2024-01-01T00:00:00Z", "", "RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=2",
			[]string{"2024-01-03T00:00:00Z", "2024-01-10T00:00:00Z"}},
		{"last friday", "2024-01-01T00:00:00Z", "", "FREQ=MONTHLY;BYDAY=-1FR;COUNT=3",
			[]string{"2024-01-26T00:00:00Z", "2024-02-23T00:00:00Z", "2024-03-29T00:00:00Z"}},
		{"first saturday", "2024-01-01T00:00:00Z", "", "FREQ=MONTHLY;BYDAY=1SA;COUNT=3",
			[]string{"2024-01-06T00:00:00Z", "2024-02-03T00:00:00Z", "2024-03-02T00:00:00Z"}},
		{"31st skips short months", "2024-01-31T10:00:00Z", "", "FREQ=MONTHLY;COUNT=3",
			[]string{"2024-01-31T10:00:00Z", "2024-03-31T10:00:00Z", "2024-05-31T10:00:00Z"}},
		{"month days", "2024-01-01T00:00:00Z", "", "FREQ=MONTHLY;BYMONTHDAY=1,15;COUNT=3",
			[]string{"2024-01-01T00:00:00Z", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z"}},
		{"last day of month", "2024-01-01T00:00:00Z", "", "FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=2",
			[]string{"2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z"}},
		{"wall clock across DST", "2025-03-29T00:00:00Z", "Europe/Berlin", "FREQ=DAILY;COUNT=3",
			// 01:00 in Berlin: CET (UTC+1) until the 30th's 02:00, then CEST.
			[]string{"2025-03-29T00:00:00Z", "2025-03-30T00:00:00Z", "2025-03-30T23:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Correction{SLO: "s", Start: utc(tt.start), RRule: tt.rule, Duration: units.Duration(time.Hour), TimeZone: tt.tz, Reason: "r"}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			var got []string
			c.Occurrences(utc("2023-01-01T00:00:00Z"), utc("2025-12-31T00:00:00Z"), func(s, e time.Time) {
				got = append(got, s.UTC().Format(time.RFC3339))
				if e.Sub(s) != time.Hour {
					t.Errorf("occurrence %s lasts %s, want 1h", s, e.Sub(s))
				}
			})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("occurrences (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRRuleOccurrencesWindowed(t *testing.T) {
	// An endless daily rule, read for two days only: the occurrences
	// overlapping [from, to), including one that started before from.
	c := Correction{SLO: "s", Start: utc("2020-01-01T23:30:00Z"), RRule: "FREQ=DAILY", Duration: units.Duration(time.Hour), Reason: "r"}
	var got []string
	c.Occurrences(utc("2024-05-02T00:00:00Z"), utc("2024-05-04T00:00:00Z"), func(s, e time.Time) {
		got = append(got, s.Format(time.RFC3339))
	})
	want := []string{"2024-05-01T23:30:00Z", "2024-05-02T23:30:00Z", "2024-05-03T23:30:00Z"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("occurrences (-want +got):\n%s", diff)
	}
}

func TestCorrectionValidate(t *testing.T) {
	start := utc("2024-01-01T00:00:00Z")
	tests := []struct {
		name string
		c    Correction
		want []string // substrings of the error, nil for valid
	}{
		{"one-off", Correction{Start: start, End: start.Add(time.Hour), Reason: "deploy"}, nil},
		{"recurring", Correction{Start: start, RRule: "FREQ=WEEKLY;BYDAY=SU", Duration: units.Duration(2 * time.Hour), Reason: "maintenance"}, nil},
		{"no reason", Correction{Start: start, End: start.Add(time.Hour)}, []string{"reason: required"}},
		{"end before start", Correction{Start: start, End: start.Add(-time.Hour), Reason: "x"}, []string{"end: must be after start"}},
		{"no end", Correction{Start: start, Reason: "x"}, []string{"end: required"}},
		{"rrule with end", Correction{Start: start, End: start.Add(time.Hour), RRule: "FREQ=DAILY", Duration: units.Duration(time.Hour), Reason: "x"}, []string{"end: does not apply"}},
		{"rrule without duration", Correction{Start: start, RRule: "FREQ=DAILY", Reason: "x"}, []string{"duration: required"}},
		{"yearly", Correction{Start: start, RRule: "FREQ=YEARLY", Duration: units.Duration(time.Hour), Reason: "x"}, []string{"FREQ=YEARLY is not supported"}},
		{"bad day", Correction{Start: start, RRule: "FREQ=WEEKLY;BYDAY=XX", Duration: units.Duration(time.Hour), Reason: "x"}, []string{"not a weekday"}},
		{"count and until", Correction{Start: start, RRule: "FREQ=DAILY;COUNT=2;UNTIL=20250101", Duration: units.Duration(time.Hour), Reason: "x"}, []string{"exclusive"}},
		{"interval 0", Correction{Start: start, RRule: "FREQ=DAILY;INTERVAL=0", Duration: units.Duration(time.Hour), Reason: "x"}, []string{"INTERVAL"}},
		{"no freq", Correction{Start: start, RRule: "COUNT=2", Duration: units.Duration(time.Hour), Reason: "x"}, []string{"FREQ is required"}},
		{"byhour", Correction{Start: start, RRule: "FREQ=DAILY;BYHOUR=2", Duration: units.Duration(time.Hour), Reason: "x"}, []string{"BYHOUR is not supported"}},
		{"ordinal weekly", Correction{Start: start, RRule: "FREQ=WEEKLY;BYDAY=1MO", Duration: units.Duration(time.Hour), Reason: "x"}, []string{"only apply to FREQ=MONTHLY"}},
		{"bad zone", Correction{Start: start, End: start.Add(time.Hour), TimeZone: "Mars/Olympus", Reason: "x"}, []string{"unknown time zone"}},
		{"several at once", Correction{}, []string{"start: required", "reason: required", "end: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestExpandCorrectionsMergesAndWidens(t *testing.T) {
	base := utc("2024-01-01T00:00:00Z")
	m0 := units.MinuteOf(base)
	cs := []Correction{
		{Start: base.Add(10*time.Minute + 30*time.Second), End: base.Add(20 * time.Minute), Reason: "a"},
		{Start: base.Add(19 * time.Minute), End: base.Add(25*time.Minute + time.Second), Reason: "b"},
		{Start: base.Add(time.Hour), End: base.Add(61 * time.Minute), Reason: "c"},
	}
	got := expandCorrections(cs, base, base.Add(2*time.Hour))
	want := []interval{{m0 + 10, m0 + 26}, {m0 + 60, m0 + 61}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(interval{})); diff != "" {
		t.Errorf("intervals (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		m    units.Minute
		want bool
	}{{m0 + 9, false}, {m0 + 10, true}, {m0 + 25, true}, {m0 + 26, false}, {m0 + 60, true}, {m0 + 61, false}} {
		if got := excluded(want, tc.m); got != tc.want {
			t.Errorf("excluded(minute %d) = %v, want %v", tc.m-m0, got, tc.want)
		}
	}
}

// TestAddCorrectionLongerThanWindow: a correction whose period (or one
// occurrence) is longer than the SLO window would exclude every event of
// a window; it is refused, naming the window. As long as the window is
// accepted.
func TestAddCorrectionLongerThanWindow(t *testing.T) {
	now := utc("2026-03-10T12:00:00Z")
	e, err := NewEngine([]Spec{
		{Name: "day", Service: "svc", Objective: 99, Window: units.Duration(24 * time.Hour), SLI: SLISpec{Kind: Availability}},
		{Name: "week", Service: "svc", Objective: 99, Calendar: Week, SLI: SLISpec{Kind: Availability}},
	}, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		c       Correction
		refused bool
	}{
		{"one-off of 24h in a 24h window", Correction{SLO: "day", Start: now.Add(-24 * time.Hour), End: now}, false},
		{"one-off of 24h1m in a 24h window", Correction{SLO: "day", Start: now.Add(-24*time.Hour - time.Minute), End: now}, true},
		{"recurring 25h occurrences in a 24h window", Correction{SLO: "day", Start: now, RRule: "FREQ=WEEKLY", Duration: units.Duration(25 * time.Hour)}, true},
		{"recurring 2h occurrences in a 24h window", Correction{SLO: "day", Start: now, RRule: "FREQ=DAILY", Duration: units.Duration(2 * time.Hour)}, false},
		// A calendar week is 7d, 7d1h across a DST change.
		{"one-off of 7d1h in a calendar week", Correction{SLO: "week", Start: now.Add(-169 * time.Hour), End: now}, false},
		{"one-off of 8d in a calendar week", Correction{SLO: "week", Start: now.Add(-8 * 24 * time.Hour), End: now}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Reason = "maintenance"
			_, err := e.AddCorrection(t.Context(), tc.c, now)
			if tc.refused {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "longer than the SLO window") {
					t.Errorf("err = %v, want ErrInvalid naming the window", err)
				}
			} else if err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}
