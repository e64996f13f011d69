package slo

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Spec is one SLO in tailgate's own format: an entry of the top-level slos:
// list of the config, or of an SLO file.
type Spec struct {
	// Name identifies the SLO (letters, digits, '-', '_', '.').
	Name string `yaml:"name"`
	// Service is the service.name whose entry spans are the requests.
	Service     string `yaml:"service"`
	Description string `yaml:"description,omitempty"`
	// Objective is the target in percent, e.g. 99.9.
	Objective float64 `yaml:"objective"`
	// Window is a rolling window such as 30d; exclusive with Calendar.
	Window units.Duration `yaml:"window,omitempty"`
	// Calendar is a calendar window: month or week (starting Monday).
	Calendar CalendarUnit `yaml:"calendar,omitempty"`
	// TimeZone is the IANA zone of a calendar window (default UTC).
	TimeZone string `yaml:"time_zone,omitempty"`
	// CalendarStart anchors a calendar window ("2006-01-02 15:04:05" in
	// TimeZone, as OpenSLO's calendar.startTime): a month then runs from
	// that day of the month and time of day, a week from that weekday and
	// time. Default: the first of the month (or Monday) at midnight.
	CalendarStart string `yaml:"calendar_start,omitempty"`
	// Budgeting is occurrences (default), timeslices or ratio_timeslices.
	Budgeting BudgetingMethod `yaml:"budgeting,omitempty"`
	// TimeSlice configures the timeslices budgeting methods.
	TimeSlice TimeSliceSpec `yaml:"time_slice,omitempty"`
	SLI       SLISpec       `yaml:"sli"`
	Alerting  AlertingSpec  `yaml:"alerting,omitempty"`
	// Corrections are static maintenance windows; more can be added through
	// the API.
	Corrections []CorrectionSpec `yaml:"corrections,omitempty"`
	// Labels are copied into notifications.
	Labels map[string]string `yaml:"labels,omitempty"`

	// Source is where the spec was read ("file:line"), for messages.
	Source string `yaml:"-"`
}

// SLISpec says which requests count and which are good.
type SLISpec struct {
	Kind SLIKind `yaml:"kind"`
	// Threshold is the latency a good request stays at or under (latency).
	Threshold units.Duration `yaml:"threshold,omitempty"`
	// Filter narrows the requests: span_name, http.route or any span
	// attribute, each equal to the given value.
	Filter map[string]string `yaml:"filter,omitempty"`
	// ClientErrorsBad makes HTTP 4xx answers bad for availability too.
	ClientErrorsBad bool `yaml:"client_errors_bad,omitempty"`
	// GroupBy splits the SLO into one per value of this key (span_name,
	// http.route or a span attribute).
	GroupBy string `yaml:"group_by,omitempty"`
	// MaxGroups bounds the groups (default 50); later values share the
	// group "(other)".
	MaxGroups int `yaml:"max_groups,omitempty"`
}

// TimeSliceSpec configures time slices.
type TimeSliceSpec struct {
	// Window is the slice length (a whole number of minutes, default 1m).
	Window units.Duration `yaml:"window,omitempty"`
	// Target is the SLI in percent a slice must reach to be good
	// (timeslices only).
	Target float64 `yaml:"target,omitempty"`
}

// AlertingSpec customises an SLO's alerts. The zero value gives the
// Workbook's four burn-rate tiers and the budget-exhausted alert.
type AlertingSpec struct {
	// Disabled turns every alert of the SLO off.
	Disabled bool `yaml:"disabled,omitempty"`
	// Tiers replaces the default burn-rate tiers when not empty.
	Tiers []TierSpec `yaml:"tiers,omitempty"`
	// DisableTiers drops tiers by name (e.g. ticket-3d).
	DisableTiers []string `yaml:"disable_tiers,omitempty"`
	// MinCoverage is the fraction (0..1] of a tier's long window that must
	// hold data before the tier can fire; default 0.9.
	MinCoverage *float64 `yaml:"min_coverage,omitempty"`
	// BudgetExhausted fires when the budget is spent (on by default).
	BudgetExhausted *BudgetAlertSpec `yaml:"budget_exhausted,omitempty"`
	// BudgetLow fires when the budget remaining falls under Below percent.
	BudgetLow *BudgetAlertSpec `yaml:"budget_low,omitempty"`
	// NoData fires when the SLO saw no request for For.
	NoData *NoDataSpec `yaml:"no_data,omitempty"`
}

