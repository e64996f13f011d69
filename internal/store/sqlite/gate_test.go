package sqlite

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/gate"
)

// openGate opens a store with the gate's tables, whether or not db.go
// lists gateSchema yet (applying it twice is harmless).
func openGate(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range gateSchema {
		if _, err := db.db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

var g0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestGateDecisions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db := openGate(t, dir)
	ctx := t.Context()
	budget, burn, was := 0.42, 1.5, gate.Deny
	mk := func(id, service string, at time.Duration, v gate.Verdict) gate.Decision {
		return gate.Decision{
			ID: id, Service: service, ChangeClass: gate.Feature, Version: "v1", Environment: "prod", RequestedBy: "ci", Principal: "tok",
			Verdict: v, Reasons: []string{"because"}, PolicyRule: "r", Policy: "default", StaleData: true,
			SLOs:        []gate.SLOSummary{{Name: "a", Objective: 99.9, Window: "30d", BudgetRemaining: &budget, BurnRates: map[string]*float64{"1h": &burn, "5m": nil}, AlertsFiring: []gate.FiringAlert{{Name: "p", Severity: gate.SeverityPage, Since: g0}}, UpdatedAt: g0}},
			EvaluatedAt: g0.Add(at), TTLSeconds: 60,
		}
	}
	withOverride := mk("d3", "checkout", 2*time.Minute, gate.Allow)
	withOverride.Override = &gate.Override{ID: "ovr_1", Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Feature}, Reason: "x", ApprovedBy: "y", CreatedAt: g0, ExpiresAt: g0.Add(time.Hour), Status: gate.OverrideActive}
	withOverride.WithoutOverride = &was
	in := []gate.Decision{mk("d1", "checkout", 0, gate.Deny), mk("d2", "search", time.Minute, gate.Canary), withOverride}
	for _, d := range in {
		if err := db.AddDecision(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AddDecision(ctx, in[0]); err == nil {
		t.Error("duplicate decision ID accepted")
	}
	db.Close()
	db = openGate(t, dir) // the audit log survives a restart
	defer db.Close()

	cases := []struct {
		name string
		q    gate.DecisionQuery
		want []gate.Decision
	}{
		{"all newest first", gate.DecisionQuery{}, []gate.Decision{in[2], in[1], in[0]}},
		{"by service", gate.DecisionQuery{Service: "checkout"}, []gate.Decision{in[2], in[0]}},
		{"from is inclusive", gate.DecisionQuery{From: g0.Add(time.Minute)}, []gate.Decision{in[2], in[1]}},
		{"to is exclusive", gate.DecisionQuery{To: g0.Add(2 * time.Minute)}, []gate.Decision{in[1], in[0]}},
		{"limit", gate.DecisionQuery{Limit: 1}, []gate.Decision{in[2]}},
		{"none", gate.DecisionQuery{Service: "nope"}, []gate.Decision{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Decisions(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestGateOverrides(t *testing.T) {
	db := openGate(t, t.TempDir())
	defer db.Close()
	ctx := t.Context()
	o1 := gate.Override{ID: "ovr_1", Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Feature, gate.Config}, Reason: "launch", ApprovedBy: "cto", CreatedBy: "tok", CreatedAt: g0, ExpiresAt: g0.Add(time.Hour)}
	o2 := gate.Override{ID: "ovr_2", Service: "search", ChangeClasses: []gate.ChangeClass{gate.Feature}, Reason: "r", ApprovedBy: "a", CreatedAt: g0.Add(time.Minute), ExpiresAt: g0.Add(2 * time.Minute)}
	for _, o := range []gate.Override{o1, o2} {
		if err := db.AddOverride(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	revokedAt := g0.Add(30 * time.Minute)
	r, err := db.RevokeOverride(ctx, "ovr_1", "sre", revokedAt)
	if err != nil {
		t.Fatal(err)
	}
	o1r := o1
	o1r.RevokedAt, o1r.RevokedBy = &revokedAt, "sre"
	if diff := cmp.Diff(o1r, r); diff != "" {
		t.Errorf("revoked (-want +got)\n%s", diff)
	}
	// Revoking again keeps the first revocation.
	r, err = db.RevokeOverride(ctx, "ovr_1", "someone-else", revokedAt.Add(time.Minute))
	if err != nil || r.RevokedBy != "sre" || !r.RevokedAt.Equal(revokedAt) {
		t.Errorf("second revoke: %+v %v", r, err)
	}
	if _, err := db.RevokeOverride(ctx, "ovr_x", "sre", revokedAt); !errors.Is(err, gate.ErrNotFound) {
		t.Errorf("unknown override: %v", err)
	}
	cases := []struct {
		name string
		q    gate.OverrideQuery
		want []gate.Override
	}{
		{"all newest first", gate.OverrideQuery{}, []gate.Override{o2, o1r}},
		{"by service", gate.OverrideQuery{Service: "checkout"}, []gate.Override{o1r}},
		{"active before the revocation", gate.OverrideQuery{ActiveAt: g0.Add(90 * time.Second)}, []gate.Override{o2, o1r}},
		{"active after the revocation, o2 expired", gate.OverrideQuery{ActiveAt: g0.Add(30 * time.Minute)}, []gate.Override{}},
		{"expiry instant is not active", gate.OverrideQuery{ActiveAt: g0.Add(2 * time.Minute)}, []gate.Override{o1r}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Overrides(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestGateDeploys(t *testing.T) {
	db := openGate(t, t.TempDir())
	defer db.Close()
	ctx := t.Context()
	var in []gate.Deploy
	for i, svc := range []string{"checkout", "search", "checkout", "checkout"} {
		d := gate.Deploy{ID: string(rune('a' + i)), Service: svc, Version: "v" + string(rune('0'+i)), Time: g0.Add(time.Duration(i) * time.Hour), ChangeClass: gate.Feature, DeployedBy: "ci"}
		in = append(in, d)
		if err := db.AddDeploy(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Deploys(ctx, gate.DeployQuery{Service: "checkout", From: g0, To: g0.Add(3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]gate.Deploy{in[0], in[2]}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	got, _ = db.Deploys(ctx, gate.DeployQuery{Service: "checkout", Limit: 2})
	if diff := cmp.Diff([]gate.Deploy{in[2], in[3]}, got); diff != "" {
		t.Errorf("limit keeps the newest, oldest first (-want +got)\n%s", diff)
	}
}

// TestGateOnSQLite runs the gate over this store end to end: an override
// survives a restart of both.
func TestGateOnSQLite(t *testing.T) {
	dir := t.TempDir()
	db := openGate(t, dir)
	now := g0
	states := gate.StateFunc(func(string, time.Time) []gate.SLOState {
		b := -0.1
		return []gate.SLOState{{Name: "a", Objective: 99, Window: time.Hour, BudgetRemaining: &b, UpdatedAt: now}}
	})
	set := gate.Settings{States: states, Store: db, Now: func() time.Time { return now }}
	g, err := gate.New(nil, set)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.CreateOverride(t.Context(), gate.OverrideRequest{Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Feature}, Reason: "r", ApprovedBy: "a", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openGate(t, dir)
	defer db.Close()
	set.Store = db
	g, _ = gate.New(nil, set)
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	d, err := g.Check(t.Context(), gate.CheckRequest{Service: "checkout", ChangeClass: gate.Feature})
	if err != nil || d.Verdict != gate.Allow || d.PolicyRule != gate.RuleOverride {
		t.Fatalf("after restart: %s %s %v", d.Verdict, d.PolicyRule, err)
	}
	ds, err := g.Decisions(t.Context(), gate.DecisionQuery{Service: "checkout"})
	if err != nil || len(ds) != 1 || ds[0].ID != d.ID || ds[0].Override == nil {
		t.Errorf("audit: %+v %v", ds, err)
	}
}
