package demo

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// view is everything a screen shows at one refresh.
type view struct {
	URL     string
	Elapsed time.Duration
	Total   time.Duration
	Phase   Phase
	Frac    float64
	RPS     float64
	Release string
	Sent    [numClasses]int
	Spans   int
	Snap    snapshot
	Events  []event
	Note    string
}

// event is something that happened, at a time since the start.
type event struct {
	At   time.Duration
	Text string
}

// screen shows the demo's progress.
type screen interface {
	// Frame shows the state; Event reports something that just happened.
	Frame(v *view)
	Event(e event)
	// Close ends the live display so that the summary can follow.
	Close()
}

// phaseStory says what happens in each phase.
func phaseStory(p Phase, release string) string {
	switch p {
	case Calm:
		return "normal traffic; payments " + release + " healthy"
	case Failure:
		return "payments " + release + " is slow and failing; checkout times out, the frontend answers 5xx"
	case Recovery:
		return "payments rolled back to " + release + "; traffic is healthy again"
	}
	return "traffic stopped"
}

// tui redraws a compact screen in place with ANSI escapes.
type tui struct {
	w       io.Writer
	started bool
}

func (t *tui) Event(event) {} // the frame lists the latest events

func (t *tui) Frame(v *view) {
	var b strings.Builder
	if !t.started {
		b.WriteString("\x1b[?1049h\x1b[?25l") // alternate screen, hide the cursor
		t.started = true
	}
	b.WriteString("\x1b[H")
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\x1b[K\n")
	}
	line("\x1b[1mtailgate demo\x1b[0m  %s   %s / %s   Ctrl-C stops", v.URL, clock(v.Elapsed), clock(v.Total))
	line("phase  %s  %s  %s", phaseLabel(v.Phase, true), units.Bar(v.Frac, 16, "█", "░"), phaseStory(v.Phase, v.Release))
	line("")
	sent := v.Sent[OK] + v.Sent[Slow] + v.Sent[Error]
	line("traffic  %.0f req/s, %s traces sent (%s with an error), %s spans", v.RPS, count(sent), pct(float64(v.Sent[Error]), float64(sent)), count(v.Spans))
	s := v.Snap.Spans
	line("spans    in %s   kept %s (%s)   dropped %s   buffered %s", count(int(s.In)), count(int(s.Kept)), pct(s.Kept, s.Kept+s.Dropped), count(int(s.Dropped)), count(int(s.Buffered)))
	line("")
	line("\x1b[1m%-23s %-6s %-31s %8s %8s  %s\x1b[0m", "SLO (1h window)", "OBJ", "ERROR BUDGET LEFT", "BURN 5m", "BURN 1h", "ALERTS")
	for i := range v.Snap.SLOs {
		o := &v.Snap.SLOs[i]
		line("%-23s %-6s %-31s %8s %8s  %s", o.Name, fmt.Sprintf("%g%%", o.Objective), budgetCell(o.BudgetRemaining, true),
			burnCell(o.burn("5m")), burnCell(o.burn("1h")), alertCell(o.Alerts, true))
	}
	line("")
	if d := v.Snap.Gate; d != nil {
		line("gate   may checkout ship a feature now?  %s  (%s)", verdictLabel(d.Decision, true), d.PolicyRule)
		line("       %s", clip(d.reason(), 110))
	} else {
		line("gate   may checkout ship a feature now?  -")
		line("")
	}
	line("")
	line("\x1b[1mevents\x1b[0m")
	evs := v.Events
	if len(evs) > 10 {
		evs = evs[len(evs)-10:]
	}
	for _, e := range evs {
		line("  %5s  %s", clock(e.At), clip(e.Text, 120))
	}
	for range 10 - len(evs) {
		line("")
	}
	if v.Note != "" {
		line("%s", v.Note)
	} else if len(v.Snap.Errs) > 0 {
		line("\x1b[33m%s\x1b[0m", clip(v.Snap.Errs[0].Error(), 120))
	} else {
		line("")
	}
	b.WriteString("\x1b[J")
	io.WriteString(t.w, b.String())
}