// TierSpec is one multi-window burn-rate alert.
type TierSpec struct {
	Name     string   `yaml:"name"`
	Severity Severity `yaml:"severity"`
	// BurnRate is the threshold both windows must reach.
	BurnRate float64 `yaml:"burn_rate"`
	// LongWindow and ShortWindow are given for a 30-day SLO window and
	// scale with the SLO's window unless Scale is false.
	LongWindow  units.Duration `yaml:"long_window"`
	ShortWindow units.Duration `yaml:"short_window"`
	Scale       *bool          `yaml:"scale,omitempty"`
	// For is how long the condition must hold before firing (default 0).
	For units.Duration `yaml:"for,omitempty"`
	// KeepFiringFor is how long a firing alert stays firing after its
	// condition cleared (default: the short window).
	KeepFiringFor *units.Duration `yaml:"keep_firing_for,omitempty"`
}

// BudgetAlertSpec configures the budget alerts.
type BudgetAlertSpec struct {
	Enabled  *bool    `yaml:"enabled,omitempty"`
	Severity Severity `yaml:"severity,omitempty"`
	// Below is the remaining budget in percent under which budget_low
	// fires.
	Below float64        `yaml:"below,omitempty"`
	For   units.Duration `yaml:"for,omitempty"`
}

// NoDataSpec configures the no-data alert.
type NoDataSpec struct {
	For      units.Duration `yaml:"for"`
	Severity Severity       `yaml:"severity,omitempty"`
}

// CorrectionSpec is a correction declared in a spec.
type CorrectionSpec struct {
	Start time.Time `yaml:"start"`
	// End closes a one-off period; Duration gives each occurrence's length
	// with RRule.
	End      time.Time      `yaml:"end,omitempty"`
	Duration units.Duration `yaml:"duration,omitempty"`
	RRule    string         `yaml:"rrule,omitempty"`
	Reason   string         `yaml:"reason"`
}

// SLIKind is the kind of SLI.
type SLIKind uint8

// SLI kinds.
const (
	Availability SLIKind = iota + 1
	Latency
)

// String returns the kind's config name.
func (k SLIKind) String() string {
	switch k {
	case Availability:
		return "availability"
	case Latency:
		return "latency"
	}
	return ""
}

// MarshalText implements encoding.TextMarshaler.
func (k SLIKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *SLIKind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "availability":
		*k = Availability
	case "latency":
		*k = Latency
	default:
		return fmt.Errorf("unknown SLI kind %q (want availability or latency)", b)
	}
	return nil
}

// BudgetingMethod is how events are counted against the budget.
type BudgetingMethod uint8

// Budgeting methods, as OpenSLO names them.
const (
	Occurrences BudgetingMethod = iota
	Timeslices
	RatioTimeslices
)

// String returns the method's config name.
func (m BudgetingMethod) String() string {
	switch m {
	case Timeslices:
		return "timeslices"
	case RatioTimeslices:
		return "ratio_timeslices"
	}
	return "occurrences"
}

// MarshalText implements encoding.TextMarshaler.
func (m BudgetingMethod) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; OpenSLO's spellings
// are accepted too.
func (m *BudgetingMethod) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.ReplaceAll(string(b), "_", "")) {
	case "occurrences", "":
		*m = Occurrences
	case "timeslices":
		*m = Timeslices
	case "ratiotimeslices":
		*m = RatioTimeslices
	default:
		return fmt.Errorf("unknown budgeting method %q (want occurrences, timeslices or ratio_timeslices)", b)
	}
	return nil
}

