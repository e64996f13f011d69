package slo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tailgate-sre/tailgate/internal/units"
)

func validSpec() Spec {
	return Spec{Name: "s", Service: "svc", Objective: 99.9, Window: units.Duration(30 * 24 * time.Hour), SLI: SLISpec{Kind: Availability}}
}

func TestValidateSpecs(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Spec)
		errs  []string
		warns []string
	}{
		{"valid", func(*Spec) {}, nil, nil},
		{"no name", func(s *Spec) { s.Name = "" }, []string{"slos[0].name: required"}, nil},
		{"bad name", func(s *Spec) { s.Name = "a b" }, []string{"slos[0].name: \"a b\" must start"}, nil},
		{"objective high", func(s *Spec) { s.Objective = 120 }, []string{"slos[0].objective: must be a percentage above 0 and at most 100, got 120"}, nil},
		{"objective zero", func(s *Spec) { s.Objective = 0 }, []string{"slos[0].objective: must be"}, nil},
		{"objective 100", func(s *Spec) { s.Objective = 100 }, nil, []string{"slos[0].objective: SLO \"s\": 100% leaves no error budget"}},
		{"objective too low to page", func(s *Spec) { s.Objective = 90 }, nil, []string{
			"highest possible burn rate is 10, so tier page-1h (burn rate 14.4) can never fire"}},
		{"no window", func(s *Spec) { s.Window = 0 }, []string{"slos[0].window: required"}, nil},
		{"both windows", func(s *Spec) { s.Calendar = Month }, []string{"slos[0].window: set either window or calendar"}, nil},
		{"short window", func(s *Spec) { s.Window = units.Duration(30 * time.Minute) }, []string{"at least 1h"}, nil},
		{"zone without calendar", func(s *Spec) { s.TimeZone = "UTC" }, []string{"slos[0].time_zone: only applies to a calendar window"}, nil},
		{"bad zone", func(s *Spec) { s.Window = 0; s.Calendar = Month; s.TimeZone = "Nowhere/City" }, []string{"slos[0].time_zone: unknown time zone"}, nil},
		{"latency without threshold", func(s *Spec) { s.SLI.Kind = Latency }, []string{"slos[0].sli.threshold: required"}, nil},
		{"threshold on availability", func(s *Spec) { s.SLI.Threshold = units.Duration(time.Second) }, []string{"slos[0].sli.threshold: only applies"}, nil},
		{"no kind", func(s *Spec) { s.SLI.Kind = 0 }, []string{"slos[0].sli.kind: required"}, nil},
		{"max groups without group_by", func(s *Spec) { s.SLI.MaxGroups = 3 }, []string{"slos[0].sli.max_groups: only applies with group_by"}, nil},
		{"slice target", func(s *Spec) { s.Budgeting = Timeslices }, []string{"slos[0].time_slice.target"}, nil},
		{"slice on occurrences", func(s *Spec) { s.TimeSlice.Window = units.Duration(time.Minute) }, []string{"slos[0].time_slice: only applies"}, nil},
		{"tier", func(s *Spec) { s.Alerting.Tiers = []TierSpec{{Name: "x", BurnRate: -1}} }, []string{
			"slos[0].alerting.tiers[0].severity: required", "slos[0].alerting.tiers[0].burn_rate: must be above 0",
			"slos[0].alerting.tiers[0].long_window: must be at least 1m", "slos[0].alerting.tiers[0].short_window: must be"}, nil},
		{"disable unknown tier", func(s *Spec) { s.Alerting.DisableTiers = []string{"page-2h"} }, []string{"slos[0].alerting.disable_tiers[0]: no tier named \"page-2h\""}, nil},
		{"coverage", func(s *Spec) { v := 1.5; s.Alerting.MinCoverage = &v }, []string{"slos[0].alerting.min_coverage"}, nil},
		{"budget low", func(s *Spec) { s.Alerting.BudgetLow = &BudgetAlertSpec{Below: 120} }, []string{"slos[0].alerting.budget_low.below"}, nil},
		{"correction", func(s *Spec) { s.Corrections = []CorrectionSpec{{Reason: "x"}} }, []string{"slos[0].corrections[0].start: required", "slos[0].corrections[0].end: required"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.edit(&s)
			warns, err := ValidateSpecs([]Spec{s})
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tt.errs) {
				t.Fatalf("errors = %q, want %d matching %q", got, len(tt.errs), tt.errs)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.errs[i]) && !strings.Contains(got[i], tt.errs[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], tt.errs[i])
				}
			}
			if len(warns) != len(tt.warns) {
				t.Fatalf("warnings = %v, want %d", warns, len(tt.warns))
			}
			for i, w := range warns {
				if !strings.Contains(w.String(), tt.warns[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, w.String(), tt.warns[i])
				}
			}
		})
	}
}

func TestValidateSpecsDuplicateNames(t *testing.T) {
	a, b := validSpec(), validSpec()
	_, err := ValidateSpecs([]Spec{a, b})
	if err == nil || err.Error() != `slos[1].name: "s" is already the name of slos[0]` {
		t.Errorf("err = %v", err)
	}
}

