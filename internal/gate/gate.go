package gate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Settings are what a Gate is built with besides its policies.
type Settings struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are not exported
	// States gives the SLO states of a service; nil behaves as "no SLO
	// defined anywhere" (every check sees missing data).
	States StateSource
	// Store keeps the audit log, overrides and deploy markers; nil keeps
	// them in memory only.
	Store Store
	// History gives past SLI counts for the risk report's cost of a
	// release; nil leaves that figure out.
	History HistorySource
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Canaries judges the canary of the version a check names; nil skips
	// the rule that denies a version whose canary failed.
	Canaries CanarySource
}

// CanarySource says whether a service's version failed as a canary, and
// why.
type CanarySource interface {
	CanaryFailed(service, version string) (failed bool, reason string)
}

// Gate answers gate checks and keeps their audit log, the overrides and the
// deploy markers. It is safe for concurrent use.
type Gate struct {
	log      *slog.Logger
	states   StateSource
	canaries CanarySource
	store    Store
	history  HistorySource
	now      func() time.Time
	def      *Policy
	policies map[string]*Policy
	metrics  *metrics

	mu sync.RWMutex
	// active caches the overrides that were active when loaded or created;
	// expired ones stop applying by their own ExpiresAt and are dropped
	// on the next write.
	active []Override

	audit auditLog
}

// New compiles the policies and builds a Gate. Call Start before Check to
// load the overrides that survived a restart.
func New(policies []PolicySpec, set Settings) (*Gate, error) {
	if err := ValidatePolicies(policies); err != nil {
		return nil, err
	}
	g := &Gate{
		log:      set.Logger,
		states:   set.States,
		canaries: set.Canaries,
		store:    set.Store,
		history:  set.History,
		now:      set.Now,
		policies: map[string]*Policy{},
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.states == nil {
		g.states = StateFunc(func(string, time.Time) []SLOState { return nil })
	}
	if g.store == nil {
		g.store = NewMemoryStore()
	}
	if g.now == nil {
		g.now = time.Now
	}
	for _, spec := range policies {
		p, err := CompilePolicy(spec)
		if err != nil {
			return nil, err // unreachable after ValidatePolicies, kept for safety
		}
		if spec.Service == "" {
			g.def = p
		} else {
			g.policies[spec.Service] = p
		}
	}
	if g.def == nil {
		g.def, _ = CompilePolicy(PolicySpec{})
	}
	m, err := newMetrics(set.Registerer, g)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	return g, nil
}

// Start loads the overrides active now from the store and starts the audit
// log's writer. It returns quickly. Without Start, audit records are
// written synchronously by Check.
func (g *Gate) Start(ctx context.Context) error {
	os, err := g.store.Overrides(ctx, OverrideQuery{ActiveAt: g.now(), Limit: MaxLimit})
	if err != nil {
		return fmt.Errorf("load gate overrides: %w", err)
	}
	g.mu.Lock()
	g.active = os
	g.mu.Unlock()
	// The writer outlives ctx: it must drain the queue during Shutdown,
	// after the run context is cancelled.
	g.audit.start(context.WithoutCancel(ctx), g)
	return nil
}

// SyncOverrides reloads the active overrides from the store: in a fleet,
// an override created or revoked on another instance takes effect here at
// the next sync. A failed read keeps the overrides known.
func (g *Gate) SyncOverrides(ctx context.Context) error {
	os, err := g.store.Overrides(ctx, OverrideQuery{ActiveAt: g.now(), Limit: MaxLimit})
	if err != nil {
		return fmt.Errorf("reload gate overrides: %w", err)
	}
	g.mu.Lock()
	g.active = os
	g.mu.Unlock()
	return nil
}

// Shutdown writes the queued audit records and stops the writer, within
// ctx. It is idempotent.
func (g *Gate) Shutdown(ctx context.Context) error { return g.audit.stop(ctx) }

// Policy returns the policy that governs service.
func (g *Gate) Policy(service string) *Policy {
	if p, ok := g.policies[service]; ok {
		return p
	}
	return g.def
}

// maxField bounds the free-text fields of requests, which end up in the
// audit log.
const maxField = 512

func checkField(name, v string, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return fmt.Errorf("%w: %s is required", ErrInvalid, name)
	case len(v) > maxField:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, name, maxField)
	}
	return nil
}

