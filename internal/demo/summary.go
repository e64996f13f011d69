package demo

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/trace"
)

// AlertRecord is an alert that fired during the run.
type AlertRecord struct {
	SLO, Alert, Severity string
	// FiredAt and ResolvedAt are times since the start of the run.
	FiredAt    time.Duration
	Phase      Phase // the phase it fired in
	Resolved   bool
	ResolvedAt time.Duration
}

// recorder turns successive snapshots into events and keeps what the
// summary reports.
type recorder struct {
	start    time.Time
	sched    Schedule
	seen     map[string]bool
	alerts   []*AlertRecord
	lastGate string
	// gate counts the gate's answers per phase, keyed "deny (rule)".
	gate [Done + 1]map[string]int
	// flips are the demo flag's kill-switch flips; flagVariant is the
	// variant last seen.
	flips       []*FlipRecord
	flagVariant string
	// incidents are the incidents seen declared, by ID.
	incidents map[string]*IncidentRecord
	incOrder  []string
}

// IncidentRecord is an incident declared during the run, and its
// post-mortem's numbers once the demo resolved it.
type IncidentRecord struct {
	ID, Title, Source, Origin string
	Services                  []string
	// DeclaredAt is the time since the start of the run.
	DeclaredAt time.Duration
	Phase      Phase
	Impacts    []apiImpact
	// Postmortem is the draft's file, when the data directory is kept.
	Postmortem string
}

// FlipRecord is a kill-switch flip of the demo's flag during the run.
type FlipRecord struct {
	// At and RestoredAt are times since the start of the run.
	At         time.Duration
	Phase      Phase
	Variant    string
	Reason     string
	Restored   bool
	RestoredAt time.Duration
}

func newRecorder(start time.Time, sched Schedule) *recorder {
	r := &recorder{start: start, sched: sched, seen: map[string]bool{}, incidents: map[string]*IncidentRecord{}}
	for i := range r.gate {
		r.gate[i] = map[string]int{}
	}
	return r
}

// observe records a snapshot taken in phase p and returns the events it
// holds: alert transitions not seen before, and changes of the gate's
// answer.
func (r *recorder) observe(s snapshot, p Phase) []event {
	var evs []event
	for i := len(s.Transitions) - 1; i >= 0; i-- { // oldest first
		t := s.Transitions[i]
		key := fmt.Sprintf("%s|%s|%s|%d", t.SLO, t.Alert, t.To, t.At.UnixNano())
		if r.seen[key] {
			continue
		}
		r.seen[key] = true
		at := t.At.Sub(r.start)
		switch t.To {
		case "firing":
			ph, _ := r.sched.At(at)
			r.alerts = append(r.alerts, &AlertRecord{SLO: t.SLO, Alert: t.Alert, Severity: t.Severity, FiredAt: at, Phase: ph})
			if t.Severity == "page" || t.Alert == "budget-exhausted" { // the other tickets are in the table
				evs = append(evs, event{at, fmt.Sprintf("ALERT %s FIRING on %s (%s): %s", t.Alert, t.SLO, t.Severity, describeValues(t.Values))})
			}
		case "resolved":
			for j := len(r.alerts) - 1; j >= 0; j-- {
				if a := r.alerts[j]; a.SLO == t.SLO && a.Alert == t.Alert && !a.Resolved {
					a.Resolved, a.ResolvedAt = true, at
					break
				}
			}
			if t.Severity == "page" || t.Alert == "budget-exhausted" {
				evs = append(evs, event{at, fmt.Sprintf("alert %s resolved on %s", t.Alert, t.SLO)})
			}
		}
	}
	if f := s.Flag; f != nil && f.Variant != r.flagVariant {
		at := s.At.Sub(r.start)
		forced, _ := f.Metadata["forced_by"].(string)
		switch {
		case r.flagVariant == "": // the first look
		case forced == "kill_switch":
			ph, _ := r.sched.At(at)
			r.flips = append(r.flips, &FlipRecord{At: at, Phase: ph, Variant: f.Variant, Reason: f.Why})
			evs = append(evs, event{at, fmt.Sprintf("KILL SWITCH flag %s -> %s (%s)", DemoFlag, f.Variant, f.Why)})
		case forced == "":
			if n := len(r.flips); n > 0 && !r.flips[n-1].Restored {
				r.flips[n-1].Restored, r.flips[n-1].RestoredAt = true, at
			}
			evs = append(evs, event{at, fmt.Sprintf("kill switch restored flag %s -> %s", DemoFlag, f.Variant)})
		}
		r.flagVariant = f.Variant
	}
	for i := len(s.Incidents) - 1; i >= 0; i-- { // oldest first
		inc := s.Incidents[i]
		if rec, ok := r.incidents[inc.ID]; ok {
			if inc.Origin != "" && rec.Origin == "" {
				rec.Origin = inc.Origin
			}
			rec.Services = inc.Services
			continue
		}
		at := inc.DeclaredAt.Sub(r.start)
		ph, _ := r.sched.At(at)
		r.incidents[inc.ID] = &IncidentRecord{ID: inc.ID, Title: inc.Title, Source: inc.Source, Origin: inc.Origin, Services: inc.Services, DeclaredAt: at, Phase: ph}
		r.incOrder = append(r.incOrder, inc.ID)
		evs = append(evs, event{at, fmt.Sprintf("INCIDENT %s declared (%s): %s", inc.ID, inc.Source, inc.Title)})
	}
	if d := s.Gate; d != nil {
		key := d.Decision + " (" + d.PolicyRule + ")"
		r.gate[p][key]++
		if key != r.lastGate {
			r.lastGate = key
			evs = append(evs, event{s.At.Sub(r.start), fmt.Sprintf("GATE checkout feature: %s (%s): %s", strings.ToUpper(d.Decision), d.PolicyRule, d.reason())})
		}
	}
	return evs
}

