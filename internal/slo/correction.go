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
	// DeletedBy and DeletedAt record who deleted an API correction and
	// when. A deleted correction is kept, for the record, but no longer
	// applies to the budget.
	DeletedBy string    `json:"deleted_by,omitempty"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
}

// Deleted reports whether the correction was deleted: it no longer applies.
func (c *Correction) Deleted() bool { return !c.DeletedAt.IsZero() }

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
// [from, to); a deleted correction has none.
func (c *Correction) Occurrences(from, to time.Time, fn func(start, end time.Time)) {
	if c.Deleted() {
		return
	}
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

// Corrections returns an SLO's corrections, deleted ones included (marked
// by DeletedAt).
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
// to past events too. now stamps CreatedAt when unset. A correction whose
// period (or one occurrence of it) is longer than the SLO's window is
// refused: it would exclude every event the window holds.
func (e *Engine) AddCorrection(ctx context.Context, c Correction, now time.Time) (Correction, error) {
	st := e.byName[c.SLO]
	if st == nil {
		return Correction{}, fmt.Errorf("%w %q", ErrUnknownSLO, c.SLO)
	}
	c.Source = SourceAPI
	c.DeletedBy, c.DeletedAt = "", time.Time{}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if err := c.Validate(); err != nil {
		return Correction{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := st.per.checkCorrection(&c); err != nil {
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

// checkCorrection refuses a correction longer than the longest window of
// the period: the rolling window, or a calendar month (31 days) or week,
// each with an hour for a DST change.
func (p *period) checkCorrection(c *Correction) error {
	longest := time.Duration(p.rolling) * time.Minute
	switch {
	case p.rolling > 0:
	case p.calendar == Week:
		longest = 7*24*time.Hour + time.Hour
	default:
		longest = 31*24*time.Hour + time.Hour
	}
	if c.RRule == "" {
		if d := c.End.Sub(c.Start); d > longest {
			return fmt.Errorf("end: the correction lasts %s, longer than the SLO window (%s): it would exclude every event; shorten it or split it", units.FormatDuration(d), p.label)
		}
		return nil
	}
	if d := c.Duration.Std(); d > longest {
		return fmt.Errorf("duration: each occurrence lasts %s, longer than the SLO window (%s): it would exclude every event", units.FormatDuration(d), p.label)
	}
	return nil
}

// DeleteCorrection deletes a correction added through the API, for the
// principal by, at now. The correction is kept, marked deleted, and stops
// applying to the budget at once, to past events too.
func (e *Engine) DeleteCorrection(ctx context.Context, slo string, id int64, by string, now time.Time) error {
	st := e.byName[slo]
	if st == nil {
		return fmt.Errorf("%w %q", ErrUnknownSLO, slo)
	}
	match := func(c Correction) bool { return c.ID == id && c.Source == SourceAPI }
	e.mu.RLock()
	i := slices.IndexFunc(st.corrections, match)
	var prev Correction
	if i >= 0 {
		prev = st.corrections[i]
	}
	e.mu.RUnlock()
	if i < 0 {
		return fmt.Errorf("%w %d of SLO %q", ErrUnknownCorrection, id, slo)
	}
	if prev.Deleted() {
		return fmt.Errorf("%w %d of SLO %q: already deleted by %s at %s", ErrUnknownCorrection, id, slo, prev.DeletedBy, prev.DeletedAt.UTC().Format(time.RFC3339))
	}
	if e.store != nil {
		ok, err := e.store.DeleteCorrection(ctx, slo, id, by, now)
		if err != nil {
			return fmt.Errorf("delete correction: %w", err)
		}
		if !ok {
			return fmt.Errorf("%w %d of SLO %q: deleted meanwhile", ErrUnknownCorrection, id, slo)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if i = slices.IndexFunc(st.corrections, match); i >= 0 {
		st.corrections[i].DeletedBy, st.corrections[i].DeletedAt = by, now
	}
	st.ivsTo = time.Time{}
	e.refreshCorrectionsLocked(now, false)
	return nil
}
