package gate

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixedStates serves states whose UpdatedAt follows the clock, so they
// are always fresh unless a test says otherwise.
type fixedStates struct {
	mu     sync.Mutex
	states map[string][]SLOState
}

func (s *fixedStates) SLOStates(service string, now time.Time) []SLOState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]SLOState(nil), s.states[service]...)
	for i := range out {
		out[i].UpdatedAt = now
	}
	return out
}

func (s *fixedStates) set(service string, st ...SLOState) {
	s.mu.Lock()
	s.states[service] = st
	s.mu.Unlock()
}

func newTestGate(t *testing.T, store Store) (*Gate, *clock, *fixedStates, *prometheus.Registry) {
	t.Helper()
	clk := &clock{t: t0}
	states := &fixedStates{states: map[string][]SLOState{}}
	reg := prometheus.NewRegistry()
	g, err := New(nil, Settings{Registerer: reg, States: states, Store: store, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return g, clk, states, reg
}

func TestGateOverrideLifecycle(t *testing.T) {
	store := NewMemoryStore()
	g, clk, states, reg := newTestGate(t, store)
	ctx := t.Context()
	states.set("checkout", state("checkout-availability", -0.2))

	check := func(class ChangeClass) Decision {
		t.Helper()
		d, err := g.Check(ctx, CheckRequest{Service: "checkout", ChangeClass: class, Version: "v1.2.3", RequestedBy: "pipeline-42", Principal: "ci"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := check(Feature); d.Verdict != Deny {
		t.Fatalf("feature on a spent budget: %s", d.Verdict)
	}
	if d := check(Rollback); d.Verdict != Allow {
		t.Fatalf("rollback on a spent budget: %s", d.Verdict)
	}

	o, err := g.CreateOverride(ctx, OverrideRequest{Service: "checkout", ChangeClasses: []ChangeClass{Feature, Feature}, Reason: "contractual launch", ApprovedBy: "cto", ExpiresAt: t0.Add(2 * time.Hour), CreatedBy: "release-manager"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != OverrideActive || len(o.ChangeClasses) != 1 || o.CreatedAt != t0 || o.CreatedBy != "release-manager" {
		t.Errorf("created override: %+v", o)
	}
	if d := check(Feature); d.Verdict != Allow || d.Override == nil || d.Override.ID != o.ID {
		t.Fatalf("feature with an active override: %s %+v", d.Verdict, d.Override)
	}
	if d := check(Config); d.Verdict != Deny {
		t.Fatalf("config is not covered by the override: %s", d.Verdict)
	}

	// A restart reloads the override from the store. (The listing first
	// lets g's writer catch up, so the two gates' records, all stamped t0,
	// land in check order.)
	if _, err := g.Decisions(ctx, DecisionQuery{}); err != nil {
		t.Fatal(err)
	}
	g2, err := New(nil, Settings{States: states, Store: store, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _ := g2.Check(ctx, CheckRequest{Service: "checkout", ChangeClass: Feature}); d.Verdict != Allow {
		t.Fatalf("after restart the override is lost: %s", d.Verdict)
	}
	if err := g2.Shutdown(ctx); err != nil { // writes its queued audit record
		t.Fatal(err)
	}

	// It stops applying by itself.
	clk.Add(2 * time.Hour)
	if d := check(Feature); d.Verdict != Deny || d.Override != nil {
		t.Fatalf("feature after the override expired: %s %+v", d.Verdict, d.Override)
	}
	if got := metricValue(t, reg, "tailgate_gate_overrides_active"); got != 0 {
		t.Errorf("active overrides gauge = %v after expiry", got)
	}

	// A revoked one stops at once.
	o2, err := g.CreateOverride(ctx, OverrideRequest{Service: "checkout", ChangeClasses: []ChangeClass{Feature}, Reason: "again", ApprovedBy: "cto", ExpiresAt: clk.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if d := check(Feature); d.Verdict != Allow {
		t.Fatalf("second override not applied: %s", d.Verdict)
	}
	clk.Add(time.Minute)
	r, err := g.RevokeOverride(ctx, o2.ID, "sre-oncall")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != OverrideRevoked || r.RevokedBy != "sre-oncall" || r.RevokedAt == nil || !r.RevokedAt.Equal(clk.Now()) {
		t.Errorf("revoked override: %+v", r)
	}
	if d := check(Feature); d.Verdict != Deny {
		t.Fatalf("feature after revocation: %s", d.Verdict)
	}
	if _, err := g.RevokeOverride(ctx, "ovr_nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}

	all, err := g.Overrides(ctx, OverrideQuery{Service: "checkout"})
	if err != nil {
		t.Fatal(err)
	}
	var got []OverrideStatus
	for _, o := range all {
		got = append(got, o.Status)
	}
	if diff := cmp.Diff([]OverrideStatus{OverrideRevoked, OverrideExpired}, got); diff != "" {
		t.Errorf("override statuses (-want +got)\n%s", diff)
	}
	active, _ := g.Overrides(ctx, OverrideQuery{ActiveAt: clk.Now()})
	if len(active) != 0 {
		t.Errorf("active overrides listed: %+v", active)
	}

	// Every check is in the audit log, newest first.
	ds, err := g.Decisions(ctx, DecisionQuery{Service: "checkout"})
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, d := range ds {
		trail = append(trail, string(d.ChangeClass)+":"+d.Verdict.String()+":"+d.PolicyRule)
	}
	wantTrail := []string{
		"feature:deny:budget-exhausted", "feature:allow:override", "feature:deny:budget-exhausted",
		"feature:allow:override", // the restarted gate's check, same store
		"config:deny:budget-exhausted", "feature:allow:override", "rollback:allow:within-budget", "feature:deny:budget-exhausted",
	}
	if diff := cmp.Diff(wantTrail, trail); diff != "" {
		t.Errorf("audit trail (-want +got)\n%s", diff)
	}
	if ds[0].ID == "" || ds[0].Principal != "ci" || ds[0].RequestedBy != "pipeline-42" || ds[0].Version != "v1.2.3" {
		t.Errorf("audit record lacks request details: %+v", ds[0])
	}
	since, _ := g.Decisions(ctx, DecisionQuery{Service: "checkout", From: t0.Add(time.Hour)})
	if len(since) != 3 {
		t.Errorf("decisions from t0+1h: %d, want 3", len(since))
	}
	if two, _ := g.Decisions(ctx, DecisionQuery{Limit: 2}); len(two) != 2 {
		t.Errorf("limit 2 gave %d", len(two))
	}
	// Labels come sorted by name: change_class, decision.
	if got := metricValue(t, reg, "tailgate_gate_checks_total", "feature", "deny"); got != 3 {
		t.Errorf("deny/feature checks = %v, want 3", got)
	}
}

// metricValue reads one series of a registry: the first whose label
// values start with labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i, lp := range m.GetLabel() {
				if i < len(labels) && lp.GetValue() != labels[i] {
					continue series
				}
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%q", name, labels)
	return 0
}

func TestGateInvalidRequests(t *testing.T) {
	g, _, _, _ := newTestGate(t, nil)
	ctx := t.Context()
	cases := []struct {
		name string
		fn   func() error
		want string
	}{
		{"no service", func() error { _, err := g.Check(ctx, CheckRequest{ChangeClass: Feature}); return err }, "service is required"},
		{"no class", func() error { _, err := g.Check(ctx, CheckRequest{Service: "a"}); return err }, "change_class is required (one of config, feature, fix, rollback, security)"},
		{"unknown class", func() error { _, err := g.Check(ctx, CheckRequest{Service: "a", ChangeClass: "yolo"}); return err }, `unknown change_class "yolo"`},
		{"long version", func() error {
			_, err := g.Check(ctx, CheckRequest{Service: "a", ChangeClass: Fix, Version: strings.Repeat("v", 600)})
			return err
		}, "version is longer than 512 bytes"},
		{"override without expiry", func() error {
			_, err := g.CreateOverride(ctx, OverrideRequest{Service: "a", ChangeClasses: []ChangeClass{Feature}, Reason: "r", ApprovedBy: "b"})
			return err
		}, "expires_at is required"},
		{"override in the past", func() error {
			_, err := g.CreateOverride(ctx, OverrideRequest{Service: "a", ChangeClasses: []ChangeClass{Feature}, Reason: "r", ApprovedBy: "b", ExpiresAt: t0})
			return err
		}, "is not in the future"},
		{"override too long", func() error {
			_, err := g.CreateOverride(ctx, OverrideRequest{Service: "a", ChangeClasses: []ChangeClass{Feature}, Reason: "r", ApprovedBy: "b", ExpiresAt: t0.Add(8 * 24 * time.Hour)})
			return err
		}, "beyond the default policy's max_override of 7d"},
		{"override without reason", func() error {
			_, err := g.CreateOverride(ctx, OverrideRequest{Service: "a", ChangeClasses: []ChangeClass{Feature}, ApprovedBy: "b", ExpiresAt: t0.Add(time.Hour)})
			return err
		}, "reason is required"},
		{"override without approver", func() error {
			_, err := g.CreateOverride(ctx, OverrideRequest{Service: "a", ChangeClasses: []ChangeClass{Feature}, Reason: "r", ExpiresAt: t0.Add(time.Hour)})
			return err
		}, "approved_by is required"},
		{"override without classes", func() error {
			_, err := g.CreateOverride(ctx, OverrideRequest{Service: "a", Reason: "r", ApprovedBy: "b", ExpiresAt: t0.Add(time.Hour)})
			return err
		}, "change_classes must list at least one"},
		{"deploy without version", func() error { _, err := g.RecordDeploy(ctx, Deploy{Service: "a"}); return err }, "version is required"},
		{"deploy with unknown class", func() error {
			_, err := g.RecordDeploy(ctx, Deploy{Service: "a", Version: "1", ChangeClass: "zzz"})
			return err
		}, `unknown change_class "zzz"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fn()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

type failingStore struct{ *MemoryStore }

func (failingStore) AddDecision(context.Context, Decision) error { return errors.New("disk full") }

func TestCheckSurvivesAuditFailure(t *testing.T) {
	t.Run("written in line", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		g, err := New(nil, Settings{Registerer: reg, Store: failingStore{NewMemoryStore()}}) // not started: no writer
		if err != nil {
			t.Fatal(err)
		}
		d, err := g.Check(t.Context(), CheckRequest{Service: "checkout", ChangeClass: Rollback})
		if err != nil || d.Verdict != Allow {
			t.Fatalf("got %s, %v", d.Verdict, err)
		}
		if !containsLine(d.Reasons, "audit: this decision could not be recorded: disk full") {
			t.Errorf("reasons do not say the audit failed: %q", d.Reasons)
		}
		if got := metricValue(t, reg, "tailgate_gate_audit_write_failures_total"); got != 1 {
			t.Errorf("audit failures = %v", got)
		}
	})
	t.Run("queued", func(t *testing.T) {
		g, _, states, reg := newTestGate(t, failingStore{NewMemoryStore()})
		states.set("checkout", state("a", 0.9))
		for range 3 {
			if d, err := g.Check(t.Context(), CheckRequest{Service: "checkout", ChangeClass: Rollback}); err != nil || d.Verdict != Allow {
				t.Fatalf("got %s, %v", d.Verdict, err)
			}
		}
		if _, err := g.Decisions(t.Context(), DecisionQuery{}); err != nil { // waits for the writer
			t.Fatal(err)
		}
		if got := metricValue(t, reg, "tailgate_gate_audit_write_failures_total"); got != 3 {
			t.Errorf("audit failures = %v, want 3", got)
		}
	})
}

// failingStore's batch write fails too.
func (failingStore) AddDecisions(context.Context, []Decision) error { return errors.New("disk full") }

// TestAuditQueue checks the queued audit log: every record of many
// concurrent checks is written, a listing sees the checks that returned
// before it, and Shutdown drains the queue.
func TestAuditQueue(t *testing.T) {
	store := NewMemoryStore()
	g, _, states, _ := newTestGate(t, store)
	states.set("checkout", state("a", 0.9))
	const workers, each = 8, 700 // more than the queue holds: some fall back to in-line writes
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := g.Check(context.Background(), CheckRequest{Service: "checkout", ChangeClass: Fix}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ds, err := g.Decisions(t.Context(), DecisionQuery{Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != workers*each {
		t.Errorf("audit log holds %d records, want %d", len(ds), workers*each)
	}
	d, _ := g.Check(t.Context(), CheckRequest{Service: "checkout", ChangeClass: Fix})
	if err := g.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(t.Context()); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	last, _ := store.Decisions(t.Context(), DecisionQuery{Limit: 1})
	if len(last) != 1 || last[0].ID != d.ID {
		t.Errorf("the last check before shutdown was not written")
	}
	// After shutdown checks still answer, writing in line.
	d, _ = g.Check(t.Context(), CheckRequest{Service: "checkout", ChangeClass: Fix})
	last, _ = store.Decisions(t.Context(), DecisionQuery{Limit: 1})
	if last[0].ID != d.ID {
		t.Errorf("a check after shutdown was not written")
	}
}

func TestServicePolicyChosen(t *testing.T) {
	g, err := New([]PolicySpec{
		{Service: "checkout", Rules: []RuleSpec{{Name: "freeze", Decision: Deny, ChangeClasses: []ChangeClass{Feature}, Reason: "holiday freeze"}}},
		{ChangeClasses: []ChangeClass{"data"}},
	}, Settings{States: StateFunc(func(s string, now time.Time) []SLOState {
		return []SLOState{state("x", 0.9, func(st *SLOState) { st.UpdatedAt = now })}
	})})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := g.Check(t.Context(), CheckRequest{Service: "checkout", ChangeClass: Feature})
	if d.Verdict != Deny || d.PolicyRule != "freeze" || d.Policy != "checkout" || d.Reasons[0] != "holiday freeze" {
		t.Errorf("checkout: %s %s %s %q", d.Verdict, d.PolicyRule, d.Policy, d.Reasons)
	}
	d, err = g.Check(t.Context(), CheckRequest{Service: "search", ChangeClass: "data"})
	if err != nil || d.Verdict != Allow || d.Policy != "default" || d.PolicyRule != RuleWithinBudget {
		t.Errorf("search/data under the default policy: %s %s %s %v", d.Verdict, d.Policy, d.PolicyRule, err)
	}
	if m := g.Policy("search").FailMode("data"); m != FailClosed {
		t.Errorf("a declared class fails %s by default, want closed", m)
	}
	if _, err := g.Check(t.Context(), CheckRequest{Service: "checkout", ChangeClass: "data"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("data is not a class of the checkout policy: %v", err)
	}
}