func describeValues(v alertValues) string {
	var parts []string
	switch l, s := v.BurnRateLong, v.BurnRateShort; {
	case l == nil || s == nil:
	case v.LongWindow == v.ShortWindow:
		parts = append(parts, fmt.Sprintf("burn %.1fx over %s (threshold %gx)", *l, v.LongWindow, v.Threshold))
	default:
		parts = append(parts, fmt.Sprintf("burn %.1fx over %s, %.1fx over %s (threshold %gx)", *l, v.LongWindow, *s, v.ShortWindow, v.Threshold))
	}
	if v.BudgetRemaining != nil {
		parts = append(parts, fmt.Sprintf("budget left %.1f%%", 100**v.BudgetRemaining))
	}
	return strings.Join(parts, "; ")
}

// Summary is the outcome of a demo run.
type Summary struct {
	Schedule    Schedule
	RPS         float64
	Ran         time.Duration
	Interrupted bool
	// Sent and Kept count traces per class: sent by the demo, found in the
	// export file.
	Sent, Kept [numClasses]int
	SpansSent  int
	// KeptByRule counts kept traces by the sampling rule that kept them.
	KeptByRule map[string]int
	// MissedErrors holds up to five error traces the sampler did not keep.
	MissedErrors []string
	// Unknown counts kept traces the demo did not send.
	Unknown int
	Spans   Counters
	Alerts  []AlertRecord
	// Gate counts the gate's answers per phase, keyed "deny (rule)".
	Gate [Done + 1]map[string]int
	// Flips are the kill switch's flips of the demo's flag.
	Flips []FlipRecord
	// Canary is the recovery's canary and tailgate's verdict on it; nil
	// when it did not start.
	Canary *CanaryRecord
	// Incidents are the incidents declared during the run.
	Incidents    []IncidentRecord
	DashboardURL string
	// DataDir is set when the data directory is kept.
	DataDir string
	// Problems are errors met on the way that did not stop the run.
	Problems []string
}

// Check is one expectation of the demo with its outcome.
type Check struct {
	Name string
	OK   bool
}

// okTolerance is how far the kept share of OK traces may be from 5%: four
// binomial standard deviations, and at least one point.
func okTolerance(n int) float64 {
	if n <= 0 {
		return 1
	}
	return max(0.01, 4*math.Sqrt(0.05*0.95/float64(n)))
}