func TestLoadExamples(t *testing.T) {
	specs, warns, err := LoadFiles("../../examples/slos")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warns {
		t.Logf("warning: %s", w)
	}
	byName := map[string]Spec{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	ignore := cmpopts.IgnoreFields(Spec{}, "Source", "Description", "Labels", "Corrections", "Alerting")
	want := map[string]Spec{
		"cart-availability": {Name: "cart-availability", Service: "cart", Objective: 99.9, Window: units.Duration(30 * 24 * time.Hour),
			SLI: SLISpec{Kind: Availability, Filter: map[string]string{"http.route": "/api/cart"}}},
		"cart-latency": {Name: "cart-latency", Service: "cart", Objective: 99, Calendar: Month, TimeZone: "America/New_York", CalendarStart: "2025-01-01 00:00:00",
			Budgeting: RatioTimeslices, TimeSlice: TimeSliceSpec{Window: units.Duration(time.Minute)},
			SLI: SLISpec{Kind: Latency, Threshold: units.Duration(250 * time.Millisecond), Filter: map[string]string{"http.route": "/api/cart"}}},
		"checkout-latency": {Name: "checkout-latency", Service: "checkout", Objective: 99, Window: units.Duration(28 * 24 * time.Hour),
			SLI: SLISpec{Kind: Latency, Threshold: units.Duration(300 * time.Millisecond), Filter: map[string]string{"http.route": "/api/checkout"}}},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, byName[name], ignore); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if len(specs) != 7 {
		t.Errorf("loaded %d specs, want 7", len(specs))
	}
	if src := byName["checkout-latency"].Source; !strings.HasSuffix(src, "checkout.yaml:14") {
		t.Errorf("checkout-latency source = %q, want checkout.yaml:14", src)
	}
	if _, err := NewEngine(specs, Settings{}); err != nil {
		t.Errorf("NewEngine(examples): %v", err)
	}
}

func TestLoadFilesErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown key", "slos:\n  - name: a\n    service: s\n    objective: 99\n    windw: 30d\n", []string{"x.yaml:5:5: unknown field \"windw\""}},
		{"bad duration", "slos:\n  - name: a\n    service: s\n    objective: 99\n    window: 30x\n    sli: {kind: availability}\n", []string{"x.yaml:5:13: ", "invalid duration \"30x\""}},
		{"validation with line", "- name: a\n  service: s\n  objective: 99\n  window: 30d\n  sli: {kind: availability}\n- name: b\n  service: s\n  objective: 101\n  window: 30d\n  sli: {kind: latency}\n",
			[]string{"x.yaml:8: slo \"b\": objective: must be", "x.yaml:10: slo \"b\": sli.threshold: required"}},
		{"single spec", "name: a\nservice: s\nobjective: 99\nwindow: 1d\nsli:\n  kind: availability\n  threshold: 1s\n", []string{"x.yaml:7: slo \"a\": sli.threshold: only applies"}},
		{"syntax", "slos: [\n", []string{"x.yaml:"}},
		{"not slos", "foo: bar\n", []string{"x.yaml:1: neither an SLO list"}},
		{"openslo version", "apiVersion: openslo/v2alpha\nkind: SLO\n", []string{"x.yaml:1: apiVersion \"openslo/v2alpha\" is not supported"}},
		{"openslo source type", `apiVersion: openslo/v1
kind: SLO
metadata: {name: o}
spec:
  service: s
  indicator:
    metadata: {name: i}
    spec:
      thresholdMetric:
        metricSource: {type: Prometheus, spec: {query: x}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{op: lte, value: 100, target: 0.99}]
`, []string{"x.yaml:9: SLO \"o\": spec.indicator.spec.thresholdMetric: metricSource type \"Prometheus\" is not supported"}},
		{"openslo objective", `apiVersion: openslo/v1
kind: SLO
metadata: {name: o}
spec:
  service: s
  indicatorRef: missing
  timeWindow: [{duration: 30d, isRolling: true}]
  objectives: [{target: 0.99}]
`, []string{"x.yaml:6: SLO \"o\": spec.indicatorRef: no kind: SLI document named \"missing\""}},
		{"openslo unknown key", `apiVersion: openslo/v1
kind: SLO
metadata: {name: o}
spec:
  service: s
  budgetMethod: Occurrences
`, []string{"x.yaml:6:3: unknown field \"budgetMethod\""}},
		{"openslo target range", `apiVersion: openslo/v1
kind: SLO
metadata: {name: o}
spec:
  service: s
  indicator:
    spec:
      ratioMetric:
        good: {metricSource: {type: tailgate, spec: {kind: availability}}}
        total: {metricSource: {type: tailgate}}
  timeWindow: [{duration: 30d, isRolling: true}]
  objectives:
    - target: 1.2
`, []string{"x.yaml:13: slo \"o\": objective: must be a percentage"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "x.yaml")
			if err := os.WriteFile(f, []byte(tt.src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadFiles(f)
			if err == nil {
				t.Fatalf("LoadFiles = nil error, want %q", tt.want)
			}
			msg := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\nwant it to contain %q", msg, w)
				}
			}
		})
	}
}
