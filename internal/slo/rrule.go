package slo

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// rrule is the subset of an RFC 5545 recurrence rule that corrections
// support: FREQ=DAILY|WEEKLY|MONTHLY with INTERVAL, BYDAY (with ordinals
// such as 1MO or -1FR for MONTHLY), BYMONTHDAY (MONTHLY), COUNT, UNTIL and
// WKST=MO. Occurrences start at DTSTART's time of day, in DTSTART's time
// zone, so a nightly window stays at its wall-clock time across DST.
type rrule struct {
	freq       string
	interval   int
	byDay      []weekdayNum
	byMonthDay []int
	count      int
	until      time.Time // zero when absent
}

type weekdayNum struct {
	n   int // 0: every such weekday; ±k: the k-th (from the end when negative)
	day time.Weekday
}

var weekdayCodes = map[string]time.Weekday{
	"MO": time.Monday, "TU": time.Tuesday, "WE": time.Wednesday, "TH": time.Thursday,
	"FR": time.Friday, "SA": time.Saturday, "SU": time.Sunday,
}

// maxOccurrenceSteps bounds the periods an expansion walks, so a rule from
// long ago with a tiny interval cannot stall evaluation.
const maxOccurrenceSteps = 200000

// parseRRule parses a rule such as "FREQ=WEEKLY;BYDAY=SA,SU;UNTIL=20261231T000000Z".
// An "RRULE:" prefix is accepted.
func parseRRule(s string) (*rrule, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "RRULE:")
	if s == "" {
		return nil, errors.New("empty rule")
	}
	r := &rrule{interval: 1}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("part %q is not NAME=VALUE", part)
		}
		k = strings.ToUpper(k)
		if seen[k] {
			return nil, fmt.Errorf("%s given twice", k)
		}
		seen[k] = true
		switch k {
		case "FREQ":
			switch v = strings.ToUpper(v); v {
			case "DAILY", "WEEKLY", "MONTHLY":
				r.freq = v
			default:
				return nil, fmt.Errorf("FREQ=%s is not supported (DAILY, WEEKLY or MONTHLY)", v)
			}
		case "INTERVAL":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("INTERVAL must be an integer from 1 to 1000, got %q", v)
			}
			r.interval = n
		case "COUNT":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("COUNT must be a positive integer, got %q", v)
			}
			r.count = n
		case "UNTIL":
			t, err := parseRRuleTime(v)
			if err != nil {
				return nil, err
			}
			r.until = t
		case "BYDAY":
			for _, d := range strings.Split(strings.ToUpper(v), ",") {
				if len(d) < 2 {
					return nil, fmt.Errorf("BYDAY value %q is not a weekday", d)
				}
				wd, ok := weekdayCodes[d[len(d)-2:]]
				if !ok {
					return nil, fmt.Errorf("BYDAY value %q is not a weekday", d)
				}
				n := 0
				if num := d[:len(d)-2]; num != "" {
					var err error
					n, err = strconv.Atoi(num)
					if err != nil || n == 0 || n < -5 || n > 5 {
						return nil, fmt.Errorf("BYDAY value %q has a bad ordinal", d)
					}
				}
				r.byDay = append(r.byDay, weekdayNum{n: n, day: wd})
			}
		case "BYMONTHDAY":
			for _, d := range strings.Split(v, ",") {
				n, err := strconv.Atoi(d)
				if err != nil || n == 0 || n < -31 || n > 31 {
					return nil, fmt.Errorf("BYMONTHDAY value %q must be from 1 to 31 or -31 to -1", d)
				}
				r.byMonthDay = append(r.byMonthDay, n)
			}
		case "WKST":
			if strings.ToUpper(v) != "MO" {
				return nil, fmt.Errorf("WKST=%s is not supported (weeks start on Monday)", v)
			}
		default:
			return nil, fmt.Errorf("%s is not supported (FREQ, INTERVAL, BYDAY, BYMONTHDAY, COUNT, UNTIL)", k)
		}
	}
	if r.freq == "" {
		return nil, errors.New("FREQ is required")
	}
	if r.count > 0 && !r.until.IsZero() {
		return nil, errors.New("COUNT and UNTIL are exclusive")
	}
	for _, d := range r.byDay {
		if d.n != 0 && r.freq != "MONTHLY" {
			return nil, fmt.Errorf("BYDAY ordinals such as %d%s only apply to FREQ=MONTHLY", d.n, strings.ToUpper(d.day.String()[:2]))
		}
	}
	if len(r.byMonthDay) > 0 && r.freq != "MONTHLY" {
		return nil, errors.New("BYMONTHDAY only applies to FREQ=MONTHLY")
	}
	return r, nil
}

