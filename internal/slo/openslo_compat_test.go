package slo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenSLOAsTheSpecWritesIt reads documents in the style of the OpenSLO
// spec and its repository's examples: a numeric timeSliceWindow (minutes),
// op and value on a ratio objective (ignored, with a warning), and a
// calendar window with a startTime, which anchors its months.
func TestOpenSLOAsTheSpecWritesIt(t *testing.T) {
	doc := `apiVersion: openslo/v1
kind: SLO
metadata:
  name: web-availability
spec:
  service: web
  indicator:
    metadata: {name: web-good}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: tailgate, spec: {kind: availability}}}
        total: {metricSource: {type: tailgate, spec: {}}}
  timeWindow:
    - duration: 1M
      isRolling: false
      calendar:
        startTime: "2022-01-01 12:00:00"
        timeZone: America/New_York
  budgetingMethod: Timeslices
  objectives:
    - displayName: Good
      op: gt
      value: 1
      target: 0.995
      timeSliceTarget: 0.95
      timeSliceWindow: 5
`
	path := filepath.Join(t.TempDir(), "openslo.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	specs, warns, err := LoadFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 1 {
		t.Fatalf("%d specs", len(specs))
	}
	s := specs[0]
	if s.TimeSlice.Window.Std() != 5*time.Minute || s.TimeSlice.Target != 95 || s.Objective != 99.5 || s.Calendar != Month || s.TimeZone != "America/New_York" {
		t.Errorf("spec %+v: want 5m slices at 95%%, 99.5%%, a month in New York", s)
	}
	if s.CalendarStart != "2022-01-01 12:00:00" {
		t.Errorf("calendar start %q, want the startTime", s.CalendarStart)
	}
	var msgs []string
	for _, w := range warns {
		msgs = append(msgs, w.Source+": "+w.Msg)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"openslo.yaml:22: op and value apply to a thresholdMetric only; ignored on this ratio objective",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	for _, bad := range []string{"0", "2.5", "\"soon\""} {
		d := strings.Replace(doc, "timeSliceWindow: 5", "timeSliceWindow: "+bad, 1)
		os.WriteFile(path, []byte(d), 0o600)
		if _, _, err := LoadFiles(path); err == nil || !strings.Contains(err.Error(), "timeSliceWindow") {
			t.Errorf("timeSliceWindow %s: %v, want an error naming it", bad, err)
		}
	}
	d := strings.Replace(doc, "timeSliceWindow: 5", "timeSliceWindow: 2m", 1)
	os.WriteFile(path, []byte(d), 0o600)
	if specs, _, err := LoadFiles(path); err != nil || specs[0].TimeSlice.Window.Std() != 2*time.Minute {
		t.Errorf("timeSliceWindow 2m: %v", err)
	}
}
