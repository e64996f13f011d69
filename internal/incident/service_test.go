package incident_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/notify"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
	"github.com/tailgate-sre/tailgate/internal/units"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

type events struct {
	mu  sync.Mutex
	got []notify.Event
}

func (e *events) NotifyEvent(ev notify.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// update rewrites the golden files.
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func specs() []slo.Spec {
	day30 := units.Duration(30 * 24 * time.Hour)
	return []slo.Spec{
		{Name: "frontend-availability", Service: "frontend", Objective: 99, Window: day30, SLI: slo.SLISpec{Kind: slo.Availability}},
		{Name: "payments-availability", Service: "payments", Objective: 99, Window: day30, SLI: slo.SLISpec{Kind: slo.Availability}},
	}
}

func page(slo_, service string, at time.Time, status slo.AlertState) slo.Notification {
	r := 20.0
	return slo.Notification{
		Alert:  slo.Alert{SLO: slo_, Service: service, Name: "page-1h", Severity: slo.Page},
		Status: status, At: at, BurnRates: map[string]*float64{"5m": &r, "1h": &r},
	}
}

type rig struct {
	svc *incident.Service
	db  *sqlite.DB
	clk *clock
	ev  *events
}

func newRig(t *testing.T, flips []flags.Change) *rig {
	t.Helper()
	db, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{db: db, clk: &clock{t: t0}, ev: &events{}}
	r.svc, err = incident.NewService(incident.DefaultConfig(), incident.Settings{
		Store: db, SLOs: specs(), Buckets: db, Gate: db, Notifier: r.ev, Now: r.clk.Now,
		Flags: func(_ context.Context, from, to time.Time) ([]flags.Change, error) {
			var out []flags.Change
			for _, c := range flips {
				if !c.At.Before(from) && c.At.Before(to) {
					out = append(out, c)
				}
			}
			return out, nil
		},
		Origins: func(_ context.Context, services []string, _, _ time.Time) (string, string, bool) {
			return "payments", "120 of 150 failed requests start in payments: POST /charge (5xx)", true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.svc.Shutdown(context.Background()) })
	return r
}

// flush makes the page loop handle everything queued.
func (r *rig) flush(t *testing.T) {
	t.Helper()
	if err := r.svc.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestIncidentFromPagesToPostmortem(t *testing.T) {
	ctx := t.Context()
	flip := flags.Change{Key: "recommendations", Action: flags.ActionFlip, Actor: "kill-switch", At: t0.Add(3 * time.Minute),
		Source: "kill_switch", To: "disabled", Reason: "kill switch: frontend-availability: alert firing: page-1h (page)"}
	r := newRig(t, []flags.Change{flip})

	// The minute counts the budgets use: 10:00 to 10:10. The failure runs
	// from 10:01 through 10:05 on both SLOs. Written by hand, and the
	// expected totals summed by hand below.
	type m struct{ good, total uint64 }
	frontend := []m{{1000, 1000}, {900, 1000}, {800, 1000}, {850, 1000}, {950, 1000}, {990, 1000}, {1000, 1000}, {1000, 1000}}
	payments := []m{{500, 500}, {400, 500}, {300, 500}, {350, 500}, {450, 500}, {495, 500}, {500, 500}, {500, 500}}
	var bs []slo.Bucket
	for i := range frontend {
		at := t0.Add(time.Duration(i) * time.Minute)
		bs = append(bs, slo.Bucket{SLO: "frontend-availability", Minute: at, Good: frontend[i].good, Total: frontend[i].total},
			slo.Bucket{SLO: "payments-availability", Minute: at, Good: payments[i].good, Total: payments[i].total})
	}
	if err := r.db.AddSLIBuckets(ctx, bs); err != nil {
		t.Fatal(err)
	}
	// Failed: frontend 100+200+150+50+10 = 510 of 8000; payments
	// 100+200+150+50+5 = 505. Budgets over the 30d window (only these
	// minutes): 1% of 8000 = 80 and 1% of 4000 = 40.

	// 10:02 frontend pages: declared. 10:04 payments pages: joins.
	r.svc.Notify(page("frontend-availability", "frontend", t0.Add(2*time.Minute), slo.Firing))
	r.flush(t)
	r.svc.Notify(page("payments-availability", "payments", t0.Add(4*time.Minute), slo.Firing))
	r.flush(t)
	list, err := r.svc.List(ctx, true, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("open incidents: %+v, %v; want one for the cascade", list, err)
	}
	inc := list[0]
	if inc.ID != "INC-1" || inc.Source != "page" || strings.Join(inc.Services, ",") != "frontend,payments" || inc.Origin != "payments" {
		t.Errorf("incident %+v: want INC-1 from the page, frontend and payments, origin payments", inc)
	}

	// Roles, with a handoff.
	r.clk.set(t0.Add(5 * time.Minute))
	if _, err := r.svc.Assign(ctx, "INC-1", incident.Commander, "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Assign(ctx, "INC-1", incident.Comms, "carol", "alice"); err != nil {
		t.Fatal(err)
	}
	r.clk.set(t0.Add(6 * time.Minute))
	if _, err := r.svc.Assign(ctx, "INC-1", incident.Commander, "bob", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Update(ctx, "INC-1", "Checkout is failing for some users; payments rolled back.", "carol"); err != nil {
		t.Fatal(err)
	}
	r.clk.set(t0.Add(7 * time.Minute))
	if err := r.db.AddDeploy(ctx, gate.Deploy{ID: "dep_1", Service: "payments", Version: "2.3.1", ChangeClass: "rollback", Time: t0.Add(5 * time.Minute), DeployedBy: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Mitigate(ctx, "INC-1", "bob", "rollback done"); err != nil {
		t.Fatal(err)
	}
	r.clk.set(t0.Add(7*time.Minute + 30*time.Second))
	if _, err := r.svc.Resolve(ctx, "INC-1", "bob", ""); err != nil {
		t.Fatal(err)
	}

	rep, err := r.svc.Report(ctx, "INC-1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		failed, requests uint64
		consumed         float64
	}{
		"frontend-availability": {510, 7000, 510.0 / 80},
		"payments-availability": {505, 3500, 505.0 / 40},
	}
	for _, im := range rep.Impacts {
		w := want[im.SLO]
		if im.Failed != w.failed || im.Requests != w.requests || abs(im.BudgetConsumed-w.consumed) > 1e-9 || !im.NeedsReview {
			t.Errorf("%s: failed %d of %d, consumed %.4f, review %v; want %d of %d, %.4f, true",
				im.SLO, im.Failed, im.Requests, im.BudgetConsumed, im.NeedsReview, w.failed, w.requests, w.consumed)
		}
		if !im.FirstBad.Equal(t0.Add(time.Minute)) {
			t.Errorf("%s: first bad minute %v, want 10:01", im.SLO, im.FirstBad)
		}
	}
	if rep.Detection != time.Minute {
		t.Errorf("detection %v, want 1m (first bad 10:01, declared 10:02)", rep.Detection)
	}

	var md bytes.Buffer
	if err := r.svc.Postmortem(ctx, "INC-1", &md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"# Post-mortem: INC-1 frontend is paging: frontend-availability",
		"**Roles:** Incident Commander: bob; Communications lead: carol; Operations lead: (unassigned)",
		"| frontend-availability | frontend | 99% | 510 | 7000 | 637.5% | yes |",
		"| payments-availability | payments | 99% | 505 | 3500 | 1262.5% | yes |",
		"needs a post-mortem and a review",
		"incident declared 2026-12-03T10:02:00Z (automatically, from a page, 1m later)",
		"The error origins point at payments as the likely origin.",
		"[role, alice] handoff: alice passes Incident Commander to bob (by alice)",
		"[flag, kill-switch] flag recommendations: flip targeting -> disabled by kill-switch",
		"[deploy, anonymous] deploy: payments 2.3.1 (rollback) by bob",
		"[joined, tailgate] payments joins the incident",
		"[status_update, carol] Checkout is failing for some users; payments rolled back.",
		"[state, bob] state: resolved",
		"Users affected: not counted (set incidents.user_attribute",
		// The rollback and the kill switch's flip are consequences.
		"No deploy of the involved services or flag change in the hour before the first bad minute.",
	} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("post-mortem lacks %q:\n%s", s, md.String())
		}
	}
	// The whole draft, against its golden file (go test -run
	// TestIncidentFromPagesToPostmortem -update writes it; read the diff).
	golden := filepath.Join("testdata", "postmortem.golden.md")
	if *update {
		if err := os.WriteFile(golden, md.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantMD, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(wantMD), md.String()); diff != "" {
		t.Errorf("post-mortem differs from %s (-want +got):\n%s", golden, diff)
	}

	// The Comms lead's update and the declaration reached the notifiers.
	r.ev.mu.Lock()
	var kinds []string
	for _, e := range r.ev.got {
		kinds = append(kinds, e.Kind)
	}
	r.ev.mu.Unlock()
	if got := strings.Join(kinds, ","); got != "incident.declared,incident.update,incident.mitigated,incident.resolved" {
		t.Errorf("events %s", got)
	}
	if rep, err := gate.VerifyAudit(ctx, r.db); err != nil || rep.Broken != nil {
		t.Errorf("audit %+v, %v", rep, err)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestIncidentBadInput(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, nil)
	inc, err := r.svc.Declare(ctx, incident.DeclareRequest{Service: "checkout", Title: "slow checkouts", Commander: "alice"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.svc.Get(ctx, inc.ID)
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"unknown incident", func() error { _, err := r.svc.Mitigate(ctx, "INC-404", "a", ""); return err }, incident.ErrNotFound},
		{"unknown role", func() error {
			_, err := r.svc.Assign(ctx, inc.ID, incident.Role("chef"), "bob", "a")
			return err
		}, incident.ErrInvalid},
		{"same holder", func() error { _, err := r.svc.Assign(ctx, inc.ID, incident.Commander, "alice", "a"); return err }, incident.ErrInvalid},
		{"empty note", func() error { return r.svc.Note(ctx, inc.ID, "  ", "a") }, incident.ErrInvalid},
		{"bad severity", func() error {
			_, err := r.svc.Declare(ctx, incident.DeclareRequest{Service: "x", Title: "t", Severity: "sev9"}, "a")
			return err
		}, incident.ErrInvalid},
		{"no title", func() error { _, err := r.svc.Declare(ctx, incident.DeclareRequest{Service: "x"}, "a"); return err }, incident.ErrInvalid},
	} {
		if err := tc.do(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := r.svc.Resolve(ctx, inc.ID, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Mitigate(ctx, inc.ID, "alice", ""); !errors.Is(err, incident.ErrTransition) {
		t.Errorf("mitigating a resolved incident: %v, want ErrTransition", err)
	}
	if _, err := r.svc.Resolve(ctx, inc.ID, "alice", ""); !errors.Is(err, incident.ErrTransition) {
		t.Errorf("resolving twice: %v, want ErrTransition", err)
	}
	after, _ := r.svc.Get(ctx, inc.ID)
	if len(after.Timeline) != len(before.Timeline)+1 || after.Version != before.Version+1 {
		t.Errorf("refused changes left a trace: %d entries (was %d), version %d (was %d); want only the resolve",
			len(after.Timeline), len(before.Timeline), after.Version, before.Version)
	}
}
