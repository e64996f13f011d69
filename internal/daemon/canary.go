package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

// canaryGate tells the gate whether a version failed as a canary.
type canaryGate struct{ c *canary.Checker }

// CanaryFailed implements gate.CanarySource.
func (g canaryGate) CanaryFailed(service, version string) (bool, string) {
	if res, ok := g.c.Failed(service, version); ok {
		return true, res.Reason
	}
	res, err := g.c.Check(canary.CheckRequest{Service: service, Canary: version})
	if err != nil || res.Verdict.Verdict != canary.Fail {
		return false, ""
	}
	return true, res.Reason
}

// newCanary builds the per-version counts and the canary checker: slow
// requests are those over a service's first latency SLO's threshold, and
// the budget rule uses its first availability SLO's objective.
func newCanary(specs []slo.Spec, policies []gate.PolicySpec) (*canary.Recorder, *canary.Checker) {
	thresholds := map[string]time.Duration{}
	objectives := map[string]float64{}
	for _, s := range specs {
		switch s.SLI.Kind {
		case slo.Latency:
			if _, ok := thresholds[s.Service]; !ok && s.SLI.Threshold > 0 {
				thresholds[s.Service] = s.SLI.Threshold.Std()
			}
		case slo.Availability:
			if _, ok := objectives[s.Service]; !ok {
				objectives[s.Service] = s.Objective
			}
		}
	}
	// The tolerances and the version attribute come from the policies: a
	// service's own, else the default policy's, else the defaults.
	var def canary.Config
	byService := map[string]canary.Config{}
	attrs := map[string]string{}
	for _, p := range policies {
		switch {
		case p.Canary == nil:
		case p.Service == "":
			def = *p.Canary
		default:
			byService[p.Service] = *p.Canary
			attrs[p.Service] = p.Canary.VersionAttribute
		}
	}
	rec := canary.NewRecorder(canary.RecorderConfig{Thresholds: thresholds, VersionAttribute: def.VersionAttribute, VersionAttributes: attrs})
	return rec, canary.NewChecker(rec, def, objectives, nil).WithServiceConfigs(byService)
}

// canarySyncInterval is the least time between two syncs of the canary
// counts with the store.
const canarySyncInterval = 5 * time.Second

// canaryRecent is how far back a sync reads the fleet's counts: the
// minutes peers may still be adding to. Every canaryFullRead a sync reads
// all of canaryRetention instead, for what a peer stored late (after its
// store was unreachable for a while).
const (
	canaryRecent   = 15 * time.Minute
	canaryFullRead = 5 * time.Minute
)

// canaryRetention is how far back the canary counts are kept, in memory
// and in the store (the Recorder's default).
const canaryRetention = 6 * time.Hour

// canarySync keeps the canary counts in the store: every interval it
// writes what this instance counted and reads what the fleet's other
// instances did in the last canaryRecent (all of canaryRetention every
// canaryFullRead), so that every instance judges a canary from all of its
// requests. At start it reads back this instance's own counts.
type canarySync struct {
	rec      *canary.Recorder
	store    canary.Store
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	bg        background
	lastPrune time.Time
	lastFull  time.Time // the last read of all of canaryRetention
}

func newCanarySync(rec *canary.Recorder, st canary.Store, interval time.Duration, log *slog.Logger) *canarySync {
	return &canarySync{rec: rec, store: st, interval: interval, log: log, now: time.Now}
}

// Start loads this instance's stored counts and the fleet's, then runs
// the loop.
func (c *canarySync) Start(ctx context.Context) error {
	if c == nil {
		return nil
	}
	own, peers, err := c.store.CanaryCounts(ctx, c.now().Add(-canaryRetention))
	if err != nil {
		return fmt.Errorf("canary counts: %w", err)
	}
	c.rec.Seed(own)
	c.rec.SetPeers(peers)
	c.lastFull = c.now()
	c.bg.start(c.interval, nil, func(ctx context.Context) {
		if err := c.sync(ctx); err != nil {
			c.log.Warn("canary counts: sync with the store failed; retrying", "err", err)
		}
	})
	return nil
}

// sync writes the counts not stored yet and reads the peers'.
func (c *canarySync) sync(ctx context.Context) error {
	if err := c.flush(ctx); err != nil {
		return err
	}
	now := c.now()
	full := now.Sub(c.lastFull) >= canaryFullRead
	since := now.Add(-canaryRecent)
	if full {
		since = now.Add(-canaryRetention)
	}
	_, peers, err := c.store.CanaryCounts(ctx, since)
	if err != nil {
		return err
	}
	if full {
		c.lastFull = now
		c.rec.SetPeers(peers)
	} else {
		c.rec.MergePeers(peers, since)
	}
	if now.Sub(c.lastPrune) >= 10*time.Minute {
		c.lastPrune = now
		return c.store.PruneCanaryCounts(ctx, now.Add(-canaryRetention))
	}
	return nil
}

func (c *canarySync) flush(ctx context.Context) error {
	rows := c.rec.Unstored()
	if err := c.store.AddCanaryCounts(ctx, rows); err != nil {
		return err
	}
	c.rec.MarkStored(rows)
	return nil
}

// Shutdown stops the loop and stores what is left.
func (c *canarySync) Shutdown(ctx context.Context) error {
	if c == nil {
		return nil
	}
	return c.bg.shutdown(func() error { return c.flush(ctx) })
}
