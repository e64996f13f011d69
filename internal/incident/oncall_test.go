package incident

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestOncallReport(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 11, day, hh, mm, 0, 0, berlin) }
	cfg := OncallConfig{TimeZone: "Europe/Berlin", WorkingHours: "09:00-18:00 Mon-Fri",
		Rotations: []Rotation{{Name: "payments-primary", Services: []string{"payments", "checkout"}, Shift: units.Duration(12 * time.Hour)}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// 2026-11-30 is a Monday; the period is that whole week in Berlin.
	from, to := at(30, 0, 0), at(30, 0, 0).AddDate(0, 0, 7)
	pages := []Page{
		{Service: "payments", At: at(30, 10, 0)},                                                    // Mon, in hours
		{Service: "payments", At: at(30, 23, 30)},                                                   // Mon night
		{Service: "payments", At: at(30, 0, 0).AddDate(0, 0, 5).Add(11 * time.Hour)},                // Sat
		{Service: "checkout", At: at(30, 0, 0).AddDate(0, 0, 1).Add(17*time.Hour + 59*time.Minute)}, // Tue 17:59, in
		{Service: "checkout", At: at(30, 0, 0).AddDate(0, 0, 1).Add(18 * time.Hour)},                // Tue 18:00, out
		{Service: "frontend", At: at(30, 0, 0).AddDate(0, 0, 2).Add(10 * time.Hour)},                // not the rotation's
		{Service: "payments", At: at(29, 12, 0)},                                                    // before the period
	}
	ptr := func(t time.Time) *time.Time { return &t }
	sat := at(30, 0, 0).AddDate(0, 0, 5)
	incidents := []Incident{
		{ID: "A", Services: []string{"payments"}, DeclaredAt: at(30, 10, 0), ResolvedAt: ptr(at(30, 13, 0))},
		{ID: "B", Services: []string{"checkout"}, DeclaredAt: at(30, 12, 0), ResolvedAt: ptr(at(30, 14, 0))},
		{ID: "C", Services: []string{"frontend"}, DeclaredAt: at(30, 12, 0), ResolvedAt: ptr(at(30, 20, 0))},
		{ID: "D", Services: []string{"payments"}, DeclaredAt: sat.Add(11 * time.Hour), ResolvedAt: ptr(sat.Add(11*time.Hour + 30*time.Minute))},
	}
	rep, err := BuildOncallReport(cfg, pages, incidents, from, to)
	if err != nil {
		t.Fatal(err)
	}
	// By hand: 5 of the rotation's pages in the week, 3 outside Mon-Fri
	// 09:00-18:00 Berlin; 14 shifts of 12h; incidents A, B, D (C is
	// frontend's): A and B overlap 10:00-14:00 = 4h, D 0.5h, so 4.5h;
	// 45 working hours (5 x 9h): toil 10%.
	l := rep.Rotations[0]
	if l.Pages != 5 || l.PagesOffHours != 3 || l.PagesPerWeek != 5 || l.Shifts != 14 || l.Incidents != 3 {
		t.Errorf("load %+v: want 5 pages, 3 off hours, 5 a week, 14 shifts, 3 incidents", l)
	}
	if math.Abs(l.IncidentsPerShift-3.0/14) > 1e-12 || l.IncidentHours != 4.5 || math.Abs(l.ToilShare-0.1) > 1e-12 || l.Overloaded {
		t.Errorf("load %+v: want 3/14 incidents a shift, 4.5h, toil 10%%, not overloaded", l)
	}
	if rep.PagesBy["payments"] != 3 || rep.PagesBy["checkout"] != 2 || rep.PagesBy["frontend"] != 1 {
		t.Errorf("pages by service %v", rep.PagesBy)
	}

	// One 12h shift, Mon 09:00-21:00, with three checkout incidents:
	// 09:00-12:00, 13:00-16:00, 16:30-18:30 = 8h of the shift's 9 working
	// hours (89%), and 3 incidents in 1 shift.
	busy := []Incident{
		{Services: []string{"checkout"}, DeclaredAt: at(30, 9, 0), ResolvedAt: ptr(at(30, 12, 0))},
		{Services: []string{"checkout"}, DeclaredAt: at(30, 13, 0), ResolvedAt: ptr(at(30, 16, 0))},
		{Services: []string{"checkout"}, DeclaredAt: at(30, 16, 30), ResolvedAt: ptr(at(30, 18, 30))},
	}
	rep, err = BuildOncallReport(cfg, nil, busy, at(30, 9, 0), at(30, 21, 0))
	if err != nil {
		t.Fatal(err)
	}
	l = rep.Rotations[0]
	if l.Shifts != 1 || l.IncidentsPerShift != 3 || l.IncidentHours != 8 || math.Abs(l.ToilShare-8.0/9) > 1e-12 || !l.Overloaded {
		t.Fatalf("busy shift %+v: want 3 incidents in 1 shift, 8h, toil 8/9, overloaded", l)
	}
	if len(l.Reasons) != 2 || !strings.Contains(l.Reasons[0], "3.0 incidents per 12h shift, above the SRE book's 2") ||
		!strings.Contains(l.Reasons[1], "an estimated 89% of working time in incidents, above 50%") {
		t.Errorf("reasons %q", l.Reasons)
	}
	if !strings.HasPrefix(l.Recommendation, "stability sprint: freeze feature releases of payments, checkout") {
		t.Errorf("recommendation %q", l.Recommendation)
	}
}

func TestWorkingHoursParse(t *testing.T) {
	for _, bad := range []string{"9-5", "18:00-09:00 Mon-Fri", "09:00-18:00 Mon-Funday", "09:00-18:00"} {
		if _, err := parseWorkingHours(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	wh, err := parseWorkingHours("08:00-12:00 Sat,Sun")
	if err != nil {
		t.Fatal(err)
	}
	sat := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	if !wh.in(sat) || wh.in(sat.Add(4*time.Hour)) || wh.in(sat.AddDate(0, 0, 2)) {
		t.Errorf("Sat,Sun 08:00-12:00: in(Sat 08:00)=%v in(Sat 12:00)=%v in(Mon 08:00)=%v", wh.in(sat), wh.in(sat.Add(4*time.Hour)), wh.in(sat.AddDate(0, 0, 2)))
	}
	if wh, _ := parseWorkingHours("09:00-17:00 Fri-Mon"); !wh.days[5] || !wh.days[6] || !wh.days[0] || !wh.days[1] || wh.days[3] {
		t.Errorf("Fri-Mon wraps the week: %v", wh.days)
	}
}
