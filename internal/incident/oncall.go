package incident

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// OncallConfig is the oncall: section of the config file: the rotations
// whose load the on-call report measures.
type OncallConfig struct {
	// TimeZone of the working hours, an IANA name; default UTC.
	TimeZone string `yaml:"time_zone"`
	// WorkingHours such as "09:00-18:00 Mon-Fri" (the default).
	WorkingHours string `yaml:"working_hours"`
	// Rotations name who carries which services' pages.
	Rotations []Rotation `yaml:"rotations"`
}

// Rotation is one on-call rotation.
type Rotation struct {
	Name     string   `yaml:"name" json:"name"`
	Services []string `yaml:"services" json:"services"`
	// Shift is the length of one on-call shift; default 12h.
	Shift units.Duration `yaml:"shift" json:"shift"`
}

// workingHours is a parsed working_hours: minutes of the day and days.
type workingHours struct {
	from, to int // minutes since midnight, from < to
	days     [7]bool
}

var dayNames = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

func parseWorkingHours(s string) (workingHours, error) {
	var wh workingHours
	if s == "" {
		s = "09:00-18:00 Mon-Fri"
	}
	hours, days, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return wh, fmt.Errorf("%q: want HH:MM-HH:MM Day-Day, e.g. 09:00-18:00 Mon-Fri", s)
	}
	from, to, ok := strings.Cut(hours, "-")
	clock := func(v string) (int, bool) {
		t, err := time.Parse("15:04", v)
		return t.Hour()*60 + t.Minute(), err == nil
	}
	var okF, okT bool
	wh.from, okF = clock(from)
	wh.to, okT = clock(to)
	if !ok || !okF || !okT || wh.from >= wh.to {
		return wh, fmt.Errorf("%q: hours must be HH:MM-HH:MM with the start first", s)
	}
	for _, part := range strings.Split(strings.TrimSpace(days), ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		ia, ib := slices.Index(dayNames, a), slices.Index(dayNames, b)
		if !isRange {
			ib = ia
		}
		if ia < 0 || ib < 0 {
			return wh, fmt.Errorf("%q: days must be like Mon-Fri or Mon,Wed,Sat", s)
		}
		for d := ia; ; d = (d + 1) % 7 {
			wh.days[d] = true
			if d == ib {
				break
			}
		}
	}
	return wh, nil
}

// in reports whether t (in the rotation's zone) is within working hours.
func (wh workingHours) in(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	return wh.days[t.Weekday()] && m >= wh.from && m < wh.to
}

// hoursIn returns the working hours in [from, to), in loc.
func (wh workingHours) hoursIn(from, to time.Time, loc *time.Location) float64 {
	var total time.Duration
	for d := time.Date(from.In(loc).Year(), from.In(loc).Month(), from.In(loc).Day(), 0, 0, 0, 0, loc); d.Before(to); d = d.AddDate(0, 0, 1) {
		if !wh.days[d.Weekday()] {
			continue
		}
		s := d.Add(time.Duration(wh.from) * time.Minute)
		e := d.Add(time.Duration(wh.to) * time.Minute)
		s, e = maxTime(s, from), minTime(e, to)
		if e.After(s) {
			total += e.Sub(s)
		}
	}
	return total.Hours()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Validate checks the section.
func (c OncallConfig) Validate() error {
	var errs []error
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("time_zone: %v", err))
		}
	}
	if _, err := parseWorkingHours(c.WorkingHours); err != nil {
		errs = append(errs, fmt.Errorf("working_hours: %v", err))
	}
	seen := map[string]bool{}
	for i, r := range c.Rotations {
		switch {
		case r.Name == "":
			errs = append(errs, fmt.Errorf("rotations[%d].name: required", i))
		case seen[r.Name]:
			errs = append(errs, fmt.Errorf("rotations[%d].name: %q is used twice", i, r.Name))
		}
		seen[r.Name] = true
		if len(r.Services) == 0 {
			errs = append(errs, fmt.Errorf("rotations[%d].services: name at least one", i))
		}
		if r.Shift < 0 {
			errs = append(errs, fmt.Errorf("rotations[%d].shift: must not be negative", i))
		}
	}
	return errors.Join(errs...)
}

// Page is a page alert that fired, as the on-call report counts it.
type Page struct {
	Service string
	SLO     string
	At      time.Time
}

// Thresholds of the on-call report, from the Google SRE book ("Being
// On-Call"): at most two incidents per 12-hour shift, and at most 50% of
// an SRE's time on toil.
const (
	MaxIncidentsPerShift = 2.0
	MaxToilShare         = 0.5
)

// RotationLoad is one rotation's on-call load over the report's period.
type RotationLoad struct {
	Name     string   `json:"name"`
	Services []string `json:"services"`
	Shift    string   `json:"shift"`
	Shifts   float64  `json:"shifts"`
	// Pages counts page alerts of the rotation's services; OffHours those
	// outside working hours (in the time zone).
	Pages         int     `json:"pages"`
	PagesOffHours int     `json:"pages_off_hours"`
	PagesPerWeek  float64 `json:"pages_per_week"`
	// Incidents counts incidents declared in the period that involve the
	// rotation's services; IncidentsPerShift divides them by Shifts.
	Incidents         int     `json:"incidents"`
	IncidentsPerShift float64 `json:"incidents_per_shift"`
	// IncidentHours is the time in those incidents (declared to resolved,
	// or to the end of the period; overlapping incidents count once).
	IncidentHours float64 `json:"incident_hours"`
	// ToilShare estimates the on-call's toil: IncidentHours over the
	// working hours of the period.
	ToilShare      float64  `json:"toil_share"`
	Overloaded     bool     `json:"overloaded"`
	Recommendation string   `json:"recommendation,omitempty"`
	Reasons        []string `json:"reasons,omitempty"`
}

