package flags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/notify"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// KillSwitchConfig is the top-level kill_switches: block, the safety of
// automatic flips.
type KillSwitchConfig struct {
	// MaxFlipsPerHour caps automatic flips (all flags together, counted
	// from the stored history, so a fleet shares the cap); default 10.
	MaxFlipsPerHour int `yaml:"max_flips_per_hour"`
	// DryRun reports what would flip without flipping.
	DryRun bool `yaml:"dry_run"`
	// Paused stops every kill switch.
	Paused bool `yaml:"paused"`
}

// Validate checks the block.
func (c KillSwitchConfig) Validate() error {
	if c.MaxFlipsPerHour < 0 {
		return fmt.Errorf("max_flips_per_hour: must not be negative, got %d", c.MaxFlipsPerHour)
	}
	return nil
}

// Defaults of kill switches.
const (
	DefaultMaxFlipsPerHour = 10
	DefaultRecoverFor      = 15 * time.Minute
)

// Notifier sends events; *notify.Notifiers implements it.
type Notifier interface {
	NotifyEvent(e notify.Event)
}

// ControllerSettings are a Controller's dependencies.
type ControllerSettings struct {
	Logger *slog.Logger
	// States gives the SLO states, as the gate reads them.
	States gate.StateSource
	// SLOServices maps every SLO's name to its service.
	SLOServices map[string]string
	Notifier    Notifier // nil: no notifications
	Registerer  prometheus.Registerer
	// Leader, when set, says whether this instance is the fleet's
	// leader; Run evaluates the kill switches on the leader only, so a
	// fleet flips each flag once. nil: always.
	Leader func() bool
}

// Controller runs the kill switches: each Evaluate checks every kill
// switch's condition and flips or restores its flag.
type Controller struct {
	svc    *Service
	cfg    KillSwitchConfig
	log    *slog.Logger
	states gate.StateSource
	slos   map[string]string
	notify Notifier
	m      *prometheus.CounterVec
	leader func() bool

	// clearSince is when each flipped flag's condition was first seen
	// clear; dryRun marks flags whose would-be flip was already reported.
	clearSince map[string]time.Time
	dryRun     map[string]bool
	capped     bool
}

// ActionKind is what a kill switch did.
type ActionKind string

// The kill-switch actions.
const (
	KillFlip    ActionKind = "flip"
	KillRestore ActionKind = "restore"
	KillDryRun  ActionKind = "dry_run" // would have flipped
	KillCapped  ActionKind = "capped"  // would have flipped, over the hourly cap
)

// KillAction is one thing a kill switch did (or would have done).
type KillAction struct {
	Flag    string     `json:"flag"`
	Kind    ActionKind `json:"kind"`
	Variant string     `json:"variant,omitempty"`
	Reason  string     `json:"reason"`
}

// NewController checks the kill switches against the known SLOs.
func NewController(svc *Service, cfg KillSwitchConfig, set ControllerSettings) (*Controller, error) {
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxFlipsPerHour == 0 {
		cfg.MaxFlipsPerHour = DefaultMaxFlipsPerHour
	}
	c := &Controller{svc: svc, cfg: cfg, log: set.Logger, states: set.States, slos: set.SLOServices, notify: set.Notifier, leader: set.Leader,
		clearSince: map[string]time.Time{}, dryRun: map[string]bool{},
		m: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailgate_kill_switch_actions_total",
			Help: "Kill-switch actions by flag and kind: flip, restore, dry_run (would have flipped) and capped (would have flipped, over max_flips_per_hour).",
		}, []string{"flag", "kind"})}
	var errs []error
	for _, key := range svc.order {
		ks := svc.config[key].cfg.KillSwitch
		if ks == nil {
			continue
		}
		for _, name := range ks.SLOs {
			if _, ok := c.slos[name]; !ok {
				errs = append(errs, fmt.Errorf("flag %q: kill_switch.slos: no SLO is named %q", key, name))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if set.Registerer != nil {
		if err := set.Registerer.Register(c.m); err != nil {
			return nil, fmt.Errorf("register kill-switch metrics: %w", err)
		}
	}
	return c, nil
}

// Run evaluates every interval until ctx is done.
func (c *Controller) Run(ctx context.Context, interval time.Duration, now func() time.Time) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.leader != nil && !c.leader() {
				continue
			}
			if _, err := c.Evaluate(ctx, now()); err != nil && ctx.Err() == nil {
				c.log.Error("kill switches", "err", err)
			}
		}
	}
}

// Evaluate checks every kill switch at now and acts. It returns what it
// did; an error means a flip or restore could not be stored (it is tried
// again at the next evaluation).
func (c *Controller) Evaluate(ctx context.Context, now time.Time) ([]KillAction, error) {
	if c.cfg.Paused {
		return nil, nil
	}
	var acts []KillAction
	var errs []error
	for _, key := range c.svc.order {
		ks := c.svc.config[key].cfg.KillSwitch
		if ks == nil {
			continue
		}
		v, ok := c.svc.Get(key)
		if !ok || v.State.Paused {
			continue
		}
		facts, holds := c.condition(ks, now)
		act, err := c.step(ctx, key, ks, v.State, facts, holds, now)
		if err != nil {
			errs = append(errs, err)
		}
		if act != nil {
			c.m.WithLabelValues(key, string(act.Kind)).Inc()
			acts = append(acts, *act)
		}
	}
	return acts, errors.Join(errs...)
}

