package slo

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Correction excludes the events of planned maintenance (or of traffic out
// of the SLO's scope) from an SLO's budget: one period from Start to End, or
// periods of length Duration recurring by an RFC 5545 RRULE from Start.
type Correction struct {
	// ID is assigned by the store; 0 for corrections declared in a spec.
	ID    int64     `json:"id"`
	SLO   string    `json:"slo"`
	Start time.Time `json:"start"`
	// End closes a one-off correction.
	End time.Time `json:"end,omitzero"`
	// Duration is each occurrence's length for a recurring correction.
	Duration units.Duration `json:"duration,omitzero"`
	// RRule is the recurrence (FREQ=DAILY|WEEKLY|MONTHLY with INTERVAL,
	// BYDAY, BYMONTHDAY, COUNT, UNTIL).
	RRule string `json:"rrule,omitempty"`
	// TimeZone is the IANA zone the rule recurs in (default: Start's).
	TimeZone  string    `json:"time_zone,omitempty"`
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Source is "config" for spec corrections and "api" for added ones.
	Source string `json:"source"`
}

// Correction sources.
const (
	SourceConfig = "config"
	SourceAPI    = "api"
)

// maxCorrectionOccurrence bounds one occurrence of a recurring correction.
const maxCorrectionOccurrence = 31 * 24 * time.Hour

// Validate checks a correction's fields.
func (c *Correction) Validate() error {
	var errs []error
	if c.Start.IsZero() {
		errs = append(errs, errors.New("start: required"))
	}
	if c.Reason == "" {
		errs = append(errs, errors.New("reason: required (say why the events do not count)"))
	}
	if c.RRule == "" {
		if c.Duration != 0 {
			errs = append(errs, errors.New("duration: only applies with rrule (use end for a one-off correction)"))
		}
		if c.End.IsZero() {
			errs = append(errs, errors.New("end: required for a one-off correction"))
		} else if !c.End.After(c.Start) {
			errs = append(errs, fmt.Errorf("end: must be after start (%s)", c.Start.Format(time.RFC3339)))
		}
	} else {
		if !c.End.IsZero() {
			errs = append(errs, errors.New("end: does not apply with rrule (use duration, and COUNT or UNTIL in the rule)"))
		}
		if c.Duration <= 0 || c.Duration.Std() > maxCorrectionOccurrence {
			errs = append(errs, fmt.Errorf("duration: required with rrule, from 1s to 31d, got %s", c.Duration))
		}
		if _, err := parseRRule(c.RRule); err != nil {
			errs = append(errs, fmt.Errorf("rrule: %w", err))
		}
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("time_zone: unknown time zone %q", c.TimeZone))
		}
	}
	return errors.Join(errs...)
}

// correction converts a spec's correction.
func (c CorrectionSpec) correction(slo string) (Correction, error) {
	out := Correction{SLO: slo, Start: c.Start, End: c.End, Duration: c.Duration, RRule: c.RRule, Reason: c.Reason, Source: SourceConfig}
	return out, out.Validate()
}

// interval is a half-open range of minutes [s, e).
type interval struct{ s, e minute }

// Occurrences calls fn for each period of the correction that overlaps
// [from, to).
func (c *Correction) Occurrences(from, to time.Time, fn func(start, end time.Time)) {
	if c.RRule == "" {
		if c.Start.Before(to) && c.End.After(from) {
			fn(c.Start, c.End)
		}
		return
	}
	r, err := parseRRule(c.RRule)
	if err != nil {
		return // validated when added
	}
	start := c.Start
	if c.TimeZone != "" {
		if loc, err := time.LoadLocation(c.TimeZone); err == nil {
			start = start.In(loc)
		}
	}
	d := c.Duration.Std()
	r.each(start, to, func(t time.Time) bool {
		if e := t.Add(d); e.After(from) {
			fn(t, e)
		}
		return true
	})
}

// expandCorrections turns corrections into sorted, merged minute intervals
// overlapping [from, to). A period is widened to whole minutes: every minute
// it overlaps is excluded.
func expandCorrections(cs []Correction, from, to time.Time) []interval {
	var ivs []interval
	for i := range cs {
		cs[i].Occurrences(from, to, func(s, e time.Time) {
			em := minuteOf(e)
			if !minuteTime(em).Equal(e) {
				em++
			}
			ivs = append(ivs, interval{minuteOf(s), em})
		})
	}
	slices.SortFunc(ivs, func(a, b interval) int { return int(a.s - b.s) })
	out := ivs[:0]
	for _, iv := range ivs {
		if n := len(out); n > 0 && iv.s <= out[n-1].e {
			out[n-1].e = max(out[n-1].e, iv.e)
			continue
		}
		out = append(out, iv)
	}
	return out
}

// excluded reports whether minute m lies in one of the sorted intervals.
func excluded(ivs []interval, m minute) bool {
	i, found := slices.BinarySearchFunc(ivs, m, func(iv interval, m minute) int {
		switch {
		case iv.e <= m:
			return -1
		case iv.s > m:
			return 1
		}
		return 0
	})
	_ = i
	return found
}
