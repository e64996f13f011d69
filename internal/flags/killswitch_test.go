package flags_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/notify"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
)

// burning is a gate.StateSource whose SLOs page while their service is
// listed in paging.
type burning struct {
	mu     sync.Mutex
	paging map[string]bool
	slos   map[string]string // SLO -> service
}

func (b *burning) set(service string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.paging[service] = on
}

func (b *burning) SLOStates(service string, now time.Time) []gate.SLOState {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []gate.SLOState
	for name, svc := range b.slos {
		if svc != service {
			continue
		}
		st := gate.SLOState{Name: name, Service: svc, Total: 1000, Good: 990, UpdatedAt: now}
		if b.paging[svc] {
			st.AlertsFiring = []gate.FiringAlert{{Name: "page-1h", Severity: gate.SeverityPage, Since: now.Add(-5 * time.Minute)}}
		}
		out = append(out, st)
	}
	return out
}

type events struct {
	mu  sync.Mutex
	got []notify.Event
}

func (e *events) NotifyEvent(ev notify.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		out = append(out, ev.Kind+":"+ev.Subject)
	}
	return out
}

func killFlag(key string, slo string) flags.Config {
	return flags.Config{
		Key: key, Variants: map[string]any{"enabled": true, "disabled": false}, DefaultVariant: "enabled",
		KillSwitch: &flags.KillSwitch{SLOs: []string{slo}, When: gate.Conditions{AlertFiring: gate.SeverityPage}, Variant: "disabled"},
	}
}

type rig struct {
	svc    *flags.Service
	ctl    *flags.Controller
	states *burning
	events *events
	db     *sqlite.DB
}

