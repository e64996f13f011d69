package slo

import (
	"strings"
	"testing"
	"time"
)

// TestCalendarPeriodAnchor checks calendar windows by hand-worked dates:
// unanchored months and weeks, a month anchored on the 15th at noon, one
// anchored on the 31st (April has none: it starts on the 30th), a week
// anchored on Wednesday 09:30, and a month in a zone with DST.
func TestCalendarPeriodAnchor(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	at := func(loc *time.Location, s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name       string
		unit       CalendarUnit
		loc        *time.Location
		anchor     time.Time
		now        time.Time
		start, end time.Time
	}{
		{"month", Month, time.UTC, time.Time{}, utc("2026-03-17 08:00"), utc("2026-03-01 00:00"), utc("2026-04-01 00:00")},
		// 2026-03-18 is a Wednesday: the week began Monday the 16th.
		{"week", Week, time.UTC, time.Time{}, utc("2026-03-18 08:00"), utc("2026-03-16 00:00"), utc("2026-03-23 00:00")},
		{"month from the 15th, after it", Month, time.UTC, utc("2022-01-15 12:00"), utc("2026-03-17 08:00"), utc("2026-03-15 12:00"), utc("2026-04-15 12:00")},
		{"month from the 15th, before it", Month, time.UTC, utc("2022-01-15 12:00"), utc("2026-03-15 11:59"), utc("2026-02-15 12:00"), utc("2026-03-15 12:00")},
		{"month from the 31st, in April", Month, time.UTC, utc("2022-01-31 00:00"), utc("2026-04-30 10:00"), utc("2026-04-30 00:00"), utc("2026-05-31 00:00")},
		{"month from the 31st, early May", Month, time.UTC, utc("2022-01-31 00:00"), utc("2026-05-02 10:00"), utc("2026-04-30 00:00"), utc("2026-05-31 00:00")},
		// 2022-01-05 was a Wednesday; 2026-03-16 is a Monday, so the week
		// began Wednesday the 11th at 09:30.
		{"week from Wednesday 09:30", Week, time.UTC, utc("2022-01-05 09:30"), utc("2026-03-16 08:00"), utc("2026-03-11 09:30"), utc("2026-03-18 09:30")},
		{"week from Wednesday 09:30, at it", Week, time.UTC, utc("2022-01-05 09:30"), utc("2026-03-18 09:30"), utc("2026-03-18 09:30"), utc("2026-03-25 09:30")},
		// New York springs forward on 2026-03-08: the month from the 1st at
		// noon is an hour shorter than 31 days.
		{"month in New York", Month, ny, at(ny, "2025-01-01 12:00"), at(ny, "2026-03-20 12:00"), at(ny, "2026-03-01 12:00"), at(ny, "2026-04-01 12:00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, e := calendarPeriod(tc.unit, tc.loc, tc.anchor, tc.now)
			if !s.Equal(tc.start) || !e.Equal(tc.end) {
				t.Errorf("period of %s = [%s, %s), want [%s, %s)", tc.now, s, e, tc.start, tc.end)
			}
		})
	}
	p := period{calendar: Month, loc: ny, anchor: at(ny, "2025-01-01 12:00")}
	if got, want := p.length(at(ny, "2026-03-20 12:00")), 31*24*time.Hour-time.Hour; got != want {
		t.Errorf("length of March in New York from noon on the 1st = %s, want %s", got, want)
	}
}

// TestCalendarStartValidation checks calendar_start is validated and
// named.
func TestCalendarStartValidation(t *testing.T) {
	base := Spec{Name: "a", Service: "s", Objective: 99, SLI: SLISpec{Kind: Availability}}
	ok := base
	ok.Calendar, ok.CalendarStart = Month, "2025-01-15 12:00:00"
	if _, err := ValidateSpecs([]Spec{ok}); err != nil {
		t.Errorf("valid calendar_start: %v", err)
	}
	bad := ok
	bad.CalendarStart = "15th at noon"
	if _, err := ValidateSpecs([]Spec{bad}); err == nil || !strings.Contains(err.Error(), "calendar_start") {
		t.Errorf("bad calendar_start: %v, want an error naming it", err)
	}
	rolling := base
	rolling.Window, rolling.CalendarStart = 30*24*60*60*1e9, "2025-01-15 12:00:00"
	if _, err := ValidateSpecs([]Spec{rolling}); err == nil || !strings.Contains(err.Error(), "calendar_start") {
		t.Errorf("calendar_start on a rolling window: %v, want an error naming it", err)
	}
}