// PageDuringFailure returns the first page alert that fired during the
// failure, preferring the fast tier (page-1h).
func (s *Summary) PageDuringFailure() *AlertRecord {
	var first *AlertRecord
	for i := range s.Alerts {
		a := &s.Alerts[i]
		if a.Severity != "page" || a.Phase != Failure {
			continue
		}
		if a.Alert == "page-1h" {
			return a
		}
		if first == nil {
			first = a
		}
	}
	return first
}

// KillSwitchFlip returns the first flip of the demo's flag by its kill
// switch after the failure began (the page that triggers it can fire
// late in the failure, and the flip follows it).
func (s *Summary) KillSwitchFlip() *FlipRecord {
	for i := range s.Flips {
		if f := &s.Flips[i]; f.Phase == Failure || f.Phase == Recovery {
			return f
		}
	}
	return nil
}

// PagedIncident returns the incident a page declared after the failure
// began, once resolved with its post-mortem's numbers.
func (s *Summary) PagedIncident() *IncidentRecord {
	for i := range s.Incidents {
		if in := &s.Incidents[i]; in.Source == "page" && (in.Phase == Failure || in.Phase == Recovery) && len(in.Impacts) > 0 {
			return in
		}
	}
	return nil
}

// Denials returns how many of the gate's answers in phase p denied, and
// how many answers there were.
func (s *Summary) Denials(p Phase) (denied, total int) {
	for k, n := range s.Gate[p] {
		total += n
		if strings.HasPrefix(k, "deny") {
			denied += n
		}
	}
	return denied, total
}

// Checks returns what the demo is meant to show, each with its outcome.
func (s *Summary) Checks() []Check {
	okShare := ratio(s.Kept[OK], s.Sent[OK])
	denied, _ := s.Denials(Failure)
	return []Check{
		{"error traces kept 100%", s.Sent[Error] > 0 && s.Kept[Error] == s.Sent[Error]},
		{"OK traces kept about 5%", s.Sent[OK] > 0 && math.Abs(okShare-0.05) <= okTolerance(s.Sent[OK])},
		{"a page alert fired during the failure", s.PageDuringFailure() != nil},
		{"the gate denied a feature during the failure", denied > 0},
		{"the kill switch turned " + DemoFlag + " off on the page", s.KillSwitchFlip() != nil},
		{"the page opened an incident, whose post-mortem counts the failed requests", s.pagedIncidentCounted()},
		{"tailgate failed the payments canary, which was rolled back, and the gate denies its version", s.canaryRolledBack()},
	}
}

// canaryRolledBack reports whether tailgate's fail verdict rolled the
// canary back and the gate then denied releasing its version.
func (s *Summary) canaryRolledBack() bool {
	c := s.Canary
	return c != nil && c.Verdict == "fail" && c.RolledBack && c.Gate != nil && c.Gate.Decision == "deny" && c.Gate.Rule == "canary-failed"
}

