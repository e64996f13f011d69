package demo

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/trace"
)

func id(n byte) trace.TraceID { return trace.TraceID{15: n} }

func req(c Class) *Request {
	return &Request{Root: &Span{Children: []*Span{{}}}, Class: c}
}

func TestRecorder(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sched := Schedule{Calm: 10 * time.Second, Failure: 10 * time.Second, Recovery: 10 * time.Second}
	r := newRecorder(start, sched)
	b := func(v float64) *float64 { return &v }
	page := apiTransition{SLO: "checkout-availability", Alert: "page-1h", Severity: "page", From: "inactive", To: "firing",
		At: start.Add(12 * time.Second), Values: alertValues{Threshold: 14.4, LongWindow: "1m", ShortWindow: "1m", BurnRateLong: b(20), BurnRateShort: b(20)}}
	ticket := apiTransition{SLO: "checkout-availability", Alert: "ticket-1d", Severity: "ticket", From: "inactive", To: "firing", At: start.Add(13 * time.Second)}
	resolved := apiTransition{SLO: "checkout-availability", Alert: "page-1h", Severity: "page", From: "firing", To: "resolved", At: start.Add(25 * time.Second)}
	allow := &apiDecision{Decision: "allow", PolicyRule: "within-budget", Reasons: []string{"fine"}}
	deny := &apiDecision{Decision: "deny", PolicyRule: "page-burn-alert", Reasons: []string{"a page fires"}}

	var texts []string
	add := func(evs []event) {
		for _, e := range evs {
			texts = append(texts, clock(e.At)+" "+e.Text)
		}
	}
	add(r.observe(snapshot{At: start.Add(time.Second), Gate: allow}, Calm))
	add(r.observe(snapshot{At: start.Add(2 * time.Second), Gate: allow}, Calm))
	// Transitions come newest first, and again at every poll.
	add(r.observe(snapshot{At: start.Add(14 * time.Second), Gate: deny, Transitions: []apiTransition{ticket, page}}, Failure))
	add(r.observe(snapshot{At: start.Add(16 * time.Second), Gate: deny, Transitions: []apiTransition{ticket, page}}, Failure))
	add(r.observe(snapshot{At: start.Add(26 * time.Second), Gate: deny, Transitions: []apiTransition{resolved, ticket, page}}, Recovery))

	want := []string{
		"0:01 GATE checkout feature: ALLOW (within-budget): fine",
		"0:12 ALERT page-1h FIRING on checkout-availability (page): burn 20.0x over 1m (threshold 14.4x)",
		"0:14 GATE checkout feature: DENY (page-burn-alert): a page fires",
		"0:25 alert page-1h resolved on checkout-availability",
	}
	if diff := cmp.Diff(want, texts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if len(r.alerts) != 2 {
		t.Fatalf("%d alerts recorded, want the page and the ticket", len(r.alerts))
	}
	if a := r.alerts[0]; a.Alert != "page-1h" || a.Phase != Failure || a.FiredAt != 12*time.Second || !a.Resolved || a.ResolvedAt != 25*time.Second {
		t.Errorf("page record %+v", *a)
	}
	wantGate := [Done + 1]map[string]int{
		Calm:     {"allow (within-budget)": 2},
		Failure:  {"deny (page-burn-alert)": 2},
		Recovery: {"deny (page-burn-alert)": 1},
		Done:     {},
	}
	if diff := cmp.Diff(wantGate, r.gate); diff != "" {
		t.Errorf("gate counts (-want +got):\n%s", diff)
	}
}

// TestRecorderFlips follows the demo flag through the snapshots: the first
// look sets the baseline, a forced variant by the kill switch is a flip,
// the return to the targeting is its restore.
func TestRecorderFlips(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := newRecorder(start, Schedule{Calm: 10 * time.Second, Failure: 10 * time.Second, Recovery: 30 * time.Second})
	on := &apiFlag{Value: true, Variant: "enabled"}
	off := &apiFlag{Value: false, Variant: "disabled", Metadata: map[string]any{"forced_by": "kill_switch"}, Why: "kill switch: page"}
	var texts []string
	for _, step := range []struct {
		at   time.Duration
		flag *apiFlag
		p    Phase
	}{{1, on, Calm}, {13, on, Failure}, {15, off, Failure}, {16, off, Failure}, {20, nil, Recovery}, {40, on, Recovery}} {
		for _, e := range r.observe(snapshot{At: start.Add(step.at * time.Second), Flag: step.flag}, step.p) {
			texts = append(texts, clock(e.At)+" "+e.Text)
		}
	}
	want := []string{
		"0:15 KILL SWITCH flag recommendations -> disabled (kill switch: page)",
		"0:40 kill switch restored flag recommendations -> enabled",
	}
	if diff := cmp.Diff(want, texts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if len(r.flips) != 1 {
		t.Fatalf("flips %d, want 1", len(r.flips))
	}
	if f := r.flips[0]; f.At != 15*time.Second || f.Phase != Failure || !f.Restored || f.RestoredAt != 40*time.Second || f.Reason != "kill switch: page" {
		t.Errorf("flip %+v", *f)
	}
}

func writeExport(t *testing.T, path string, traces map[trace.TraceID]string) {
	t.Helper()
	var buf bytes.Buffer
	var m ptrace.JSONMarshaler
	for tid, rule := range traces {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "checkout")
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for i := range 2 { // two spans per trace: counted once
			sp := spans.AppendEmpty()
			sp.SetTraceID(pcommon.TraceID(tid))
			sp.SetSpanID(pcommon.SpanID{7: byte(i + 1)})
			sp.Attributes().PutStr("sampling.rule", rule)
		}
		b, err := m.MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTallyAgainstTheExportFile(t *testing.T) {
	l := NewLedger()
	// 4 error traces (3 kept), 40 OK traces (2 kept), 1 slow trace (kept).
	for i := range 4 {
		l.Add(id(byte(i)), Failure, req(Error))
	}
	for i := range 40 {
		l.Add(id(byte(100+i)), Calm, req(OK))
	}
	l.Add(id(200), Recovery, req(Slow))
	path := filepath.Join(t.TempDir(), ExportFile)
	writeExport(t, path, map[trace.TraceID]string{
		id(0): "errors", id(1): "errors", id(2): "errors",
		id(100): "rest", id(101): "rest",
		id(200): "slow",
		id(250): "rest", // not sent by the demo
	})
	kept, err := keptTraces(path)
	if err != nil {
		t.Fatal(err)
	}
	var s Summary
	s.tally(l, kept)
	if diff := cmp.Diff([numClasses]int{OK: 40, Slow: 1, Error: 4}, s.Sent); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([numClasses]int{OK: 2, Slow: 1, Error: 3}, s.Kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"errors": 3, "rest": 3, "slow": 1}, s.KeptByRule); diff != "" {
		t.Errorf("by rule (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{id(3).String()}, s.MissedErrors); diff != "" {
		t.Errorf("missed (-want +got):\n%s", diff)
	}
	if s.Unknown != 1 || s.SpansSent != 90 {
		t.Errorf("unknown %d, spans sent %d; want 1 and 90", s.Unknown, s.SpansSent)
	}
}

func TestKeptTracesWithoutFile(t *testing.T) {
	kept, err := keptTraces(filepath.Join(t.TempDir(), "absent.jsonl"))
	if err != nil || len(kept) != 0 {
		t.Errorf("got %v, %v; want nothing kept and no error", kept, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte("{not json\n"), 0o644)
	if _, err := keptTraces(bad); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad file: err %v, want one naming line 1", err)
	}
}

func TestChecks(t *testing.T) {
	good := func() Summary {
		return Summary{
			Sent:   [numClasses]int{OK: 2000, Error: 100},
			Kept:   [numClasses]int{OK: 100, Error: 100},
			Alerts: []AlertRecord{{SLO: "checkout-availability", Alert: "page-1h", Severity: "page", Phase: Failure}},
			Gate:   [Done + 1]map[string]int{Failure: {"deny (page-burn-alert)": 3, "allow (within-budget)": 1}},
			Flips:  []FlipRecord{{At: 20 * time.Second, Phase: Failure, Variant: "disabled"}},
			Incidents: []IncidentRecord{{ID: "INC-1", Source: "page", Phase: Failure,
				Impacts: []apiImpact{{SLO: "checkout-availability", Failed: 120, BudgetConsumed: 3}}}},
			Canary: &CanaryRecord{Version: "2.4.1", Baseline: "2.3.1", Verdict: "fail", RolledBack: true,
				Gate: &GateAnswer{Decision: "deny", Rule: "canary-failed"}},
		}
	}
	const canaryCheck = "tailgate failed the payments canary, which was rolled back, and the gate denies its version"
	// 4 sigma of a binomial share at 5% over 2000 traces: 4*sqrt(.05*.95/2000) = 1.95 points.
	tests := []struct {
		name   string
		change func(*Summary)
		failed []string
	}{
		{"all shown", func(*Summary) {}, nil},
		{"an error trace lost", func(s *Summary) { s.Kept[Error] = 99 }, []string{"error traces kept 100%"}},
		{"no error traces at all", func(s *Summary) { s.Sent[Error], s.Kept[Error] = 0, 0 }, []string{"error traces kept 100%"}},
		{"OK share just within it", func(s *Summary) { s.Kept[OK] = 138 }, nil},
		{"OK share over it", func(s *Summary) { s.Kept[OK] = 141 }, []string{"OK traces kept about 5%"}},
		{"OK share under it", func(s *Summary) { s.Kept[OK] = 59 }, []string{"OK traces kept about 5%"}},
		{"page only in the recovery", func(s *Summary) { s.Alerts[0].Phase = Recovery }, []string{"a page alert fired during the failure"}},
		{"a ticket is no page", func(s *Summary) { s.Alerts[0].Severity = "ticket" }, []string{"a page alert fired during the failure"}},
		{"no denial in the failure", func(s *Summary) {
			s.Gate[Failure] = map[string]int{"allow (within-budget)": 4}
			s.Gate[Recovery] = map[string]int{"deny (budget-exhausted)": 4}
		}, []string{"the gate denied a feature during the failure"}},
		{"no kill switch flip", func(s *Summary) { s.Flips = nil }, []string{"the kill switch turned recommendations off on the page"}},
		{"a flip only in the calm", func(s *Summary) { s.Flips[0].Phase = Calm }, []string{"the kill switch turned recommendations off on the page"}},
		{"a flip just after the failure", func(s *Summary) { s.Flips[0].Phase = Recovery }, nil},
		{"no incident", func(s *Summary) { s.Incidents = nil }, []string{"the page opened an incident, whose post-mortem counts the failed requests"}},
		{"a declared incident only", func(s *Summary) { s.Incidents[0].Source = "manual" }, []string{"the page opened an incident, whose post-mortem counts the failed requests"}},
		{"no failed request counted", func(s *Summary) { s.Incidents[0].Impacts[0].Failed = 0 }, []string{"the page opened an incident, whose post-mortem counts the failed requests"}},
		{"no canary", func(s *Summary) { s.Canary = nil }, []string{canaryCheck}},
		{"canary still inconclusive", func(s *Summary) { s.Canary.Verdict, s.Canary.RolledBack, s.Canary.Gate = "inconclusive", false, nil }, []string{canaryCheck}},
		{"canary passed", func(s *Summary) { s.Canary.Verdict = "pass" }, []string{canaryCheck}},
		{"gate allows the failed version", func(s *Summary) { s.Canary.Gate = &GateAnswer{Decision: "allow", Rule: "within-budget"} }, []string{canaryCheck}},
		{"gate denies for another reason", func(s *Summary) { s.Canary.Gate.Rule = "budget-exhausted" }, []string{canaryCheck}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.change(&s)
			var failed []string
			for _, c := range s.Checks() {
				if !c.OK {
					failed = append(failed, c.Name)
				}
			}
			if diff := cmp.Diff(tt.failed, failed); diff != "" {
				t.Errorf("failed checks (-want +got):\n%s", diff)
			}
			if s.Passed() != (len(tt.failed) == 0) {
				t.Errorf("Passed() = %v", s.Passed())
			}
		})
	}
}

func TestSummaryText(t *testing.T) {
	s := Summary{
		Schedule: Schedule{Calm: 15 * time.Second, Failure: 20 * time.Second, Recovery: 55 * time.Second},
		RPS:      40, Ran: 90 * time.Second,
		Sent:       [numClasses]int{OK: 3200, Error: 400},
		Kept:       [numClasses]int{OK: 160, Error: 400},
		SpansSent:  22000,
		KeptByRule: map[string]int{"errors": 400, "rest": 160},
		Spans:      Counters{In: 22000, Kept: 3000, Dropped: 19000},
		Alerts: []AlertRecord{
			{SLO: "checkout-availability", Alert: "page-1h", Severity: "page", FiredAt: 19 * time.Second, Phase: Failure, Resolved: true, ResolvedAt: 80 * time.Second},
			{SLO: "checkout-availability", Alert: "budget-exhausted", Severity: "ticket", FiredAt: 16 * time.Second, Phase: Failure},
		},
		Gate: [Done + 1]map[string]int{
			Calm:     {"allow (within-budget)": 7},
			Failure:  {"deny (page-burn-alert)": 9, "allow (within-budget)": 1},
			Recovery: {"deny (budget-exhausted)": 20, "allow (override)": 8},
		},
		Flips: []FlipRecord{{At: 21 * time.Second, Phase: Failure, Variant: "disabled", Restored: true, RestoredAt: 101 * time.Second}},
		Incidents: []IncidentRecord{{ID: "INC-1", Source: "page", Phase: Failure, DeclaredAt: 19 * time.Second, Origin: "payments",
			Services: []string{"checkout", "frontend"}, Impacts: []apiImpact{{SLO: "checkout-availability", Failed: 1234, BudgetConsumed: 2.5, NeedsReview: true}}}},
		Canary: &CanaryRecord{Version: "2.4.1", Baseline: "2.3.1", Steps: []float64{0.01, 0.10}, Share: 0.10, Started: 45 * time.Second, Decided: 61 * time.Second,
			Verdict: "fail", Rule: "error_ratio", Reason: "canary errors 19.6% vs baseline 0.0%", Requests: 56, Errors: 11, RolledBack: true,
			Gate: &GateAnswer{Decision: "deny", Rule: "canary-failed", Reason: "version 2.4.1 failed as a canary: error ratio"}},
		DashboardURL: "http://127.0.0.1:8080/",
	}
	var buf bytes.Buffer
	s.WriteText(&buf)
	for _, want := range []string{
		"tailgate demo: 1:30 of 1:30 (calm 15s, failure 20s, recovery 55s), 40 requests/s\n",
		"  traces sent          3,600 (22,000 spans): 3,200 ok, 0 slow, 400 with an error\n",
		"  error traces kept    400 of 400 (100.0%)\n",
		"  OK traces kept       160 of 3,200 (5.00%; the rule keeps 5%, expected within ±1.5 points)\n",
		"  alerts fired         1 page, 1 ticket\n",
		"    page   page-1h    on checkout-availability  at 0:19 (failure), resolved at 1:20\n",
		"  page alert fired during the failure: yes (page-1h on checkout-availability at 0:19, resolved at 1:20)\n",
		"    failure:  deny (page-burn-alert) ×9, allow (within-budget) ×1\n",
		"    recovery: deny (budget-exhausted) ×20, allow (override) ×8\n",
		"  gate denied a feature during the failure: yes (9 of 10 checks)\n",
		"  kill switch turned recommendations off: yes, at 0:21 (failure), restored at 1:41\n",
		"  incident             INC-1 declared from the page at 0:19 (failure): checkout, frontend, likely origin payments\n",
		"    post-mortem        checkout-availability: 1,234 failed requests, 250% of its error budget (over 20%: needs a post-mortem)\n",
		"  canary               payments 2.4.1 (1% then 10% of charges) vs 2.3.1: FAIL at 10% after 56 canary requests and 16s (error_ratio): canary errors 19.6% vs baseline 0.0%; rolled back\n",
		"    gate               payments 2.4.1 feature release: DENY (canary-failed): version 2.4.1 failed as a canary: error ratio\n",
		"  dashboard            http://127.0.0.1:8080/\n",
		"  checks               PASS\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, buf.String())
		}
	}
	s.Interrupted = true
	buf.Reset()
	s.WriteText(&buf)
	if !strings.Contains(buf.String(), "not judged") {
		t.Errorf("interrupted summary judges its checks:\n%s", buf.String())
	}
}

// TestRecorderIncidents reports each incident once, when first seen, at
// its declaration time, and keeps its origin once known.
func TestRecorderIncidents(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := newRecorder(start, Schedule{Calm: 10 * time.Second, Failure: 10 * time.Second, Recovery: 30 * time.Second})
	inc := apiIncident{ID: "INC-1", Title: "checkout is paging", Source: "page", Services: []string{"checkout"}, DeclaredAt: start.Add(12 * time.Second)}
	var texts []string
	for _, step := range []struct {
		at   time.Duration
		incs []apiIncident
	}{{5, nil}, {13, []apiIncident{inc}}, {15, nil}} {
		if step.at == 15 {
			later := inc
			later.Origin, later.Services = "payments", []string{"checkout", "payments"}
			step.incs = []apiIncident{later}
		}
		for _, e := range r.observe(snapshot{At: start.Add(step.at * time.Second), Incidents: step.incs}, Failure) {
			texts = append(texts, clock(e.At)+" "+e.Text)
		}
	}
	if diff := cmp.Diff([]string{"0:12 INCIDENT INC-1 declared (page): checkout is paging"}, texts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	rec := r.incidents["INC-1"]
	if rec == nil || rec.Phase != Failure || rec.DeclaredAt != 12*time.Second || rec.Origin != "payments" || len(rec.Services) != 2 {
		t.Errorf("record %+v", rec)
	}
}
