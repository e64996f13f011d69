package storetest

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
)

func runFlags(t *testing.T, open func(t *testing.T) Stores) {
	st := func(t *testing.T) Stores {
		t.Helper()
		s := open(t)
		if s.Flags == nil {
			t.Skip("store keeps no flags")
		}
		return s
	}
	t.Run("States", func(t *testing.T) { testFlagStates(t, st(t)) })
	t.Run("Conflict", func(t *testing.T) { testFlagConflict(t, st(t).Flags) })
	t.Run("History", func(t *testing.T) { testFlagHistory(t, st(t)) })
	t.Run("Definitions", func(t *testing.T) { testFlagDefinitions(t, st(t)) })
	t.Run("ConcurrentFlips", func(t *testing.T) { testFlagConcurrent(t, st(t).Flags) })
	t.Run("Reopen", func(t *testing.T) {
		s := st(t)
		if s.Reopen == nil {
			t.Skip("store keeps nothing across a restart (Reopen is nil)")
		}
		ctx := t.Context()
		want := flags.State{Key: "recs", Forced: &flags.Forced{Variant: "off", By: "kill_switch"}, Paused: true, Version: 1, Since: base}
		if err := s.Flags.SetFlagState(ctx, want, flipChange("recs", "off", base)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Reopen(t).Flags.FlagStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]flags.State{want}, got, instants()); diff != "" {
			t.Errorf("states after a reopen (-want +got):\n%s", diff)
		}
	})
}

// instants compares times as instants, whatever their zone.
func instants() cmp.Option {
	return cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })
}

func flipChange(key, to string, at time.Time) flags.Change {
	return flags.Change{Key: key, Action: flags.ActionFlip, Actor: "alice", At: at, Source: "operator", Reason: "test", To: to}
}

func testFlagStates(t *testing.T, s Stores) {
	ctx := t.Context()
	got, err := s.Flags.FlagStates(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("FlagStates of an empty store = %v, %v; want none", got, err)
	}
	a := flags.State{Key: "a", Forced: &flags.Forced{Variant: "off", By: "operator"}, Version: 1, Since: base}
	b := flags.State{Key: "b", Paused: true, Version: 1, Since: base.Add(time.Minute)}
	for _, st := range []flags.State{b, a} {
		if err := s.Flags.SetFlagState(ctx, st, flipChange(st.Key, "off", st.Since)); err != nil {
			t.Fatalf("SetFlagState(%s): %v", st.Key, err)
		}
	}
	// Restoring a: version 2, nothing forced.
	a2 := flags.State{Key: "a", Version: 2, Since: base.Add(2 * time.Minute)}
	if err := s.Flags.SetFlagState(ctx, a2, flags.Change{Key: "a", Action: flags.ActionRestore, Actor: "bob", At: a2.Since, Source: "operator", From: "off"}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Flags.FlagStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]flags.State{a2, b}, got, instants()); diff != "" {
		t.Errorf("FlagStates, in key order (-want +got):\n%s", diff)
	}
	for _, st := range got {
		if st.Since.Location() != time.UTC {
			t.Errorf("state %s: Since in %v, want UTC", st.Key, st.Since.Location())
		}
	}
	if s.Audit != nil {
		rs, err := s.Audit.AuditRecords(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 3 {
			t.Fatalf("audit rows after 3 flag changes: %d, want 3", len(rs))
		}
		for _, r := range rs {
			if r.Kind != gate.AuditFlagChange {
				t.Errorf("audit row %d kind %q, want %q", r.Seq, r.Kind, gate.AuditFlagChange)
			}
		}
		var last flags.Change
		if err := json.Unmarshal(rs[2].Payload, &last); err != nil {
			t.Fatal(err)
		}
		if last.Key != "a" || last.Action != flags.ActionRestore || last.Actor != "bob" || rs[2].Actor != "bob" {
			t.Errorf("last audit row = %+v (actor %q), want a's restore by bob", last, rs[2].Actor)
		}
		rep, err := gate.VerifyAudit(ctx, s.Audit)
		if err != nil || rep.Broken != nil || rep.Rows != 3 {
			t.Errorf("VerifyAudit = %+v, %v; want 3 intact rows", rep, err)
		}
	}
}

func testFlagConflict(t *testing.T, s flags.Store) {
	ctx := t.Context()
	// The first write must be version 1.
	if err := s.SetFlagState(ctx, flags.State{Key: "a", Version: 2, Since: base}, flipChange("a", "x", base)); !errors.Is(err, flags.ErrConflict) {
		t.Fatalf("first write at version 2: %v, want ErrConflict", err)
	}
	if err := s.SetFlagState(ctx, flags.State{Key: "a", Version: 1, Since: base}, flipChange("a", "x", base)); err != nil {
		t.Fatal(err)
	}
	// A second writer that also read version 0 loses.
	if err := s.SetFlagState(ctx, flags.State{Key: "a", Version: 1, Paused: true, Since: base}, flipChange("a", "y", base)); !errors.Is(err, flags.ErrConflict) {
		t.Fatalf("a second write based on version 0: %v, want ErrConflict", err)
	}
	got, err := s.FlagStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Paused {
		t.Errorf("after a refused write: %+v, want the first write's state", got)
	}
	hs, err := s.FlagHistory(ctx, "a", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].To != "x" {
		t.Errorf("history after a refused write = %+v, want only the flip to x", hs)
	}
}

