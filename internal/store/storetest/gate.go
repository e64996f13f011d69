package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/gate"
)

func runGate(t *testing.T, open func(t *testing.T) Stores) {
	st := func(t *testing.T) Stores {
		t.Helper()
		s := open(t)
		if s.Gate == nil {
			t.Skip("store has no gate part")
		}
		return s
	}
	t.Run("Decisions", func(t *testing.T) { testDecisions(t, st(t).Gate) })
	t.Run("DecisionLimits", func(t *testing.T) { testDecisionLimits(t, st(t).Gate) })
	t.Run("Overrides", func(t *testing.T) { testOverrides(t, st(t).Gate) })
	t.Run("Deploys", func(t *testing.T) { testDeploys(t, st(t).Gate) })
	t.Run("Concurrent", func(t *testing.T) { testGateConcurrent(t, st(t).Gate) })
	t.Run("Cancelled", func(t *testing.T) { testGateCancelled(t, st(t)) })
	t.Run("Reopen", func(t *testing.T) {
		s := st(t)
		if s.Reopen == nil {
			t.Skip("store keeps nothing across a restart (Reopen is nil)")
		}
		testGateReopen(t, s)
	})
}

// addDecisions stores ds through gate.DecisionBatcher when the store has
// it (the audit writer's path), else one by one.
func addDecisions(t *testing.T, s gate.Store, ds ...gate.Decision) {
	t.Helper()
	if b, ok := s.(gate.DecisionBatcher); ok {
		must(t, b.AddDecisions(t.Context(), ds))
		return
	}
	for _, d := range ds {
		must(t, s.AddDecision(t.Context(), d))
	}
}

func decision(id, service string, at time.Time) gate.Decision {
	return gate.Decision{ID: id, Service: service, ChangeClass: gate.Feature, Verdict: gate.Allow,
		Reasons: []string{"within budget"}, PolicyRule: "within-budget", Policy: "default", EvaluatedAt: at, TTLSeconds: 30}
}

func decisions(t *testing.T, s gate.Store, q gate.DecisionQuery) []gate.Decision {
	t.Helper()
	got, err := s.Decisions(t.Context(), q)
	must(t, err)
	if got == nil {
		t.Errorf("Decisions(%+v) = nil; want an empty slice (the API encodes it as [])", q)
	}
	return got
}

func testDecisions(t *testing.T, s gate.Store) {
	ctx := t.Context()
	if got := decisions(t, s, gate.DecisionQuery{}); len(got) != 0 {
		t.Fatalf("empty store returned %v", got)
	}
	rollback := gate.Allow
	// Stored out of time order, so that "newest first" and the limit are
	// checked against evaluation time, not insertion order.
	d1 := decision("d1", "checkout", base.Add(2*time.Minute))
	d1.Verdict, d1.CanaryWeight, d1.PolicyRule, d1.StaleData = gate.Canary, 12.5, "burning", true
	d1.Reasons = []string{"fast burn", "budget below 50%"}
	d1.Version, d1.Environment, d1.RequestedBy, d1.Principal, d1.Source = "v1.2.3", "prod", "ci", "token:ci", "api"
	d1.Override = &gate.Override{ID: "o1", Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Fix}, Reason: "hotfix",
		ApprovedBy: "lead", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	d1.WithoutOverride = &rollback
	d2 := decision("d2", "checkout", base)
	d3 := decision("d3", "search", base.Add(time.Minute))
	d4 := decision("d4", "checkout", base.Add(2*time.Minute+time.Nanosecond))
	must(t, s.AddDecision(ctx, d1))
	addDecisions(t, s, d2, d3)
	must(t, s.AddDecision(ctx, d4))
	for _, tc := range []struct {
		name string
		q    gate.DecisionQuery
		want []gate.Decision
	}{
		{"all, newest first", gate.DecisionQuery{}, []gate.Decision{d4, d1, d3, d2}},
		{"one service", gate.DecisionQuery{Service: "checkout"}, []gate.Decision{d4, d1, d2}},
		{"from inclusive, to exclusive", gate.DecisionQuery{From: d3.EvaluatedAt, To: d4.EvaluatedAt}, []gate.Decision{d1, d3}},
		{"from only", gate.DecisionQuery{From: d1.EvaluatedAt}, []gate.Decision{d4, d1}},
		{"to only", gate.DecisionQuery{To: d3.EvaluatedAt}, []gate.Decision{d2}},
		{"limit keeps the newest", gate.DecisionQuery{Limit: 2}, []gate.Decision{d4, d1}},
		{"limit with service", gate.DecisionQuery{Service: "checkout", Limit: 1}, []gate.Decision{d4}},
		{"unknown service", gate.DecisionQuery{Service: "nobody"}, []gate.Decision{}},
	} {
		got := decisions(t, s, tc.q)
		if diff := gocmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: Decisions(%+v) (-want +got):\n%s", tc.name, tc.q, diff)
		}
	}
}