// OncallReport is the on-call load of every rotation over a period.
type OncallReport struct {
	From         time.Time      `json:"from"`
	To           time.Time      `json:"to"`
	TimeZone     string         `json:"time_zone"`
	WorkingHours string         `json:"working_hours"`
	PagesBy      map[string]int `json:"pages_by_service"`
	Rotations    []RotationLoad `json:"rotations"`
}

// BuildOncallReport computes the report over [from, to) from the pages
// that fired and the incidents declared. cfg must be valid.
func BuildOncallReport(cfg OncallConfig, pages []Page, incidents []Incident, from, to time.Time) (OncallReport, error) {
	loc := time.UTC
	if cfg.TimeZone != "" {
		var err error
		if loc, err = time.LoadLocation(cfg.TimeZone); err != nil {
			return OncallReport{}, err
		}
	}
	wh, err := parseWorkingHours(cfg.WorkingHours)
	if err != nil {
		return OncallReport{}, err
	}
	rep := OncallReport{From: from, To: to, TimeZone: loc.String(), WorkingHours: orDefault(cfg.WorkingHours, "09:00-18:00 Mon-Fri"), PagesBy: map[string]int{}}
	inPeriod := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	for _, p := range pages {
		if inPeriod(p.At) {
			rep.PagesBy[p.Service]++
		}
	}
	weeks := to.Sub(from).Hours() / (24 * 7)
	workHours := wh.hoursIn(from, to, loc)
	for _, r := range cfg.Rotations {
		shift := r.Shift.Std()
		if shift == 0 {
			shift = 12 * time.Hour
		}
		l := RotationLoad{Name: r.Name, Services: r.Services, Shift: units.FormatDuration(shift), Shifts: to.Sub(from).Hours() / shift.Hours()}
		for _, p := range pages {
			if inPeriod(p.At) && slices.Contains(r.Services, p.Service) {
				l.Pages++
				if !wh.in(p.At.In(loc)) {
					l.PagesOffHours++
				}
			}
		}
		if weeks > 0 {
			l.PagesPerWeek = float64(l.Pages) / weeks
		}
		var spans [][2]time.Time
		for _, inc := range incidents {
			if !inPeriod(inc.DeclaredAt) || !slices.ContainsFunc(inc.Services, func(s string) bool { return slices.Contains(r.Services, s) }) {
				continue
			}
			l.Incidents++
			end := to
			if inc.ResolvedAt != nil && inc.ResolvedAt.Before(to) {
				end = *inc.ResolvedAt
			}
			spans = append(spans, [2]time.Time{inc.DeclaredAt, end})
		}
		l.IncidentHours = unionHours(spans)
		if l.Shifts > 0 {
			l.IncidentsPerShift = float64(l.Incidents) / l.Shifts
		}
		if workHours > 0 {
			l.ToilShare = l.IncidentHours / workHours
		}
		if l.IncidentsPerShift > MaxIncidentsPerShift {
			l.Reasons = append(l.Reasons, fmt.Sprintf("%.1f incidents per %s shift, above the SRE book's 2", l.IncidentsPerShift, l.Shift))
		}
		if l.ToilShare > MaxToilShare {
			l.Reasons = append(l.Reasons, fmt.Sprintf("an estimated %.0f%% of working time in incidents, above 50%%", 100*l.ToilShare))
		}
		if len(l.Reasons) > 0 {
			l.Overloaded = true
			l.Recommendation = "stability sprint: freeze feature releases of " + strings.Join(r.Services, ", ") +
				" (tailgate's gate already denies features while budgets are spent; add a policy rule or an override window for the sprint), and spend the team's time on the causes of these pages until the load is back under the limits"
		}
		rep.Rotations = append(rep.Rotations, l)
	}
	return rep, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// unionHours is the length of the union of the spans, in hours.
func unionHours(spans [][2]time.Time) float64 {
	slices.SortFunc(spans, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var total time.Duration
	var cur [2]time.Time
	for i, s := range spans {
		switch {
		case i == 0:
			cur = s
		case !s[0].After(cur[1]):
			cur[1] = maxTime(cur[1], s[1])
		default:
			total += cur[1].Sub(cur[0])
			cur = s
		}
	}
	if len(spans) > 0 {
		total += cur[1].Sub(cur[0])
	}
	return math.Round(total.Hours()*1000) / 1000
}

// Oncall builds the on-call report over [from, to) from the stored page
// alerts and incidents.
func (s *Service) Oncall(ctx context.Context, from, to time.Time) (OncallReport, error) {
	var pages []Page
	if s.set.Alerts != nil {
		ts, err := s.set.Alerts.ListAlertTransitions(ctx, "", from, 0)
		if err != nil {
			return OncallReport{}, fmt.Errorf("read alert transitions: %w", err)
		}
		for _, t := range ts {
			if t.Severity == slo.Page && t.To == slo.Firing && t.Group == "" && t.At.Before(to) {
				pages = append(pages, Page{Service: t.Service, SLO: t.SLO, At: t.At})
			}
		}
	}
	incs, err := s.set.Store.ListIncidents(ctx, false, 100000)
	if err != nil {
		return OncallReport{}, err
	}
	return BuildOncallReport(s.oncall, pages, incs, from, to)
}