func parseRRuleTime(v string) (time.Time, error) {
	for _, layout := range []string{"20060102T150405Z", "20060102T150405", "20060102"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("UNTIL=%s is not a date (YYYYMMDD or YYYYMMDDTHHMMSSZ)", v)
}

// each calls fn with the start of each occurrence, from dtstart on, that
// is before to and whose start is at or after from-maxLen (the caller checks
// overlap). It stops when fn returns false.
func (r *rrule) each(dtstart, to time.Time, fn func(time.Time) bool) {
	loc := dtstart.Location()
	y, mo, d := dtstart.Date()
	hh, mm, ss := dtstart.Clock()
	ns := dtstart.Nanosecond()
	at := func(y int, mo time.Month, d int) time.Time { return time.Date(y, mo, d, hh, mm, ss, ns, loc) }
	n := 0
	emit := func(t time.Time) bool {
		if t.Before(dtstart) {
			return true
		}
		if !r.until.IsZero() && t.After(r.until) || !t.Before(to) {
			return false
		}
		n++
		if r.count > 0 && n > r.count {
			return false
		}
		return fn(t)
	}
	dayOK := func(t time.Time) bool {
		if len(r.byDay) == 0 {
			return true
		}
		return slices.ContainsFunc(r.byDay, func(w weekdayNum) bool { return w.day == t.Weekday() })
	}
	var cand []time.Time
	for step := 0; step < maxOccurrenceSteps; step++ {
		k := step * r.interval
		cand = cand[:0]
		var periodStart time.Time
		switch r.freq {
		case "DAILY":
			periodStart = time.Date(y, mo, d+k, 0, 0, 0, 0, loc)
		case "WEEKLY":
			periodStart = time.Date(y, mo, d-(int(dtstart.Weekday())+6)%7+7*k, 0, 0, 0, 0, loc)
		case "MONTHLY":
			periodStart = time.Date(y, mo+time.Month(k), 1, 0, 0, 0, 0, loc)
		}
		if !periodStart.Before(to) || !r.until.IsZero() && periodStart.After(r.until) {
			return
		}
		switch r.freq {
		case "DAILY":
			if t := at(y, mo, d+k); dayOK(t) {
				cand = append(cand, t)
			}
		case "WEEKLY":
			monday := d - (int(dtstart.Weekday())+6)%7 + 7*k
			days := r.byDay
			if len(days) == 0 {
				days = []weekdayNum{{day: dtstart.Weekday()}}
			}
			for _, w := range days {
				cand = append(cand, at(y, mo, monday+(int(w.day)+6)%7))
			}
		case "MONTHLY":
			cand = r.monthDays(cand, y, mo+time.Month(k), d, at)
		}
		slices.SortFunc(cand, func(a, b time.Time) int { return a.Compare(b) })
		cand = slices.CompactFunc(cand, func(a, b time.Time) bool { return a.Equal(b) })
		for _, t := range cand {
			if !emit(t) {
				return
			}
		}
	}
}

// monthDays appends the occurrences of one month (BYMONTHDAY, BYDAY or the
// start's day of month). Days a month lacks (the 31st of April) are skipped,
// as RFC 5545 requires.
func (r *rrule) monthDays(dst []time.Time, y int, mo time.Month, startDay int, at func(int, time.Month, int) time.Time) []time.Time {
	first := time.Date(y, mo, 1, 12, 0, 0, 0, time.UTC) // normalises mo
	y, mo = first.Year(), first.Month()
	days := time.Date(y, mo+1, 0, 12, 0, 0, 0, time.UTC).Day()
	add := func(day int) {
		if day >= 1 && day <= days {
			dst = append(dst, at(y, mo, day))
		}
	}
	if len(r.byMonthDay) == 0 && len(r.byDay) == 0 {
		add(startDay)
		return dst
	}
	if len(r.byMonthDay) > 0 {
		// With both, BYDAY narrows BYMONTHDAY (RFC 5545's BYxxx rules
		// intersect).
		for _, md := range r.byMonthDay {
			if md < 0 {
				md = days + 1 + md
			}
			if md < 1 || md > days {
				continue
			}
			wd := time.Date(y, mo, md, 12, 0, 0, 0, time.UTC).Weekday()
			if len(r.byDay) == 0 || slices.ContainsFunc(r.byDay, func(w weekdayNum) bool { return w.day == wd }) {
				add(md)
			}
		}
		return dst
	}
	firstWD := int(first.Weekday())
	for _, w := range r.byDay {
		off := (int(w.day) - firstWD + 7) % 7 // first such weekday is day 1+off
		switch {
		case w.n == 0:
			for day := 1 + off; day <= days; day += 7 {
				add(day)
			}
		case w.n > 0:
			add(1 + off + 7*(w.n-1))
		default:
			last := 1 + off + 7*((days-1-off)/7)
			add(last + 7*(w.n+1))
		}
	}
	return dst
}