func testDecisionLimits(t *testing.T, s gate.Store) {
	const n = gate.DefaultLimit + 5
	ds := make([]gate.Decision, n)
	for i := range ds {
		ds[i] = decision(fmt.Sprintf("d%03d", i), "checkout", base.Add(time.Duration(i)*time.Second))
	}
	addDecisions(t, s, ds...)
	got := decisions(t, s, gate.DecisionQuery{}) // 0: DefaultLimit
	if len(got) != gate.DefaultLimit || got[0].ID != "d104" || got[len(got)-1].ID != "d005" {
		t.Errorf("Decisions with limit 0: %d records from %s to %s; want %d from d104 to d005",
			len(got), got[0].ID, got[len(got)-1].ID, gate.DefaultLimit)
	}
	if got := decisions(t, s, gate.DecisionQuery{Limit: gate.MaxLimit * 2}); len(got) != n {
		t.Errorf("Decisions with a limit over MaxLimit: %d records, want all %d", len(got), n)
	}
}

func overrides(t *testing.T, s gate.Store, q gate.OverrideQuery) []gate.Override {
	t.Helper()
	got, err := s.Overrides(t.Context(), q)
	must(t, err)
	if got == nil {
		t.Errorf("Overrides(%+v) = nil; want an empty slice (the API encodes it as [])", q)
	}
	return got
}

func testOverrides(t *testing.T, s gate.Store) {
	ctx := t.Context()
	if got := overrides(t, s, gate.OverrideQuery{}); len(got) != 0 {
		t.Fatalf("empty store returned %v", got)
	}
	if _, err := s.RevokeOverride(ctx, "nope", "bob", base); !errors.Is(err, gate.ErrNotFound) {
		t.Fatalf("RevokeOverride of an unknown ID: %v, want ErrNotFound", err)
	}
	o1 := gate.Override{ID: "o1", Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Feature}, Reason: "launch",
		ApprovedBy: "vp", CreatedBy: "alice", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	o2 := gate.Override{ID: "o2", Service: "search", ChangeClasses: []gate.ChangeClass{gate.Fix}, Reason: "p0",
		ApprovedBy: "lead", CreatedAt: base.Add(time.Minute), ExpiresAt: base.Add(2 * time.Minute)}
	o3 := gate.Override{ID: "o3", Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Fix, gate.Config}, Reason: "config",
		ApprovedBy: "lead", CreatedAt: base.Add(2 * time.Minute), ExpiresAt: base.Add(time.Hour)}
	// Out of creation order, so that order and limit follow CreatedAt.
	for _, o := range []gate.Override{o3, o1, o2} {
		must(t, s.AddOverride(ctx, o))
	}
	check := func(name string, q gate.OverrideQuery, want ...gate.Override) {
		t.Helper()
		if want == nil {
			want = []gate.Override{}
		}
		if diff := gocmp.Diff(want, overrides(t, s, q)); diff != "" {
			t.Errorf("%s: Overrides(%+v) (-want +got):\n%s", name, q, diff)
		}
	}
	check("all, newest first", gate.OverrideQuery{}, o3, o2, o1)
	check("one service", gate.OverrideQuery{Service: "checkout"}, o3, o1)
	check("limit keeps the newest", gate.OverrideQuery{Limit: 1}, o3)
	// Expiry is exclusive: o2 expires at base+2m and is not active then.
	check("active just before expiry", gate.OverrideQuery{ActiveAt: o2.ExpiresAt.Add(-time.Nanosecond)}, o3, o2, o1)
	check("active at expiry", gate.OverrideQuery{ActiveAt: o2.ExpiresAt}, o3, o1)

	revokeAt := base.Add(10 * time.Minute)
	want1 := o1
	want1.RevokedAt, want1.RevokedBy = &revokeAt, "bob"
	got, err := s.RevokeOverride(ctx, "o1", "bob", revokeAt)
	must(t, err)
	if diff := gocmp.Diff(want1, got); diff != "" {
		t.Errorf("RevokeOverride (-want +got):\n%s", diff)
	}
	// Revoking again changes nothing: the first revocation stands.
	got, err = s.RevokeOverride(ctx, "o1", "carol", revokeAt.Add(time.Minute))
	must(t, err)
	if diff := gocmp.Diff(want1, got); diff != "" {
		t.Errorf("second RevokeOverride (-want +got):\n%s", diff)
	}
	check("after revoke", gate.OverrideQuery{Service: "checkout"}, o3, want1)
	check("active just before revocation", gate.OverrideQuery{ActiveAt: revokeAt.Add(-time.Nanosecond)}, o3, want1)
	check("active at revocation", gate.OverrideQuery{ActiveAt: revokeAt}, o3)
	check("active after every expiry", gate.OverrideQuery{ActiveAt: base.Add(2 * time.Hour)})
}

func deploys(t *testing.T, s gate.Store, q gate.DeployQuery) []gate.Deploy {
	t.Helper()
	got, err := s.Deploys(t.Context(), q)
	must(t, err)
	if got == nil {
		t.Errorf("Deploys(%+v) = nil; want an empty slice (the API encodes it as [])", q)
	}
	return got
}