func newRig(t *testing.T, cfgs []flags.Config, ks flags.KillSwitchConfig) *rig {
	t.Helper()
	db, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := flags.NewService(t.Context(), cfgs, flags.Settings{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{svc: svc, db: db, events: &events{}, states: &burning{paging: map[string]bool{}, slos: map[string]string{
		"checkout-availability": "checkout", "search-availability": "search", "payments-availability": "payments",
	}}}
	r.ctl, err = flags.NewController(svc, ks, flags.ControllerSettings{States: r.states, SLOServices: r.states.slos, Notifier: r.events})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) eval(t *testing.T, now time.Time) []flags.KillAction {
	t.Helper()
	acts, err := r.ctl.Evaluate(t.Context(), now)
	if err != nil {
		t.Fatal(err)
	}
	return acts
}

func (r *rig) served(t *testing.T, key string) any {
	t.Helper()
	res, err := r.svc.Evaluate(key, flags.Context{TargetingKey: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	return res.Value
}

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func TestKillSwitchFlipsAndRestores(t *testing.T) {
	r := newRig(t, []flags.Config{killFlag("recommendations", "checkout-availability")}, flags.KillSwitchConfig{})
	if acts := r.eval(t, t0); len(acts) != 0 {
		t.Fatalf("healthy: %+v, want no action", acts)
	}
	r.states.set("checkout", true)
	acts := r.eval(t, t0.Add(time.Minute))
	if len(acts) != 1 || acts[0].Kind != flags.KillFlip || acts[0].Variant != "disabled" {
		t.Fatalf("paging: %+v, want one flip to disabled", acts)
	}
	if !strings.Contains(acts[0].Reason, "checkout-availability: alert firing: page-1h (page)") {
		t.Errorf("flip reason %q does not name the SLO state that triggered it", acts[0].Reason)
	}
	if v := r.served(t, "recommendations"); v != false {
		t.Errorf("served %v after the flip, want false", v)
	}
	// Still paging: nothing more.
	if acts := r.eval(t, t0.Add(2*time.Minute)); len(acts) != 0 {
		t.Errorf("still paging: %+v, want no action", acts)
	}
	// Clear from minute 3: restored only once clear for 15m (the default).
	r.states.set("checkout", false)
	for _, m := range []int{3, 10, 17} {
		if acts := r.eval(t, t0.Add(time.Duration(m)*time.Minute)); len(acts) != 0 {
			t.Fatalf("clear since minute 3, at minute %d: %+v, want no action yet", m, acts)
		}
	}
	acts = r.eval(t, t0.Add(18*time.Minute))
	if len(acts) != 1 || acts[0].Kind != flags.KillRestore {
		t.Fatalf("clear for 15m: %+v, want a restore", acts)
	}
	if v := r.served(t, "recommendations"); v != true {
		t.Errorf("served %v after the restore, want true", v)
	}
	hs, err := r.svc.History(t.Context(), "recommendations", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].Action != flags.ActionRestore || hs[1].Action != flags.ActionFlip ||
		hs[1].Source != "kill_switch" || hs[1].From != "" || hs[1].To != "disabled" {
		t.Errorf("history = %+v, want the flip (from targeting to disabled, by the kill switch) then the restore", hs)
	}
	if got, want := strings.Join(r.events.kinds(), ","), "flag.flip:recommendations,flag.restore:recommendations"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	rep, err := gate.VerifyAudit(t.Context(), r.db)
	if err != nil || rep.Broken != nil || rep.Rows != 2 {
		t.Errorf("audit: %+v, %v; want the 2 changes, intact", rep, err)
	}
}

func TestKillSwitchDryRunFlipsNothing(t *testing.T) {
	r := newRig(t, []flags.Config{killFlag("recommendations", "checkout-availability")}, flags.KillSwitchConfig{DryRun: true})
	r.states.set("checkout", true)
	acts := r.eval(t, t0)
	if len(acts) != 1 || acts[0].Kind != flags.KillDryRun {
		t.Fatalf("dry run: %+v, want one dry_run action", acts)
	}
	if acts := r.eval(t, t0.Add(time.Minute)); len(acts) != 0 {
		t.Errorf("dry run, still paging: %+v, want it reported once", acts)
	}
	if v := r.served(t, "recommendations"); v != true {
		t.Errorf("dry run served %v, want the unflipped true", v)
	}
	if hs, _ := r.svc.History(t.Context(), "recommendations", 10); len(hs) != 0 {
		t.Errorf("dry run wrote history %+v", hs)
	}
}

func TestKillSwitchHourlyCap(t *testing.T) {
	cfgs := []flags.Config{
		killFlag("a", "checkout-availability"), killFlag("b", "search-availability"), killFlag("c", "payments-availability"),
	}
	r := newRig(t, cfgs, flags.KillSwitchConfig{MaxFlipsPerHour: 2})
	for _, s := range []string{"checkout", "search", "payments"} {
		r.states.set(s, true)
	}
	acts := r.eval(t, t0)
	var kinds []string
	for _, a := range acts {
		kinds = append(kinds, a.Flag+":"+string(a.Kind))
	}
	if got := strings.Join(kinds, ","); got != "a:flip,b:flip,c:capped" {
		t.Fatalf("3 kill switches under a cap of 2: %s, want a and b flipped, c capped", got)
	}
	if v := r.served(t, "c"); v != true {
		t.Errorf("capped flag served %v, want unflipped", v)
	}
	// An hour after the flips, c may flip.
	acts = r.eval(t, t0.Add(61*time.Minute))
	if len(acts) != 1 || acts[0].Flag != "c" || acts[0].Kind != flags.KillFlip {
		t.Errorf("an hour later: %+v, want c flipped", acts)
	}
}

func TestKillSwitchLeavesPeopleAlone(t *testing.T) {
	r := newRig(t, []flags.Config{killFlag("recommendations", "checkout-availability")}, flags.KillSwitchConfig{})
	ctx := context.Background()
	// A person paused the kill switch: nothing flips.
	if _, err := r.svc.Pause(ctx, "recommendations", true, flags.Op{Actor: "alice", Reason: "investigating"}); err != nil {
		t.Fatal(err)
	}
	r.states.set("checkout", true)
	if acts := r.eval(t, t0); len(acts) != 0 {
		t.Errorf("paused: %+v, want no action", acts)
	}
	if _, err := r.svc.Pause(ctx, "recommendations", false, flags.Op{Actor: "alice", Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	// A person forced a variant: the kill switch neither flips it nor
	// restores it.
	if _, err := r.svc.Flip(ctx, "recommendations", "disabled", flags.Op{Actor: "alice", Reason: "by hand"}); err != nil {
		t.Fatal(err)
	}
	r.states.set("checkout", false)
	for m := range 30 {
		if acts := r.eval(t, t0.Add(time.Duration(m)*time.Minute)); len(acts) != 0 {
			t.Fatalf("operator's flip, minute %d: %+v, want no action", m, acts)
		}
	}
	if v := r.served(t, "recommendations"); v != false {
		t.Errorf("served %v, want the operator's false", v)
	}
}

func TestControllerRefusesUnknownSLO(t *testing.T) {
	db, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc, err := flags.NewService(t.Context(), []flags.Config{killFlag("x", "nope")}, flags.Settings{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	_, err = flags.NewController(svc, flags.KillSwitchConfig{}, flags.ControllerSettings{SLOServices: map[string]string{"real": "svc"}})
	if err == nil || !strings.Contains(err.Error(), `flag "x": kill_switch.slos: no SLO is named "nope"`) {
		t.Errorf("unknown SLO: %v", err)
	}
}

// TestKillSwitchTwoInstances runs two instances' services and controllers
// on one store, as a fleet without a leader does: the flag flips once,
// with one history entry and one notification.
func TestKillSwitchTwoInstances(t *testing.T) {
	a := newRig(t, []flags.Config{killFlag("recommendations", "checkout-availability")}, flags.KillSwitchConfig{})
	svcB, err := flags.NewService(t.Context(), []flags.Config{killFlag("recommendations", "checkout-availability")}, flags.Settings{Store: a.db})
	if err != nil {
		t.Fatal(err)
	}
	evB := &events{}
	ctlB, err := flags.NewController(svcB, flags.KillSwitchConfig{}, flags.ControllerSettings{States: a.states, SLOServices: a.states.slos, Notifier: evB})
	if err != nil {
		t.Fatal(err)
	}
	a.states.set("checkout", true)
	// A flips first; B has not refreshed, so its write names a stale
	// version and is refused.
	if acts := a.eval(t, t0); len(acts) != 1 || acts[0].Kind != flags.KillFlip {
		t.Fatalf("instance A: %+v, want a flip", acts)
	}
	actsB, err := ctlB.Evaluate(t.Context(), t0)
	if err != nil || len(actsB) != 0 {
		t.Fatalf("instance B, racing: %+v, %v; want no action and no error", actsB, err)
	}
	if res, _ := svcB.Evaluate("recommendations", flags.Context{TargetingKey: "u"}); res.Value != false {
		t.Errorf("instance B serves %v after losing the race, want the flipped false", res.Value)
	}
	hs, _ := a.svc.History(t.Context(), "recommendations", 10)
	if len(hs) != 1 || len(a.events.kinds())+len(evB.kinds()) != 1 {
		t.Errorf("history %+v, notifications %v + %v; want one of each", hs, a.events.kinds(), evB.kinds())
	}
}
