package slo

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// The scenario language of testdata/*.test, in the spirit of Prometheus's
// promqltest. One command per line; '#' starts a comment.
//
//	base 2025-03-01T00:00:00Z     times below are offsets from it (default 2024-01-01T00:00:00Z)
//	slo                            an SLO in the own format follows, indented
//	  name: s
//	  ...
//	since <T>                      counting began at T (coverage); default: the base
//	events <slo>[@group] <A>..<B> total=N bad=M
//	                               every minute in [A, B) gets N requests, M bad
//	                               (lines add up); a minute's events are seen
//	                               once the clock is past its start
//	correction <slo> <A>..<B> [rrule=<RULE> duration=<D>] [reason=...]
//	run <A>..<B> every <D>         evaluate alerts at A, A+D, ... up to B
//	eval at <T>                    evaluate alerts at T; the expects below read the state at T
//	  expect <slo> <what> <value>
//
// what: good, total, sli, budget_remaining, consumed_events, budget_events,
// coverage, tte (seconds or none), exhausted (true/false), burn <window>,
// sli_window <window>, coverage_window <window>, alert <name>[@group]
// <state>, group <value> budget_remaining|total|good. Values: numbers,
// fractions a/b, "nodata", or ~x for 4 significant digits.
// "expect transitions <slo> <alert> <state>@<T> ..." lists every recorded
// transition of an alert (pending ones too) since the start.

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.test")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	total := 0
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".test"), func(t *testing.T) {
			total += runScenario(t, f)
		})
	}
	t.Logf("%d expectations in %d files", total, len(files))
}

type scenario struct {
	t       *testing.T
	file    string
	line    int
	base    time.Time
	since   time.Time
	specs   []Spec
	e       *Engine
	events  map[string]map[units.Minute]cnt // "slo@group" -> minute -> counts
	fed     units.Minute                    // minutes < fed were given to the engine
	evalAt  time.Time
	corrs   []Correction
	checked int
}

func (sc *scenario) fatalf(format string, args ...any) {
	sc.t.Helper()
	sc.t.Fatalf("%s:%d: %s", sc.file, sc.line, fmt.Sprintf(format, args...))
}

func (sc *scenario) errorf(format string, args ...any) {
	sc.t.Helper()
	sc.t.Errorf("%s:%d: %s", sc.file, sc.line, fmt.Sprintf(format, args...))
}

func (sc *scenario) time(s string) time.Time {
	sc.t.Helper()
	if tm, err := time.Parse(time.RFC3339, s); err == nil {
		return tm
	}
	neg := strings.HasPrefix(s, "-")
	d, err := units.ParseDuration(strings.TrimPrefix(s, "-"))
	if s == "0" {
		d, err = 0, nil
	}
	if err != nil {
		sc.fatalf("bad time %q: %v", s, err)
	}
	if neg {
		d = -d
	}
	return sc.base.Add(d)
}

func (sc *scenario) span(s string) (time.Time, time.Time) {
	sc.t.Helper()
	a, b, ok := strings.Cut(s, "..")
	if !ok {
		sc.fatalf("want A..B, got %q", s)
	}
	return sc.time(a), sc.time(b)
}

func runScenario(t *testing.T, file string) int {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := &scenario{t: t, file: file, base: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), events: map[string]map[units.Minute]cnt{}}
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	for i := 0; i < len(lines); i++ {
		sc.line = i + 1
		line := lines[i]
		if c := strings.Index(line, "#"); c >= 0 {
			line = line[:c]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Fields(line)
		switch fields[0] {
		case "base":
			sc.base = sc.time(fields[1])
			sc.since = time.Time{}
		case "slo":
			var block []string
			for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "\t") || strings.TrimSpace(lines[i+1]) == "") {
				i++
				block = append(block, lines[i])
			}
			var sp Spec
			if err := yaml.UnmarshalWithOptions([]byte(dedent(block)), &sp, yaml.Strict()); err != nil {
				sc.fatalf("slo: %v", err)
			}
			sc.specs = append(sc.specs, sp)
		case "since":
			sc.since = sc.time(fields[1])
		case "events":
			sc.addEvents(fields[1:])
		case "correction":
			sc.addCorrection(fields[1:])
		case "run":
			sc.start()
			a, b := sc.span(fields[1])
			if len(fields) != 4 || fields[2] != "every" {
				sc.fatalf("want run A..B every D")
			}
			step, err := units.ParseDuration(fields[3])
			if err != nil || step <= 0 {
				sc.fatalf("bad step %q", fields[3])
			}
			for tm := a; !tm.After(b); tm = tm.Add(step) {
				sc.evalTo(tm)
			}
		case "eval":
			sc.start()
			if len(fields) != 3 || fields[1] != "at" {
				sc.fatalf("want eval at T")
			}
			sc.evalTo(sc.time(fields[2]))
		case "expect":
			if sc.e == nil {
				sc.fatalf("expect before eval")
			}
			sc.expect(fields[1:])
		default:
			sc.fatalf("unknown command %q", fields[0])
		}
	}
	return sc.checked
}