// Passed reports whether every check holds.
func (s *Summary) Passed() bool {
	for _, c := range s.Checks() {
		if !c.OK {
			return false
		}
	}
	return true
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// WriteText writes the summary for a terminal or a CI log.
func (s *Summary) WriteText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	head := fmt.Sprintf("tailgate demo: %s of %s (%s), %.0f requests/s", clock(s.Ran), clock(s.Schedule.Total()), s.Schedule, s.RPS)
	if s.Interrupted {
		head += ", interrupted"
	}
	p("%s", head)
	sent := s.Sent[OK] + s.Sent[Slow] + s.Sent[Error]
	p("  traces sent          %s (%s spans): %s ok, %s slow, %s with an error", count(sent), count(s.SpansSent), count(s.Sent[OK]), count(s.Sent[Slow]), count(s.Sent[Error]))
	p("  error traces kept    %s of %s (%s)", count(s.Kept[Error]), count(s.Sent[Error]), pct(float64(s.Kept[Error]), float64(s.Sent[Error])))
	if len(s.MissedErrors) > 0 {
		p("                       not kept: %s", strings.Join(s.MissedErrors, ", "))
	}
	p("  OK traces kept       %s of %s (%s; the rule keeps 5%%, expected within ±%.1f points)", count(s.Kept[OK]), count(s.Sent[OK]),
		pctPrec(s.Kept[OK], s.Sent[OK]), 100*okTolerance(s.Sent[OK]))
	if s.Sent[Slow] > 0 {
		p("  slow traces kept     %s of %s (%s)", count(s.Kept[Slow]), count(s.Sent[Slow]), pct(float64(s.Kept[Slow]), float64(s.Sent[Slow])))
	}
	if len(s.KeptByRule) > 0 {
		rules := make([]string, 0, len(s.KeptByRule))
		for r := range s.KeptByRule {
			rules = append(rules, r)
		}
		slices.Sort(rules)
		var parts []string
		for _, r := range rules {
			parts = append(parts, fmt.Sprintf("%s %s", r, count(s.KeptByRule[r])))
		}
		p("  kept by rule         %s", strings.Join(parts, ", "))
	}
	p("  spans at tailgate    in %s, kept %s (%s), dropped %s", count(int(s.Spans.In)), count(int(s.Spans.Kept)),
		pct(s.Spans.Kept, s.Spans.Kept+s.Spans.Dropped), count(int(s.Spans.Dropped)))
	pages, tickets := 0, map[string]int{}
	for _, a := range s.Alerts {
		if a.Severity == "page" {
			pages++
		} else {
			tickets[a.Alert]++
		}
	}
	p("  alerts fired         %d page, %d ticket", pages, len(s.Alerts)-pages)
	for _, a := range s.Alerts {
		if a.Severity != "page" {
			continue
		}
		state := "still firing at the end"
		if a.Resolved {
			state = "resolved at " + clock(a.ResolvedAt)
		}
		p("    page   %-10s on %-22s at %s (%s), %s", a.Alert, a.SLO, clock(a.FiredAt), a.Phase, state)
	}
	if len(tickets) > 0 {
		p("    ticket %s", gateCounts(tickets))
	}
	if a := s.PageDuringFailure(); a != nil {
		state := "still firing at the end"
		if a.Resolved {
			state = "resolved at " + clock(a.ResolvedAt)
		}
		p("  page alert fired during the failure: yes (%s on %s at %s, %s)", a.Alert, a.SLO, clock(a.FiredAt), state)
	} else {
		p("  page alert fired during the failure: no")
	}
	p("  gate, checkout feature release:")
	for ph := Calm; ph < Done; ph++ {
		if len(s.Gate[ph]) == 0 {
			continue
		}
		p("    %-9s %s", ph.String()+":", gateCounts(s.Gate[ph]))
	}
	denied, total := s.Denials(Failure)
	p("  gate denied a feature during the failure: %s (%d of %d checks)", yesNo(denied > 0), denied, total)
	if f := s.KillSwitchFlip(); f != nil {
		state := "still off at the end"
		if f.Restored {
			state = "restored at " + clock(f.RestoredAt)
		}
		p("  kill switch turned %s off: yes, at %s (%s), %s", DemoFlag, clock(f.At), f.Phase, state)
	} else {
		p("  kill switch turned %s off: no", DemoFlag)
	}
	if in := s.PagedIncident(); in != nil {
		origin := ""
		if in.Origin != "" {
			origin = ", likely origin " + in.Origin
		}
		p("  incident             %s declared from the page at %s (%s): %s%s", in.ID, clock(in.DeclaredAt), in.Phase, strings.Join(in.Services, ", "), origin)
		for _, im := range in.Impacts {
			p("    post-mortem        %s: %s failed requests, %.0f%% of its error budget%s", im.SLO, count(int(im.Failed)), 100*im.BudgetConsumed, reviewNote(im.NeedsReview))
		}
		if in.Postmortem != "" {
			p("    draft              %s", in.Postmortem)
		}
	} else {
		p("  incident             none declared from the page")
	}
	if c := s.Canary; c != nil {
		switch {
		case c.RolledBack:
			p("  canary               payments %s (%s of charges) vs %s: FAIL at %s after %s canary requests and %s (%s): %s; rolled back",
				c.Version, c.Shares(), c.Baseline, percent(c.Share), count(int(c.Requests)), short(c.Took()), c.Rule, c.Reason)
		case c.Verdict != "":
			p("  canary               payments %s vs %s: %s after %d checks (%s): %s; not rolled back", c.Version, c.Baseline, c.Verdict, c.Checks, c.Rule, c.Reason)
		default:
			p("  canary               payments %s vs %s: no verdict", c.Version, c.Baseline)
		}
		if g := c.Gate; g != nil {
			p("    gate               payments %s feature release: %s (%s): %s", c.Version, strings.ToUpper(g.Decision), g.Rule, g.Reason)
		}
	} else {
		p("  canary               not started")
	}
	p("  dashboard            %s", s.DashboardURL)
	if s.DataDir != "" {
		p("  data directory       %s (config %s, kept traces %s)", s.DataDir, ConfigFile, ExportFile)
	}
	for _, pr := range s.Problems {
		p("  problem              %s", pr)
	}
	if s.Interrupted {
		p("  checks               not judged: the run was interrupted")
		return
	}
	var failed []string
	for _, c := range s.Checks() {
		if !c.OK {
			failed = append(failed, c.Name)
		}
	}
	if len(failed) == 0 {
		p("  checks               PASS")
	} else {
		p("  checks               FAIL: not shown: %s", strings.Join(failed, "; "))
	}
}