func (t *tui) Close() {
	if t.started {
		io.WriteString(t.w, "\x1b[?25h\x1b[?1049l")
		t.started = false
	}
}

// plain writes log lines, for CI and pipes: a progress line per refresh
// and a line per event.
type plain struct{ w io.Writer }

func (p *plain) Frame(v *view) {
	if v.Note != "" {
		fmt.Fprintf(p.w, "%5s   %s\n", clock(v.Elapsed), v.Note)
		return
	}
	var b strings.Builder
	s := v.Snap.Spans
	fmt.Fprintf(&b, "%5s %-8s spans in=%d kept=%d dropped=%d", clock(v.Elapsed), v.Phase, int(s.In), int(s.Kept), int(s.Dropped))
	if d := v.Snap.Gate; d != nil {
		fmt.Fprintf(&b, " | gate feature: %s (%s)", d.Decision, d.PolicyRule)
	}
	b.WriteString(" | budget left, burn 1h/5m:")
	for i := range v.Snap.SLOs {
		o := &v.Snap.SLOs[i]
		fmt.Fprintf(&b, " %s %s %s/%s", o.Name, budgetCell(o.BudgetRemaining, false), burnCell(o.burn("1h")), burnCell(o.burn("5m")))
		if a := alertCell(o.Alerts, false); a != "" {
			fmt.Fprintf(&b, " [%s]", a)
		}
	}
	for _, err := range v.Snap.Errs {
		fmt.Fprintf(&b, " | error: %v", err)
	}
	b.WriteByte('\n')
	io.WriteString(p.w, b.String())
}

func (p *plain) Event(e event) { fmt.Fprintf(p.w, "%5s * %s\n", clock(e.At), e.Text) }

func (p *plain) Close() {}

func phaseLabel(p Phase, color bool) string {
	s := strings.ToUpper(p.String())
	if !color {
		return s
	}
	switch p {
	case Calm:
		return "\x1b[32m" + s + "\x1b[0m"
	case Failure:
		return "\x1b[1;31m" + s + "\x1b[0m"
	case Recovery:
		return "\x1b[33m" + s + "\x1b[0m"
	}
	return s
}

func verdictLabel(v string, color bool) string {
	s := strings.ToUpper(v)
	if !color {
		return s
	}
	switch v {
	case "allow":
		return "\x1b[1;32m" + s + "\x1b[0m"
	case "deny":
		return "\x1b[1;31m" + s + "\x1b[0m"
	case "canary":
		return "\x1b[1;33m" + s + "\x1b[0m"
	}
	return s
}

// budgetCell shows the budget remaining, with a bar on the screen.
func budgetCell(rem *float64, withBar bool) string {
	if rem == nil {
		if withBar {
			return fmt.Sprintf("%s %9s", units.Bar(0, 20, "█", "░"), "no data")
		}
		return "no-data"
	}
	p := fmt.Sprintf("%.1f%%", 100**rem)
	if !withBar {
		return p
	}
	return fmt.Sprintf("%s %9s", units.Bar(*rem, 20, "█", "░"), p)
}

func burnCell(b *float64) string {
	if b == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fx", *b)
}

// alertCell lists an SLO's firing pages by name and counts its tickets.
func alertCell(as []apiAlert, color bool) string {
	var pages []string
	tickets := 0
	for _, a := range as {
		switch {
		case a.State != "firing":
		case a.Severity == "page":
			pages = append(pages, a.Name)
		default:
			tickets++
		}
	}
	s := ""
	if len(pages) > 0 {
		s = "PAGE " + strings.Join(pages, ",")
		if color {
			s = "\x1b[1;31m" + s + "\x1b[0m"
		}
	}
	if tickets > 0 {
		t := fmt.Sprintf("%d ticket", tickets)
		if tickets > 1 {
			t += "s"
		}
		if color {
			t = "\x1b[33m" + t + "\x1b[0m"
		}
		if s != "" {
			s += " + "
		}
		s += t
	}
	return s
}

// pct formats part/whole as a percentage, "-" without a whole.
func pct(part, whole float64) string {
	if whole <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*part/whole)
}

// count formats n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + count(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