// condition evaluates a kill switch's condition over its SLOs' states: it
// holds when it holds for one of them. States without data never hold.
func (c *Controller) condition(ks *KillSwitch, now time.Time) ([]string, bool) {
	services := map[string][]string{} // service -> SLO names; nil = all
	if ks.Service != "" {
		services[ks.Service] = nil
	}
	for _, name := range ks.SLOs {
		services[c.slos[name]] = append(services[c.slos[name]], name)
	}
	var facts []string
	for svc, names := range services {
		for _, st := range c.states.SLOStates(svc, now) {
			if names != nil && !slices.Contains(names, st.Name) && ks.Service != svc {
				continue
			}
			if st.UpdatedAt.IsZero() || st.Total == 0 {
				continue
			}
			if f, ok := ks.When.Holds(&st); ok {
				facts = append(facts, f...)
			}
		}
	}
	slices.Sort(facts)
	return facts, len(facts) > 0
}

func (c *Controller) step(ctx context.Context, key string, ks *KillSwitch, st State, facts []string, holds bool, now time.Time) (*KillAction, error) {
	op := Op{Actor: "kill-switch", Source: "kill_switch", At: now}
	if holds {
		delete(c.clearSince, key)
		if st.Forced != nil {
			return nil, nil // already flipped (by us, or by a person, who wins)
		}
		reason := "kill switch: " + strings.Join(facts, "; ")
		if c.cfg.DryRun {
			if c.dryRun[key] {
				return nil, nil
			}
			c.dryRun[key] = true
			c.log.Warn("kill switch would flip (dry_run)", "flag", key, "variant", ks.Variant, "reason", reason)
			c.event("flag.dry_run", key, fmt.Sprintf("DRY RUN: kill switch would flip flag %s to %s. %s", key, ks.Variant, reason), now)
			return &KillAction{Flag: key, Kind: KillDryRun, Variant: ks.Variant, Reason: reason}, nil
		}
		n, err := c.recentFlips(ctx, now)
		if err != nil {
			return nil, err
		}
		if n >= c.cfg.MaxFlipsPerHour {
			if !c.capped {
				c.capped = true
				c.log.Error("kill switch held back: max_flips_per_hour reached", "flag", key, "flips_last_hour", n, "max", c.cfg.MaxFlipsPerHour)
				c.event("flag.capped", key, fmt.Sprintf("Kill switch for flag %s did NOT flip: %d automatic flips in the last hour reached kill_switches.max_flips_per_hour (%d). %s",
					key, n, c.cfg.MaxFlipsPerHour, reason), now)
			}
			return &KillAction{Flag: key, Kind: KillCapped, Variant: ks.Variant, Reason: reason}, nil
		}
		c.capped = false
		op.Reason = reason
		if _, err := c.svc.Flip(ctx, key, ks.Variant, op); err != nil {
			if errors.Is(err, ErrConflict) {
				return nil, nil // another instance changed the flag first
			}
			return nil, err
		}
		c.log.Warn("kill switch flipped a flag", "flag", key, "variant", ks.Variant, "reason", reason)
		c.event("flag.flip", key, fmt.Sprintf("Kill switch flipped flag %s to %s. %s", key, ks.Variant, reason), now)
		return &KillAction{Flag: key, Kind: KillFlip, Variant: ks.Variant, Reason: reason}, nil
	}
	delete(c.dryRun, key)
	if st.Forced == nil || st.Forced.By != "kill_switch" || ks.Restore == "manual" {
		return nil, nil
	}
	since, ok := c.clearSince[key]
	if !ok {
		c.clearSince[key] = now
		since = now
	}
	recoverFor := ks.RecoverFor.Std()
	if recoverFor == 0 {
		recoverFor = DefaultRecoverFor
	}
	if now.Sub(since) < recoverFor {
		return nil, nil
	}
	op.Reason = fmt.Sprintf("kill switch: the condition has been clear for %s (recover_for %s)", units.HumanDuration(now.Sub(since)), units.FormatDuration(recoverFor))
	if _, err := c.svc.Restore(ctx, key, op); err != nil {
		if errors.Is(err, ErrConflict) {
			return nil, nil // another instance changed the flag first
		}
		return nil, err
	}
	delete(c.clearSince, key)
	c.log.Info("kill switch restored a flag", "flag", key, "reason", op.Reason)
	c.event("flag.restore", key, fmt.Sprintf("Kill switch restored flag %s: %s", key, op.Reason), now)
	return &KillAction{Flag: key, Kind: KillRestore, Reason: op.Reason}, nil
}

// recentFlips counts the automatic flips of the last hour, from the
// stored history so that every instance of a fleet counts the same.
func (c *Controller) recentFlips(ctx context.Context, now time.Time) (int, error) {
	n := 0
	for _, key := range c.svc.order {
		if c.svc.config[key].cfg.KillSwitch == nil {
			continue
		}
		hs, err := c.svc.store.FlagHistory(ctx, key, c.cfg.MaxFlipsPerHour+1)
		if err != nil {
			return 0, fmt.Errorf("count recent flips: %w", err)
		}
		for _, h := range hs {
			if h.Action == ActionFlip && h.Source == "kill_switch" && now.Sub(h.At) < time.Hour {
				n++
			}
		}
	}
	return n, nil
}

func (c *Controller) event(kind, key, text string, now time.Time) {
	if c.notify == nil {
		return
	}
	c.notify.NotifyEvent(notify.Event{Kind: kind, Subject: key, Text: text, At: now,
		Links: map[string]string{"history": "/api/v1/flags/" + key + "/history"}})
}