func pctPrec(a, b int) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(a)/float64(b))
}

// gateCounts formats the answers of one phase, most frequent first.
func gateCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// keptTraces reads the export file (OTLP JSON, one request per line) and
// returns the rule that kept each trace in it.
func keptTraces(path string) (map[trace.TraceID]string, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return map[trace.TraceID]string{}, nil // nothing kept yet
		}
		return nil, fmt.Errorf("open export file: %w", err)
	}
	defer f.Close()
	out := map[trace.TraceID]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 256<<20)
	var u ptrace.JSONUnmarshaler
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		td, err := u.UnmarshalTraces(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("export file line %d: %w", n, err)
		}
		rss := td.ResourceSpans()
		for i := range rss.Len() {
			sss := rss.At(i).ScopeSpans()
			for j := range sss.Len() {
				spans := sss.At(j).Spans()
				for k := range spans.Len() {
					sp := spans.At(k)
					id := trace.TraceID(sp.TraceID())
					if _, ok := out[id]; ok {
						continue
					}
					rule := ""
					if v, ok := sp.Attributes().Get("sampling.rule"); ok {
						rule = v.Str()
					}
					out[id] = rule
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read export file: %w", err)
	}
	return out, nil
}

// tally compares what was kept with what was sent.
func (s *Summary) tally(l *Ledger, kept map[trace.TraceID]string) {
	s.Sent, s.SpansSent = l.Sent()
	s.KeptByRule = map[string]int{}
	for _, rule := range kept {
		s.KeptByRule[rule]++
	}
	var missed []string
	l.IDs(func(id trace.TraceID, c Class) {
		if _, ok := kept[id]; ok {
			s.Kept[c]++
		} else if c == Error {
			missed = append(missed, id.String())
		}
	})
	slices.Sort(missed)
	s.MissedErrors = missed[:min(len(missed), 5)]
	for id := range kept {
		if _, ok := l.Class(id); !ok {
			s.Unknown++
		}
	}
	if s.Unknown > 0 {
		s.Problems = append(s.Problems, fmt.Sprintf("%d kept traces were not sent by the demo", s.Unknown))
	}
}

// pagedIncidentCounted: the paged incident's post-mortem counted failed
// requests on at least one SLO.
func (s *Summary) pagedIncidentCounted() bool {
	in := s.PagedIncident()
	if in == nil {
		return false
	}
	for _, im := range in.Impacts {
		if im.Failed > 0 {
			return true
		}
	}
	return false
}

func reviewNote(review bool) string {
	if review {
		return " (over 20%: needs a post-mortem)"
	}
	return ""
}
