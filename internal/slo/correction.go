package slo

import (
	"context"
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
type interval struct{ s, e units.Minute }

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
			em := units.MinuteOf(e)
			if !em.Time().Equal(e) {
				em++
			}
			ivs = append(ivs, interval{units.MinuteOf(s), em})
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
func excluded(ivs []interval, m units.Minute) bool {
	i, found := slices.BinarySearchFunc(ivs, m, func(iv interval, m units.Minute) int {
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

// refreshCorrectionsLocked expands the corrections into minute intervals
// over the retained span and a day ahead, when the horizon nears or force
// is set, and recomputes time slices that they change.
func (e *Engine) refreshCorrectionsLocked(now time.Time, force bool) {
	for _, st := range e.slos {
		if !force && !st.ivsTo.IsZero() && now.Before(st.ivsTo.Add(-12*time.Hour)) {
			continue
		}
		from := e.oldestKept(units.MinuteOf(now)).Time()
		to := now.Add(36 * time.Hour)
		ivs := expandCorrections(st.corrections, from, to)
		changed := !slices.Equal(ivs, st.ivs)
		st.ivs, st.ivsFrom, st.ivsTo = ivs, from, to
		if changed && st.sliceLen > 0 {
			st.allSeries(st.rebuildSlices)
		}
	}
}

// Corrections returns an SLO's corrections.
func (e *Engine) Corrections(name string) ([]Correction, error) {
	st := e.byName[name]
	if st == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownSLO, name)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return append([]Correction{}, st.corrections...), nil
}

// AddCorrection validates and stores a correction and applies it at once,
// to past events too. now stamps CreatedAt when unset.
func (e *Engine) AddCorrection(ctx context.Context, c Correction, now time.Time) (Correction, error) {
	st := e.byName[c.SLO]
	if st == nil {
		return Correction{}, fmt.Errorf("%w %q", ErrUnknownSLO, c.SLO)
	}
	c.Source = SourceAPI
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if err := c.Validate(); err != nil {
		return Correction{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if e.store != nil {
		stored, err := e.store.AddCorrection(ctx, c)
		if err != nil {
			return Correction{}, fmt.Errorf("store correction: %w", err)
		}
		c = stored
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.store == nil {
		e.nextID++
		c.ID = e.nextID
	}
	st.corrections = append(st.corrections, c)
	st.ivsTo = time.Time{}
	e.refreshCorrectionsLocked(now, false)
	return c, nil
}

// DeleteCorrection removes a correction added through the API.
func (e *Engine) DeleteCorrection(ctx context.Context, slo string, id int64, now time.Time) error {
	st := e.byName[slo]
	if st == nil {
		return fmt.Errorf("%w %q", ErrUnknownSLO, slo)
	}
	e.mu.RLock()
	i := slices.IndexFunc(st.corrections, func(c Correction) bool { return c.ID == id && c.Source == SourceAPI })
	e.mu.RUnlock()
	if i < 0 {
		return fmt.Errorf("%w %d of SLO %q", ErrUnknownCorrection, id, slo)
	}
	if e.store != nil {
		if _, err := e.store.DeleteCorrection(ctx, slo, id); err != nil {
			return fmt.Errorf("delete correction: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st.corrections = slices.DeleteFunc(st.corrections, func(c Correction) bool { return c.ID == id && c.Source == SourceAPI })
	st.ivsTo = time.Time{}
	e.refreshCorrectionsLocked(now, false)
	return nil
}