// Severity is an alert's severity.
type Severity uint8

// Severities: a page wakes someone, a ticket is for working hours.
const (
	SeverityNone Severity = iota
	Page
	Ticket
)

// String returns the severity's name.
func (s Severity) String() string {
	switch s {
	case Page:
		return "page"
	case Ticket:
		return "ticket"
	}
	return ""
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "page":
		*s = Page
	case "ticket":
		*s = Ticket
	default:
		return fmt.Errorf("unknown severity %q (want page or ticket)", b)
	}
	return nil
}

// CalendarStartLayout is the layout of calendar_start (OpenSLO's
// calendar.startTime).
const CalendarStartLayout = "2006-01-02 15:04:05"

// CalendarUnit is the period of a calendar window.
type CalendarUnit uint8

// Calendar periods.
const (
	NoCalendar CalendarUnit = iota
	Month
	Week
)

// String returns the unit's name.
func (c CalendarUnit) String() string {
	switch c {
	case Month:
		return "month"
	case Week:
		return "week"
	}
	return ""
}

// MarshalText implements encoding.TextMarshaler.
func (c CalendarUnit) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *CalendarUnit) UnmarshalText(b []byte) error {
	switch string(b) {
	case "month":
		*c = Month
	case "week":
		*c = Week
	case "":
		*c = NoCalendar
	default:
		return fmt.Errorf("unknown calendar %q (want month or week)", b)
	}
	return nil
}

// Warning is a legal but doubtful setting, such as a 100% objective.
type Warning struct {
	// Source is "file:line" when known.
	Source string
	// SLO names the SLO, Field the key path (e.g. "slos[2].objective").
	SLO   string
	Field string
	Msg   string
}

// String formats the warning for a terminal.
func (w Warning) String() string {
	var b strings.Builder
	if w.Source != "" {
		b.WriteString(w.Source)
		b.WriteString(": ")
	}
	if w.Field != "" {
		b.WriteString(w.Field)
		b.WriteString(": ")
	}
	if w.SLO != "" {
		fmt.Fprintf(&b, "SLO %q: ", w.SLO)
	}
	b.WriteString(w.Msg)
	return b.String()
}

// FieldError is a validation error naming the SLO's index and key path.
type FieldError struct {
	Index int    // index in the validated list
	Path  string // key path inside the spec, e.g. "sli.threshold"
	Msg   string
	// Source is "file:line" of the offending key and SLO the spec's name,
	// both filled by LoadFiles.
	Source string
	SLO    string
}

// Error implements error: "slos[2].objective: ..." for a config list, or
// "file.yaml:7: slo "x": objective: ..." for a file.
func (e *FieldError) Error() string {
	if e.Source != "" {
		name := fmt.Sprintf("slo %q", e.SLO)
		if e.SLO == "" {
			name = fmt.Sprintf("slos[%d]", e.Index)
		}
		if e.Path == "" {
			return e.Source + ": " + name + ": " + e.Msg
		}
		return e.Source + ": " + name + ": " + e.Path + ": " + e.Msg
	}
	p := fmt.Sprintf("slos[%d]", e.Index)
	if e.Path != "" {
		p += "." + e.Path
	}
	return p + ": " + e.Msg
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)

// DefaultMaxGroups bounds a grouped SLO's groups when max_groups is unset.
const DefaultMaxGroups = 50