func (g *Gate) checkClass(p *Policy, c ChangeClass) error {
	if c == "" {
		return fmt.Errorf("%w: change_class is required (one of %s)", ErrInvalid, classNames(p.Classes()))
	}
	if !p.Knows(c) {
		return fmt.Errorf("%w: unknown change_class %q (one of %s)", ErrInvalid, c, classNames(p.Classes()))
	}
	return nil
}

func classNames(cs []ChangeClass) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// Check decides whether the change may ship and records the decision in
// the audit log, returning only after the record is written. The only
// errors are invalid requests (ErrInvalid): a failure to record is logged,
// counted and said in the decision's reasons, because a rollback must not
// wait for a full disk. After Start, records are queued and group-committed
// by one writer while Check waits for its batch's commit; a full queue
// falls back to writing in line, so none is dropped.
func (g *Gate) Check(ctx context.Context, req CheckRequest) (Decision, error) {
	start := time.Now()
	req.Service = strings.TrimSpace(req.Service)
	for _, f := range []struct {
		name, v  string
		required bool
	}{{"service", req.Service, true}, {"version", req.Version, false}, {"environment", req.Environment, false}, {"requested_by", req.RequestedBy, false}} {
		if err := checkField(f.name, f.v, f.required); err != nil {
			return Decision{}, err
		}
	}
	p := g.Policy(req.Service)
	if err := g.checkClass(p, req.ChangeClass); err != nil {
		return Decision{}, err
	}
	now := g.now()
	states := g.states.SLOStates(req.Service, now)
	g.mu.RLock()
	d := p.Evaluate(req, states, g.active, now)
	g.mu.RUnlock()
	// A version whose canary failed does not ship, whatever the budget
	// or an override says; rolling back is always allowed.
	if g.canaries != nil && req.Version != "" && req.ChangeClass != Rollback {
		if failed, why := g.canaries.CanaryFailed(req.Service, req.Version); failed {
			d.Verdict, d.PolicyRule, d.CanaryWeight = Deny, "canary-failed", 0
			d.Reasons = append([]string{"version " + req.Version + " failed as a canary: " + why}, d.Reasons...)
		}
	}
	d.ID = newID("dec")
	if res := g.audit.enqueue(d); res != nil {
		// Wait for the group commit that holds d: the answer is given
		// only once its audit row is written.
		var err error
		select {
		case err = <-res:
		case <-ctx.Done():
			err = fmt.Errorf("not confirmed before the request ended: %w", context.Cause(ctx))
		}
		if err != nil { // the writer has counted and logged its failures
			d.Reasons = append(d.Reasons, "audit: this decision could not be recorded: "+err.Error())
		}
	} else if err := g.store.AddDecision(ctx, d); err != nil {
		g.metrics.auditFailures.Inc()
		g.log.Error("gate decision not recorded in the audit log", "service", d.Service, "decision", d.Verdict.String(), "err", err)
		d.Reasons = append(d.Reasons, "audit: this decision could not be recorded: "+err.Error())
	}
	g.metrics.checks.WithLabelValues(d.Verdict.String(), string(d.ChangeClass)).Inc()
	g.metrics.checkSeconds.Observe(time.Since(start).Seconds())
	g.log.Debug("gate check", "service", d.Service, "change_class", string(d.ChangeClass), "decision", d.Verdict.String(), "reason", d.PolicyRule)
	return d, nil
}

// Decisions lists the audit log, newest first. It first waits for the
// records of checks that already returned to be written, so a caller sees
// its own decisions.
func (g *Gate) Decisions(ctx context.Context, q DecisionQuery) ([]Decision, error) {
	if err := g.audit.sync(ctx); err != nil {
		return nil, fmt.Errorf("list gate decisions: %w", err)
	}
	q.Limit = EffectiveLimit(q.Limit)
	ds, err := g.store.Decisions(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list gate decisions: %w", err)
	}
	return ds, nil
}

