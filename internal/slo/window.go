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
}

// bounds returns the window's first minute and its nominal end (the instant
// the window ends for a calendar period, now for a rolling one), at now.
func (p *period) bounds(now time.Time) (start units.Minute, end time.Time) {
	if p.rolling > 0 {
		return units.MinuteOf(now) - units.Minute(p.rolling), now
	}
	s, e := calendarPeriod(p.calendar, p.loc, now)
	return units.MinuteOf(s), e
}

// length returns the length of the period holding now: the rolling window,
// or the current calendar month or week (which DST changes lengthen or
// shorten by an hour).
func (p *period) length(now time.Time) time.Duration {
	if p.rolling > 0 {
		return time.Duration(p.rolling) * time.Minute
	}
	s, e := calendarPeriod(p.calendar, p.loc, now)
	return e.Sub(s)
}

// calendarPeriod returns the calendar month or ISO week (Monday first)
// holding now, in loc.
func calendarPeriod(unit CalendarUnit, loc *time.Location, now time.Time) (start, end time.Time) {
	t := now.In(loc)
	y, mo, d := t.Date()
	switch unit {
	case Week:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(y, mo, d-back, 0, 0, 0, 0, loc)
		end = time.Date(y, mo, d-back+7, 0, 0, 0, 0, loc)
	default:
		start = time.Date(y, mo, 1, 0, 0, 0, 0, loc)
		end = time.Date(y, mo+1, 1, 0, 0, 0, 0, loc)
	}
	return start, end
}