func dedent(lines []string) string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) >= indent {
			l = l[indent:]
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

func kv(fields []string) map[string]string {
	m := map[string]string{}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

func (sc *scenario) addEvents(f []string) {
	if len(f) < 3 {
		sc.fatalf("want events SLO A..B total=N bad=M")
	}
	a, b := sc.span(f[1])
	args := kv(f[2:])
	total, err1 := strconv.ParseUint(args["total"], 10, 64)
	bad, err2 := strconv.ParseUint(args["bad"], 10, 64)
	if args["bad"] == "" {
		bad, err2 = 0, nil
	}
	if err1 != nil || err2 != nil || bad > total {
		sc.fatalf("bad counts in %v", f)
	}
	key := f[0]
	if !strings.Contains(key, "@") {
		key += "@"
	}
	if sc.events[key] == nil {
		sc.events[key] = map[units.Minute]cnt{}
	}
	for m := units.MinuteOf(a); m < units.MinuteOf(b); m++ {
		if sc.e != nil && m < sc.fed {
			sc.fatalf("events at %s are in the past of the last eval", m.Time())
		}
		c := sc.events[key][m]
		sc.events[key][m] = cnt{good: c.good + total - bad, total: c.total + total}
	}
}

func (sc *scenario) addCorrection(f []string) {
	if len(f) < 2 {
		sc.fatalf("want correction SLO A..B [rrule=R duration=D]")
	}
	a, b := sc.span(f[1])
	args := kv(f[2:])
	c := Correction{SLO: f[0], Start: a, End: b, Reason: "test", CreatedBy: "dsl"}
	if r := args["rrule"]; r != "" {
		d, err := units.ParseDuration(args["duration"])
		if err != nil {
			sc.fatalf("bad duration: %v", err)
		}
		c.End, c.RRule, c.Duration = time.Time{}, r, units.Duration(d)
	}
	if sc.e == nil {
		sc.corrs = append(sc.corrs, c)
		return
	}
	if _, err := sc.e.AddCorrection(sc.t.Context(), c, sc.evalAt); err != nil {
		sc.fatalf("add correction: %v", err)
	}
}

// start builds the engine on the first eval.
func (sc *scenario) start() {
	if sc.e != nil {
		return
	}
	e, err := NewEngine(sc.specs, Settings{})
	if err != nil {
		sc.fatalf("new engine: %v", err)
	}
	sc.e = e
	since := sc.since
	if since.IsZero() {
		since = sc.base
	}
	for _, st := range e.slos {
		st.since = since
		st.agg.since = since
	}
	first := units.MinuteOf(since)
	for key := range sc.events {
		for m := range sc.events[key] {
			first = min(first, m)
		}
	}
	sc.fed = first
	e.advance(first)
	for _, c := range sc.corrs {
		if _, err := e.AddCorrection(sc.t.Context(), c, first.Time()); err != nil {
			sc.fatalf("add correction: %v", err)
		}
	}
}

// evalTo feeds the minutes before tm (and tm's own minute when tm is inside
// it) and evaluates at tm.
func (sc *scenario) evalTo(tm time.Time) {
	if tm.Before(sc.evalAt) {
		sc.fatalf("time goes backwards: %s", tm)
	}
	upTo := units.MinuteOf(tm) // exclusive
	if !upTo.Time().Equal(tm) {
		upTo++
	}
	for m := sc.fed; m < upTo; m++ {
		sc.e.advance(m)
		for key, byMin := range sc.events {
			c, ok := byMin[m]
			if !ok {
				continue
			}
			name, group, _ := strings.Cut(key, "@")
			st := sc.e.byName[name]
			if st == nil {
				sc.fatalf("events for unknown SLO %q", name)
			}
			s := st.agg
			if st.groupBy != nil {
				if group == "" {
					sc.fatalf("SLO %q is grouped: give events SLO@group", name)
				}
				s = st.groups.Load().byValue[group]
				if s == nil {
					s = st.newGroup(group, sc.base)
					s.since = st.since
				}
				st.agg.live.Add(c.total<<32 | (c.total - c.good))
			}
			s.live.Add(c.total<<32 | (c.total - c.good))
		}
	}
	if upTo > sc.fed {
		sc.fed = upTo
	}
	sc.e.evaluate(tm)
	sc.evalAt = tm
}

func (sc *scenario) expect(f []string) {
	sc.t.Helper()
	sc.checked++
	if f[0] == "transitions" {
		sc.expectTransitions(f[1:])
		return
	}
	if len(f) < 3 {
		sc.fatalf("want expect SLO WHAT VALUE")
	}
	st, ok := sc.e.Status(f[0], sc.evalAt)
	if !ok {
		sc.fatalf("unknown SLO %q", f[0])
	}
	what, rest := f[1], f[2:]
	win := func(label string) WindowStatus {
		for _, w := range st.Windows {
			if w.Window == label {
				return w
			}
		}
		sc.fatalf("no window %q (have %v)", label, st.BurnRates)
		return WindowStatus{}
	}
	switch what {
	case "good":
		sc.num(what, &st.Good, rest[0])
	case "total":
		sc.num(what, &st.Total, rest[0])
	case "sli":
		sc.num(what, st.SLI, rest[0])
	case "budget_remaining":
		sc.num(what, st.BudgetRemaining, rest[0])
	case "consumed_events":
		sc.num(what, &st.Budget.Consumed, rest[0])
	case "budget_events":
		sc.num(what, &st.Budget.Total, rest[0])
	case "coverage":
		sc.num(what, &st.Coverage, rest[0])
	case "tte":
		sc.num(what, st.TimeToExhaustion, rest[0])
	case "exhausted":
		if got := strconv.FormatBool(st.BudgetExhausted); got != rest[0] {
			sc.errorf("exhausted = %s, want %s", got, rest[0])
		}
	case "burn":
		w := win(rest[0])
		sc.num("burn "+rest[0], w.BurnRate, rest[1])
	case "sli_window":
		w := win(rest[0])
		sc.num("sli "+rest[0], w.SLI, rest[1])
	case "coverage_window":
		w := win(rest[0])
		sc.num("coverage "+rest[0], &w.Coverage, rest[1])
	case "group":
		var g *GroupStatus
		for i := range st.Groups {
			if st.Groups[i].Group == rest[0] {
				g = &st.Groups[i]
			}
		}
		if g == nil {
			sc.fatalf("no group %q", rest[0])
		}
		switch rest[1] {
		case "budget_remaining":
			sc.num("group budget_remaining", g.BudgetRemaining, rest[2])
		case "total":
			sc.num("group total", &g.Total, rest[2])
		case "good":
			sc.num("group good", &g.Good, rest[2])
		default:
			sc.fatalf("unknown group field %q", rest[1])
		}
	case "alert":
		name, group, _ := strings.Cut(rest[0], "@")
		state := Inactive
		for _, a := range st.Alerts {
			if a.Name == name && a.Group == group {
				state = a.State
			}
		}
		if state.String() != rest[1] {
			sc.errorf("alert %s = %s, want %s", rest[0], state, rest[1])
		}
	default:
		sc.fatalf("unknown expectation %q", what)
	}
}

func (sc *scenario) expectTransitions(f []string) {
	sc.t.Helper()
	if len(f) < 2 {
		sc.fatalf("want expect transitions SLO ALERT [STATE@T ...]")
	}
	name, group, _ := strings.Cut(f[1], "@")
	var got []string
	ts := sc.e.Transitions(f[0], 0)
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Alert == name && ts[i].Group == group {
			got = append(got, ts[i].To.String()+"@"+units.FormatDuration(ts[i].At.Sub(sc.base)))
		}
	}
	var want []string
	for _, w := range f[2:] {
		st, at, _ := strings.Cut(w, "@")
		want = append(want, st+"@"+units.FormatDuration(sc.time(at).Sub(sc.base)))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		sc.errorf("transitions of %s:\n got  %v\n want %v", f[1], got, want)
	}
}

// num compares a value with an expectation: a number, a fraction a/b,
// "nodata" (nil), "none" (nil) or ~x (4 significant digits).
func (sc *scenario) num(what string, got *float64, want string) {
	sc.t.Helper()
	if want == "nodata" || want == "none" {
		if got != nil {
			sc.errorf("%s = %v, want %s", what, *got, want)
		}
		return
	}
	approx := strings.HasPrefix(want, "~")
	want = strings.TrimPrefix(want, "~")
	var w float64
	if a, b, ok := strings.Cut(want, "/"); ok {
		x, err1 := strconv.ParseFloat(a, 64)
		y, err2 := strconv.ParseFloat(b, 64)
		if err1 != nil || err2 != nil {
			sc.fatalf("bad number %q", want)
		}
		w = x / y
	} else {
		var err error
		if w, err = strconv.ParseFloat(want, 64); err != nil {
			sc.fatalf("bad number %q", want)
		}
	}
	if got == nil {
		sc.errorf("%s = nodata, want %v", what, w)
		return
	}
	tol := 1e-9 * math.Max(1, math.Abs(w))
	if approx {
		tol = 5e-4 * math.Max(1e-12, math.Abs(w))
	}
	if math.Abs(*got-w) > tol {
		sc.errorf("%s = %.12g, want %s", what, *got, want)
	}
}