// ValidateSpecs checks specs and reports every error at once (joined
// *FieldError values naming "slos[i].field"), and the warnings of the traps
// the Workbook names.
func ValidateSpecs(specs []Spec) (warnings []Warning, err error) {
	var errs []error
	seen := map[string]int{}
	for i := range specs {
		s := &specs[i]
		fail := func(path, format string, args ...any) {
			errs = append(errs, &FieldError{Index: i, Path: path, Msg: fmt.Sprintf(format, args...)})
		}
		warn := func(path, format string, args ...any) {
			warnings = append(warnings, Warning{Source: s.Source, SLO: s.Name, Field: fmt.Sprintf("slos[%d].%s", i, path), Msg: fmt.Sprintf(format, args...)})
		}
		switch {
		case s.Name == "":
			fail("name", "required")
		case !nameRE.MatchString(s.Name):
			fail("name", "%q must start with a letter or digit and hold only letters, digits, '-', '_' and '.'", s.Name)
		default:
			if j, dup := seen[s.Name]; dup {
				fail("name", "%q is already the name of slos[%d]", s.Name, j)
			} else {
				seen[s.Name] = i
			}
		}
		if s.Service == "" {
			fail("service", "required")
		}
		switch {
		case math.IsNaN(s.Objective) || s.Objective <= 0 || s.Objective > 100:
			fail("objective", "must be a percentage above 0 and at most 100, got %v", s.Objective)
		case s.Objective == 100:
			warn("objective", "100%% leaves no error budget: the first failed request exhausts it and freezes releases")
		}
		switch {
		case s.Window != 0 && s.Calendar != NoCalendar:
			fail("window", "set either window or calendar, not both")
		case s.Window == 0 && s.Calendar == NoCalendar:
			fail("window", "required (e.g. 30d), or set calendar: month|week")
		case s.Window != 0 && (s.Window.Std() < time.Hour || s.Window.Std()%time.Minute != 0):
			fail("window", "must be a whole number of minutes and at least 1h, got %s", s.Window)
		case s.Window.Std() > 400*24*time.Hour:
			fail("window", "must be at most 400d, got %s", s.Window)
		}
		if s.TimeZone != "" {
			if s.Calendar == NoCalendar {
				fail("time_zone", "only applies to a calendar window")
			} else if _, err := time.LoadLocation(s.TimeZone); err != nil {
				fail("time_zone", "unknown time zone %q", s.TimeZone)
			}
		}
		if s.CalendarStart != "" {
			if s.Calendar == NoCalendar {
				fail("calendar_start", "only applies to a calendar window")
			} else if _, err := time.Parse(CalendarStartLayout, s.CalendarStart); err != nil {
				fail("calendar_start", "want %q (in time_zone), got %q", CalendarStartLayout, s.CalendarStart)
			}
		}
		switch s.SLI.Kind {
		case Availability:
			if s.SLI.Threshold != 0 {
				fail("sli.threshold", "only applies to kind latency")
			}
		case Latency:
			if s.SLI.Threshold <= 0 {
				fail("sli.threshold", "required for kind latency (e.g. 300ms)")
			}
			if s.SLI.ClientErrorsBad {
				fail("sli.client_errors_bad", "only applies to kind availability")
			}
		default:
			fail("sli.kind", "required: availability or latency")
		}
		for k := range s.SLI.Filter {
			if k == "" {
				fail("sli.filter", "empty attribute key")
			}
		}
		if s.SLI.MaxGroups < 0 {
			fail("sli.max_groups", "must not be negative, got %d", s.SLI.MaxGroups)
		}
		if s.SLI.MaxGroups != 0 && s.SLI.GroupBy == "" {
			fail("sli.max_groups", "only applies with group_by")
		}
		if s.SLI.MaxGroups > 1000 {
			warn("sli.max_groups", "%d groups of minute buckets need a lot of memory; consider fewer", s.SLI.MaxGroups)
		}
		if s.Budgeting != Occurrences {
			w := s.TimeSlice.Window.Std()
			if w != 0 && (w < time.Minute || w%time.Minute != 0 || w > 24*time.Hour) {
				fail("time_slice.window", "must be a whole number of minutes between 1m and 1d, got %s", s.TimeSlice.Window)
			}
			if s.Budgeting == Timeslices && (s.TimeSlice.Target <= 0 || s.TimeSlice.Target > 100) {
				fail("time_slice.target", "must be a percentage above 0 and at most 100 for timeslices, got %v", s.TimeSlice.Target)
			}
		} else if s.TimeSlice != (TimeSliceSpec{}) {
			fail("time_slice", "only applies to the timeslices and ratio_timeslices budgeting methods")
		}
		validateAlerting(s, fail, warn)
		for j, c := range s.Corrections {
			p := fmt.Sprintf("corrections[%d]", j)
			if _, err := c.correction(s.Name); err != nil {
				for _, e := range unjoin(err) {
					field, msg, ok := strings.Cut(e.Error(), ": ")
					if !ok {
						field, msg = "", e.Error()
					}
					fail(strings.TrimSuffix(p+"."+field, "."), "%s", msg)
				}
			}
		}
	}
	return warnings, errors.Join(errs...)
}