func testFlagHistory(t *testing.T, s Stores) {
	ctx := t.Context()
	for i := range 5 {
		at := base.Add(time.Duration(i) * time.Minute)
		ch := flipChange("a", string(rune('a'+i)), at)
		if err := s.Flags.SetFlagState(ctx, flags.State{Key: "a", Version: int64(i + 1), Since: at}, ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flags.SetFlagState(ctx, flags.State{Key: "other", Version: 1, Since: base}, flipChange("other", "z", base)); err != nil {
		t.Fatal(err)
	}
	hs, err := s.Flags.FlagHistory(ctx, "a", 3)
	if err != nil {
		t.Fatal(err)
	}
	var tos []string
	for _, h := range hs {
		tos = append(tos, h.To)
		if h.Key != "a" || h.Actor != "alice" || h.Reason != "test" {
			t.Errorf("history entry %+v: want key a, actor alice, reason test", h)
		}
	}
	if diff := cmp.Diff([]string{"e", "d", "c"}, tos); diff != "" {
		t.Errorf("newest 3 changes of a (-want +got):\n%s", diff)
	}
	if hs[0].At.UnixNano() != base.Add(4*time.Minute).UnixNano() {
		t.Errorf("newest change at %v, want %v", hs[0].At, base.Add(4*time.Minute))
	}
	none, err := s.Flags.FlagHistory(ctx, "never", 10)
	if err != nil || len(none) != 0 {
		t.Errorf("history of an unknown flag = %v, %v; want empty", none, err)
	}
}

func testFlagDefinitions(t *testing.T, s Stores) {
	ctx := t.Context()
	c := flags.Config{
		Key: "banner", Description: "the banner",
		Variants:       map[string]any{"on": true, "off": false},
		DefaultVariant: "off",
		Targeting:      []flags.Rule{{Rollout: map[string]float64{"on": 25, "off": 75}}},
	}
	def := flags.Change{Key: "banner", Action: flags.ActionDefine, Actor: "alice", At: base, Source: "operator", Definition: &c}
	if err := s.Flags.PutFlagDefinition(ctx, c, def); err != nil {
		t.Fatal(err)
	}
	c.DefaultVariant = "on" // replace
	if err := s.Flags.PutFlagDefinition(ctx, c, def); err != nil {
		t.Fatal(err)
	}
	got, err := s.Flags.FlagDefinitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]flags.Config{c}, got); diff != "" {
		t.Errorf("definitions (-want +got):\n%s", diff)
	}
	if err := s.Flags.SetFlagState(ctx, flags.State{Key: "banner", Version: 1, Since: base}, flipChange("banner", "on", base)); err != nil {
		t.Fatal(err)
	}
	del := flags.Change{Key: "banner", Action: flags.ActionDelete, Actor: "alice", At: base, Source: "operator"}
	ok, err := s.Flags.DeleteFlagDefinition(ctx, "banner", del)
	if err != nil || !ok {
		t.Fatalf("delete = %v, %v; want true", ok, err)
	}
	if ok, err := s.Flags.DeleteFlagDefinition(ctx, "banner", del); err != nil || ok {
		t.Errorf("second delete = %v, %v; want false", ok, err)
	}
	defs, _ := s.Flags.FlagDefinitions(ctx)
	states, _ := s.Flags.FlagStates(ctx)
	if len(defs) != 0 || len(states) != 0 {
		t.Errorf("after delete: definitions %v, states %v; want none", defs, states)
	}
	hs, err := s.Flags.FlagHistory(ctx, "banner", 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []flags.Action
	for _, h := range hs {
		actions = append(actions, h.Action)
	}
	want := []flags.Action{flags.ActionDelete, flags.ActionFlip, flags.ActionDefine, flags.ActionDefine}
	if diff := cmp.Diff(want, actions); diff != "" {
		t.Errorf("history kept after delete (-want +got):\n%s", diff)
	}
	if hs[3].Definition == nil || hs[3].Definition.Key != "banner" {
		t.Errorf("a define entry keeps its definition; got %+v", hs[3].Definition)
	}
}

// testFlagConcurrent races writers that all read the same version: for
// each version exactly one wins, as two instances flipping at once must.
func testFlagConcurrent(t *testing.T, s flags.Store) {
	ctx := t.Context()
	const versions = 5
	for v := int64(1); v <= versions; v++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for w := range workers {
			wg.Go(func() {
				err := s.SetFlagState(ctx, flags.State{Key: "race", Version: v, Since: base}, flipChange("race", string(rune('a'+w)), base))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, flags.ErrConflict):
					conflicts++
				default:
					t.Errorf("version %d: %v", v, err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || conflicts != workers-1 {
			t.Fatalf("version %d: %d writes won and %d conflicted; want 1 and %d", v, wins, conflicts, workers-1)
		}
	}
	hs, err := s.FlagHistory(ctx, "race", 100)
	if err != nil || len(hs) != versions {
		t.Errorf("history of the race: %d entries, %v; want %d (one per version)", len(hs), err, versions)
	}
}