func testDeploys(t *testing.T, s gate.Store) {
	ctx := t.Context()
	if got := deploys(t, s, gate.DeployQuery{}); len(got) != 0 {
		t.Fatalf("empty store returned %v", got)
	}
	d1 := gate.Deploy{ID: "p1", Service: "checkout", Version: "v1", Environment: "prod", ChangeClass: gate.Feature,
		Time: base, DeployedBy: "ci", Description: "first", Principal: "token:ci", RollbackCommand: "kubectl rollout undo deployment/checkout -n shop"}
	d2 := gate.Deploy{ID: "p2", Service: "checkout", Version: "v2", Time: base.Add(2 * time.Minute)}
	d3 := gate.Deploy{ID: "p3", Service: "search", Version: "v9", ChangeClass: gate.Rollback, Time: base.Add(time.Minute)}
	for _, d := range []gate.Deploy{d2, d1, d3} {
		must(t, s.AddDeploy(ctx, d))
	}
	for _, tc := range []struct {
		name string
		q    gate.DeployQuery
		want []gate.Deploy
	}{
		{"all, oldest first", gate.DeployQuery{}, []gate.Deploy{d1, d3, d2}},
		{"one service", gate.DeployQuery{Service: "checkout"}, []gate.Deploy{d1, d2}},
		{"from inclusive, to exclusive", gate.DeployQuery{From: d3.Time, To: d2.Time}, []gate.Deploy{d3}},
		{"limit keeps the newest, oldest first", gate.DeployQuery{Limit: 2}, []gate.Deploy{d3, d2}},
		{"unknown service", gate.DeployQuery{Service: "nobody"}, []gate.Deploy{}},
	} {
		if diff := gocmp.Diff(tc.want, deploys(t, s, tc.q)); diff != "" {
			t.Errorf("%s: Deploys(%+v) (-want +got):\n%s", tc.name, tc.q, diff)
		}
	}
}

func testGateConcurrent(t *testing.T, s gate.Store) {
	ctx := t.Context()
	var wg sync.WaitGroup
	errCh := make(chan error, 2*concurrentWrites)
	for w := range workers {
		wg.Go(func() {
			for i := range writesPerWorker {
				at := base.Add(time.Duration(w*writesPerWorker+i) * time.Second)
				errCh <- s.AddDecision(ctx, decision(fmt.Sprintf("w%d-%d", w, i), "checkout", at))
				errCh <- s.AddDeploy(ctx, gate.Deploy{ID: fmt.Sprintf("w%d-%d", w, i), Service: "checkout", Version: "v", Time: at})
			}
		})
	}
	wg.Wait()
	close(errCh)
	for err := range errCh {
		must(t, err)
	}
	ids := map[string]bool{}
	for _, d := range decisions(t, s, gate.DecisionQuery{Limit: gate.MaxLimit}) {
		ids[d.ID] = true
	}
	if len(ids) != concurrentWrites {
		t.Errorf("%d distinct decisions after %d concurrent adds", len(ids), concurrentWrites)
	}
	if n := len(deploys(t, s, gate.DeployQuery{Limit: gate.MaxLimit})); n != concurrentWrites {
		t.Errorf("%d deploys after %d concurrent adds", n, concurrentWrites)
	}
}

func testGateCancelled(t *testing.T, st Stores) {
	s := st.Gate
	ctx := cancelled(t)
	err := s.AddDecision(ctx, decision("d1", "checkout", base))
	checkCancelled(t, st, err, func() bool { return len(decisions(t, s, gate.DecisionQuery{})) == 1 })
	err = s.AddOverride(ctx, gate.Override{ID: "o1", Service: "checkout", CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
	checkCancelled(t, st, err, func() bool { return len(overrides(t, s, gate.OverrideQuery{})) == 1 })
	err = s.AddDeploy(ctx, gate.Deploy{ID: "p1", Service: "checkout", Time: base})
	checkCancelled(t, st, err, func() bool { return len(deploys(t, s, gate.DeployQuery{})) == 1 })
	if _, err := s.Decisions(ctx, gate.DecisionQuery{}); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Decisions with a cancelled context: %v does not wrap context.Canceled", err)
	}
}

func testGateReopen(t *testing.T, st Stores) {
	ctx := t.Context()
	d := decision("d1", "checkout", base)
	must(t, st.Gate.AddDecision(ctx, d))
	o := gate.Override{ID: "o1", Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Fix}, Reason: "p0",
		ApprovedBy: "lead", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	must(t, st.Gate.AddOverride(ctx, o))
	revoked, err := st.Gate.RevokeOverride(ctx, "o1", "bob", base.Add(time.Minute))
	must(t, err)
	p := gate.Deploy{ID: "p1", Service: "checkout", Version: "v1", Time: base}
	must(t, st.Gate.AddDeploy(ctx, p))

	s := st.Reopen(t).Gate
	if diff := gocmp.Diff([]gate.Decision{d}, decisions(t, s, gate.DecisionQuery{})); diff != "" {
		t.Errorf("decisions after reopen (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]gate.Override{revoked}, overrides(t, s, gate.OverrideQuery{})); diff != "" {
		t.Errorf("overrides after reopen (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]gate.Deploy{p}, deploys(t, s, gate.DeployQuery{})); diff != "" {
		t.Errorf("deploys after reopen (-want +got):\n%s", diff)
	}
}