// OverrideRequest asks for an override.
type OverrideRequest struct {
	Service       string        `json:"service"`
	ChangeClasses []ChangeClass `json:"change_classes"`
	Reason        string        `json:"reason"`
	ApprovedBy    string        `json:"approved_by"`
	ExpiresAt     time.Time     `json:"expires_at"`
	// CreatedBy is the authenticated identity, set by the API.
	CreatedBy string `json:"-"`
}

// CreateOverride records a time-boxed override. It must expire in the
// future and within the service policy's max_override.
func (g *Gate) CreateOverride(ctx context.Context, req OverrideRequest) (Override, error) {
	now := g.now()
	req.Service = strings.TrimSpace(req.Service)
	for _, f := range []struct{ name, v string }{{"service", req.Service}, {"reason", req.Reason}, {"approved_by", req.ApprovedBy}} {
		if err := checkField(f.name, f.v, true); err != nil {
			return Override{}, err
		}
	}
	p := g.Policy(req.Service)
	if len(req.ChangeClasses) == 0 {
		return Override{}, fmt.Errorf("%w: change_classes must list at least one of %s", ErrInvalid, classNames(p.Classes()))
	}
	classes := []ChangeClass{}
	for _, c := range req.ChangeClasses {
		if err := g.checkClass(p, c); err != nil {
			return Override{}, err
		}
		if !slices.Contains(classes, c) {
			classes = append(classes, c)
		}
	}
	switch {
	case req.ExpiresAt.IsZero():
		return Override{}, fmt.Errorf("%w: expires_at is required: an override is time-boxed", ErrInvalid)
	case !req.ExpiresAt.After(now):
		return Override{}, fmt.Errorf("%w: expires_at %s is not in the future", ErrInvalid, req.ExpiresAt.UTC().Format(time.RFC3339))
	case req.ExpiresAt.Sub(now) > p.MaxOverride():
		return Override{}, fmt.Errorf("%w: expires_at is %s away, beyond the %s policy's max_override of %s",
			ErrInvalid, units.HumanDuration(req.ExpiresAt.Sub(now)), p.Label(), units.HumanDuration(p.MaxOverride()))
	}
	o := Override{
		ID:            newID("ovr"),
		Service:       req.Service,
		ChangeClasses: classes,
		Reason:        req.Reason,
		ApprovedBy:    req.ApprovedBy,
		CreatedBy:     req.CreatedBy,
		CreatedAt:     now,
		ExpiresAt:     req.ExpiresAt,
	}
	if err := g.store.AddOverride(ctx, o); err != nil {
		return Override{}, fmt.Errorf("record override: %w", err)
	}
	g.mu.Lock()
	g.active = append(activeOnly(g.active, now), o)
	g.mu.Unlock()
	g.metrics.overrides.WithLabelValues("created").Inc()
	g.log.Info("gate override created", "service", o.Service, "override", o.ID, "approved_by", o.ApprovedBy,
		"created_by", o.CreatedBy, "expires_at", o.ExpiresAt, "reason", o.Reason)
	o.Status = o.StatusAt(now)
	return o, nil
}

func activeOnly(os []Override, now time.Time) []Override {
	out := make([]Override, 0, len(os)+1)
	for _, o := range os {
		if o.StatusAt(now) == OverrideActive {
			out = append(out, o)
		}
	}
	return out
}