func validateAlerting(s *Spec, fail, warn func(path, format string, args ...any)) {
	a := &s.Alerting
	if a.MinCoverage != nil && (*a.MinCoverage < 0 || *a.MinCoverage > 1 || math.IsNaN(*a.MinCoverage)) {
		fail("alerting.min_coverage", "must be a fraction between 0 and 1, got %v", *a.MinCoverage)
	}
	names := map[string]bool{}
	for j, t := range a.Tiers {
		p := fmt.Sprintf("alerting.tiers[%d]", j)
		if t.Name == "" {
			fail(p+".name", "required")
		} else if names[t.Name] {
			fail(p+".name", "duplicate tier %q", t.Name)
		}
		names[t.Name] = true
		if t.Severity == SeverityNone {
			fail(p+".severity", "required: page or ticket")
		}
		if !(t.BurnRate > 0) || math.IsInf(t.BurnRate, 0) {
			fail(p+".burn_rate", "must be above 0, got %v", t.BurnRate)
		}
		if t.LongWindow.Std() < time.Minute {
			fail(p+".long_window", "must be at least 1m, got %s", t.LongWindow)
		}
		if t.ShortWindow.Std() < time.Minute || t.ShortWindow > t.LongWindow {
			fail(p+".short_window", "must be at least 1m and at most the long window, got %s", t.ShortWindow)
		}
		if t.For < 0 || (t.KeepFiringFor != nil && *t.KeepFiringFor < 0) {
			fail(p, "for and keep_firing_for must not be negative")
		}
	}
	if len(a.Tiers) == 0 {
		for _, t := range defaultTiers() {
			names[t.Name] = true
		}
	}
	for j, n := range a.DisableTiers {
		if !names[n] {
			fail(fmt.Sprintf("alerting.disable_tiers[%d]", j), "no tier named %q", n)
		}
	}
	if b := a.BudgetLow; b != nil && (b.Enabled == nil || *b.Enabled) && (b.Below <= 0 || b.Below >= 100) {
		fail("alerting.budget_low.below", "must be a percentage between 0 and 100, got %v", b.Below)
	}
	if n := a.NoData; n != nil && n.For.Std() < time.Minute {
		fail("alerting.no_data.for", "must be at least 1m, got %s", n.For)
	}
	// A page tier that 100% errors cannot reach never fires.
	if s.Objective > 0 && s.Objective < 100 && !a.Disabled {
		maxBurn := 1 / (1 - s.Objective/100)
		tiers := a.Tiers
		if len(tiers) == 0 {
			tiers = defaultTiers()
		}
		for _, t := range tiers {
			if slices.Contains(a.DisableTiers, t.Name) || t.BurnRate <= 0 {
				continue
			}
			if t.BurnRate > maxBurn*(1+1e-12) {
				warn("objective", "with an objective of %v%% the highest possible burn rate is %.4g, so tier %s (burn rate %v) can never fire", s.Objective, maxBurn, t.Name, t.BurnRate)
			}
		}
	}
}
