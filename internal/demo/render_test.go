package demo

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func testView() *view {
	rem, b5, b1 := -0.5, 20.0, 3.0
	return &view{
		URL: "http://127.0.0.1:8080/", Elapsed: 47 * time.Second, Total: 3 * time.Minute,
		Phase: Failure, Frac: 0.4, RPS: 40, Release: "2.4.0",
		Sent: [numClasses]int{OK: 900, Error: 100}, Spans: 6000,
		Snap: snapshot{
			Spans: Counters{In: 6000, Kept: 600, Dropped: 5000, Buffered: 400},
			SLOs: []apiSLO{{Name: "checkout-availability", Objective: 99.5, BudgetRemaining: &rem,
				BurnRates: map[string]*float64{"5m": &b5, "1h": &b1},
				Alerts:    []apiAlert{{Name: "page-1h", Severity: "page", State: "firing"}, {Name: "ticket-1d", Severity: "ticket", State: "firing"}}}},
			Gate: &apiDecision{Decision: "deny", PolicyRule: "page-burn-alert", Reasons: []string{"a page-severity burn-rate alert is firing"}},
		},
		Events: []event{{At: 40 * time.Second, Text: "ALERT page-1h FIRING"}},
	}
}

func TestPlainFrame(t *testing.T) {
	var buf bytes.Buffer
	p := &plain{w: &buf}
	v := testView()
	p.Frame(v)
	p.Event(event{At: 61 * time.Second, Text: "alert resolved"})
	v.Snap.Errs = []error{errors.New("GET /api/v1/slos: refused")}
	v.Snap.Gate = nil
	p.Frame(v)
	want := " 0:47 failure  spans in=6000 kept=600 dropped=5000 | gate feature: deny (page-burn-alert) | budget left, burn 1h/5m: checkout-availability -50.0% 3.0x/20.0x [PAGE page-1h + 1 ticket]\n" +
		" 1:01 * alert resolved\n" +
		" 0:47 failure  spans in=6000 kept=600 dropped=5000 | budget left, burn 1h/5m: checkout-availability -50.0% 3.0x/20.0x [PAGE page-1h + 1 ticket] | error: GET /api/v1/slos: refused\n"
	if buf.String() != want {
		t.Errorf("plain output:\n%s\nwant:\n%s", buf.String(), want)
	}
	if strings.Contains(buf.String(), "\x1b") {
		t.Error("plain output holds escape sequences")
	}
}

func TestTUIFrame(t *testing.T) {
	var buf bytes.Buffer
	s := &tui{w: &buf}
	s.Frame(testView())
	s.Frame(testView())
	s.Close()
	out := buf.String()
	if strings.Count(out, "\x1b[?1049h") != 1 || !strings.HasSuffix(out, "\x1b[?25h\x1b[?1049l") {
		t.Errorf("the screen must enter the alternate screen once and restore it on Close")
	}
	if strings.Count(out, "\x1b[H") != 2 {
		t.Errorf("each frame starts at home: %d", strings.Count(out, "\x1b[H"))
	}
	for _, want := range []string{"FAILURE", "checkout-availability", "-50.0%", "20.0x", "PAGE page-1h", "DENY", "page-burn-alert", "0:40  ALERT page-1h FIRING", "0:47 / 3:00"} {
		if !strings.Contains(out, want) {
			t.Errorf("frame lacks %q", want)
		}
	}
	buf.Reset()
	s.Close() // idempotent
	if buf.Len() != 0 {
		t.Error("a second Close wrote again")
	}
}