// RevokeOverride ends an override now. Revoking twice is harmless.
func (g *Gate) RevokeOverride(ctx context.Context, id, by string) (Override, error) {
	if err := checkField("id", id, true); err != nil {
		return Override{}, err
	}
	now := g.now()
	o, err := g.store.RevokeOverride(ctx, id, by, now)
	if err != nil {
		return Override{}, fmt.Errorf("revoke override %s: %w", id, err)
	}
	g.mu.Lock()
	kept := g.active[:0:0]
	for _, a := range g.active {
		if a.ID != id && a.StatusAt(now) == OverrideActive {
			kept = append(kept, a)
		}
	}
	g.active = kept
	g.mu.Unlock()
	g.metrics.overrides.WithLabelValues("revoked").Inc()
	g.log.Info("gate override revoked", "service", o.Service, "override", o.ID, "revoked_by", by)
	o.Status = o.StatusAt(now)
	return o, nil
}

// Overrides lists overrides, newest first, each with its status now; with
// q.ActiveOnly only those active now.
func (g *Gate) Overrides(ctx context.Context, q OverrideQuery) ([]Override, error) {
	now := g.now()
	q.Limit = EffectiveLimit(q.Limit)
	if q.ActiveOnly && q.ActiveAt.IsZero() {
		q.ActiveAt = now
	}
	os, err := g.store.Overrides(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list overrides: %w", err)
	}
	for i := range os {
		os[i].Status = os[i].StatusAt(now)
	}
	return os, nil
}

// RecordDeploy stores a deploy marker; a zero Time means now.
func (g *Gate) RecordDeploy(ctx context.Context, d Deploy) (Deploy, error) {
	d.Service = strings.TrimSpace(d.Service)
	for _, f := range []struct {
		name, v  string
		required bool
	}{{"service", d.Service, true}, {"version", d.Version, true}, {"environment", d.Environment, false},
		{"deployed_by", d.DeployedBy, false}, {"description", d.Description, false}, {"rollback_command", d.RollbackCommand, false}} {
		if err := checkField(f.name, f.v, f.required); err != nil {
			return Deploy{}, err
		}
	}
	if d.ChangeClass != "" {
		if err := g.checkClass(g.Policy(d.Service), d.ChangeClass); err != nil {
			return Deploy{}, err
		}
	}
	now := g.now()
	if d.Time.IsZero() {
		d.Time = now
	}
	d.ID = newID("dep")
	if err := g.store.AddDeploy(ctx, d); err != nil {
		return Deploy{}, fmt.Errorf("record deploy: %w", err)
	}
	g.log.Info("deploy recorded", "service", d.Service, "version", d.Version, "time", d.Time)
	return d, nil
}

// Deploys lists deploy markers, oldest first.
func (g *Gate) Deploys(ctx context.Context, q DeployQuery) ([]Deploy, error) {
	ds, err := g.store.Deploys(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list deploys: %w", err)
	}
	return ds, nil
}

// newID returns a random identifier with a prefix, e.g. "ovr_3f9a...".
func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + "_" + hex.EncodeToString(b[:])
}

type metrics struct {
	checks        *prometheus.CounterVec
	checkSeconds  prometheus.Histogram
	auditFailures prometheus.Counter
	overrides     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, g *Gate) (*metrics, error) {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailgate_gate_checks_total",
			Help: "Gate checks answered, by decision and change class.",
		}, []string{"decision", "change_class"}),
		checkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tailgate_gate_check_duration_seconds",
			Help:    "Time to evaluate and record a gate check.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .1},
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tailgate_gate_audit_write_failures_total",
			Help: "Gate decisions that could not be recorded in the audit log.",
		}),
		overrides: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailgate_gate_overrides_total",
			Help: "Gate overrides created and revoked.",
		}, []string{"action"}),
	}
	if reg == nil {
		return m, nil
	}
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tailgate_gate_overrides_active",
		Help: "Gate overrides in force now.",
	}, func() float64 {
		now := g.now()
		g.mu.RLock()
		defer g.mu.RUnlock()
		n := 0
		for i := range g.active {
			if g.active[i].ActiveAt(now) {
				n++
			}
		}
		return float64(n)
	})
	for _, c := range []prometheus.Collector{m.checks, m.checkSeconds, m.auditFailures, m.overrides, active} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register gate metrics: %w", err)
		}
	}
	return m, nil
}
