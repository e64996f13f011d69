package slo

import (
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// period is the window of an SLO: rolling (n minutes) or calendar.
type period struct {
	rolling  int64 // minutes; 0 for calendar
	calendar CalendarUnit
	loc      *time.Location
	label    string // "30d", "month", "week"
	nominal  time.Duration
	// anchor, when set, is a start of a calendar period: months begin on
	// its day of the month and time of day, weeks on its weekday and time.
	anchor time.Time
}

// bounds returns the window's first minute and its nominal end (the instant
// the window ends for a calendar period, now for a rolling one), at now.
func (p *period) bounds(now time.Time) (start units.Minute, end time.Time) {
	if p.rolling > 0 {
		return units.MinuteOf(now) - units.Minute(p.rolling), now
	}
	s, e := calendarPeriod(p.calendar, p.loc, p.anchor, now)
	return units.MinuteOf(s), e
}

// length returns the length of the period holding now: the rolling window,
// or the current calendar month or week (which DST changes lengthen or
// shorten by an hour).
func (p *period) length(now time.Time) time.Duration {
	if p.rolling > 0 {
		return time.Duration(p.rolling) * time.Minute
	}
	s, e := calendarPeriod(p.calendar, p.loc, p.anchor, now)
	return e.Sub(s)
}

// calendarPeriod returns the calendar month or week holding now, in loc:
// from the first of the month (Monday) at midnight, or, with an anchor,
// from the anchor's day of the month (weekday) and time of day. A month
// whose anchor day does not exist (the 31st in April) starts on its last
// day.
func calendarPeriod(unit CalendarUnit, loc *time.Location, anchor, now time.Time) (start, end time.Time) {
	t := now.In(loc)
	y, mo, d := t.Date()
	day, weekday := 1, time.Monday
	var hh, mm, ss int
	if !anchor.IsZero() {
		a := anchor.In(loc)
		day, weekday = a.Day(), a.Weekday()
		hh, mm, ss = a.Clock()
	}
	switch unit {
	case Week:
		back := (int(t.Weekday()) - int(weekday) + 7) % 7 // days since the anchor's weekday
		start = time.Date(y, mo, d-back, hh, mm, ss, 0, loc)
		if start.After(t) {
			start = time.Date(y, mo, d-back-7, hh, mm, ss, 0, loc)
		}
		sy, smo, sd := start.Date()
		end = time.Date(sy, smo, sd+7, hh, mm, ss, 0, loc)
	default:
		monthStart := func(y int, mo time.Month) time.Time {
			last := time.Date(y, mo+1, 0, 0, 0, 0, 0, loc).Day()
			return time.Date(y, mo, min(day, last), hh, mm, ss, 0, loc)
		}
		start = monthStart(y, mo)
		if start.After(t) {
			start = monthStart(y, mo-1)
		}
		sy, smo, _ := start.Date()
		end = monthStart(sy, smo+1)
	}
	return start, end
}
