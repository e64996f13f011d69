package slo

import (
	"time"
)

// minute is a Unix minute: seconds since the epoch divided by 60.
type minute = int64

// minuteOf returns the Unix minute holding t.
func minuteOf(t time.Time) minute {
	s := t.Unix()
	if s < 0 {
		return (s - 59) / 60
	}
	return s / 60
}

// minuteTime returns the start of minute m in UTC.
func minuteTime(m minute) time.Time { return time.Unix(m*60, 0).UTC() }

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
func (p *period) bounds(now time.Time) (start minute, end time.Time) {
	if p.rolling > 0 {
		return minuteOf(now) - p.rolling, now
	}
	s, e := calendarPeriod(p.calendar, p.loc, now)
	return minuteOf(s), e
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
