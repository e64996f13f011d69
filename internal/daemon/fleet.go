package daemon

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/api"
	"github.com/tailgate-sre/tailgate/internal/store/postgres"
)

// fleet is this instance's part in a fleet on the PostgreSQL store: it
// records a heartbeat and tries (or renews) the leader lock every
// interval. The leader alone evaluates kill switches, stores and sends
// alert notifications (and so declares incidents), rolls up and prunes.
type fleet struct {
	db       *postgres.DB
	lead     *postgres.Leadership
	cell     string
	version  string
	started  time.Time
	interval time.Duration
	log      *slog.Logger
	// flushed returns the time of the last stored flush of counts.
	flushed func() time.Time
	// syncs read, every syncInterval, what other instances changed and
	// this one keeps in memory (the gate's overrides).
	syncs []func(context.Context) error

	leading atomic.Bool
	health  atomic.Value // string: "ok" or the last error talking to the store

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newFleet(db *postgres.DB, cell string, interval time.Duration, flushed func() time.Time, log *slog.Logger, reg prometheus.Registerer) *fleet {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	f := &fleet{db: db, lead: db.Leadership(), cell: cell, version: buildVersion(), started: time.Now().UTC(),
		interval: interval, log: log, flushed: flushed}
	f.health.Store("ok")
	if reg != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tailgate_fleet_leader",
			Help:        "1 while this instance holds the fleet's leader lock (it evaluates kill switches, notifies, rolls up and prunes).",
			ConstLabels: prometheus.Labels{"instance_name": db.Instance(), "cell": cell},
		}, func() float64 {
			if f.leading.Load() {
				return 1
			}
			return 0
		}))
	}
	return f
}

// buildVersion names this build: its module version and VCS revision.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}

// syncInterval is how often an instance reads what the others changed:
// overrides made on one instance take effect on all within it.
const syncInterval = time.Second

// Leader reports whether this instance leads the fleet; a nil fleet (the
// embedded store) always does.
func (f *fleet) Leader() bool { return f == nil || f.leading.Load() }

// Start takes part at once, so that the first evaluations already know
// whether this instance leads, then keeps the heartbeat.
func (f *fleet) Start(ctx context.Context) error {
	if f == nil {
		return nil
	}
	f.tick(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	f.wg.Go(func() {
		t := time.NewTicker(syncInterval)
		defer t.Stop()
		failures := 0
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				for _, sync := range f.syncs {
					ctx, cancel := context.WithTimeout(runCtx, syncInterval)
					err := sync(ctx)
					cancel()
					if err != nil {
						if failures++; failures == 1 || failures%60 == 0 {
							f.log.Warn("reading the fleet's changes failed; retrying", "err", err, "failures", failures)
						}
					}
				}
			}
		}
	})
	f.wg.Go(func() {
		t := time.NewTicker(f.interval)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				f.tick(runCtx)
			}
		}
	})
	return nil
}

func (f *fleet) tick(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, f.interval)
	defer cancel()
	was := f.leading.Load()
	leads, err := f.lead.TryLead(ctx)
	f.leading.Store(leads)
	switch {
	case leads && !was:
		f.log.Info("this instance leads the fleet now", "instance", f.db.Instance(), "cell", f.cell)
	case !leads && was:
		f.log.Warn("this instance no longer leads the fleet", "instance", f.db.Instance(), "err", err)
	}
	health := "ok"
	if err != nil {
		health = err.Error()
	}
	hb := postgres.Member{Cell: f.cell, Version: f.version, Started: f.started, Leader: leads, Health: health}
	if f.flushed != nil {
		hb.FlushedUntil = f.flushed()
	}
	if err := f.db.Heartbeat(ctx, hb); err != nil {
		health = err.Error()
	}
	if prev := f.health.Swap(health); prev != health && health != "ok" {
		f.log.Warn("fleet store unreachable; answering from memory", "err", health)
	}
}

// Shutdown stops the heartbeat and gives the leader lock up, so another
// instance leads at its next try.
func (f *fleet) Shutdown(ctx context.Context) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	cancel := f.cancel
	f.mu.Unlock()
	if cancel != nil {
		cancel()
		f.wg.Wait()
	}
	f.lead.Release()
	f.leading.Store(false)
	hb := postgres.Member{Cell: f.cell, Version: f.version, Started: f.started, Health: "stopped"}
	if f.flushed != nil {
		hb.FlushedUntil = f.flushed()
	}
	if err := f.db.Heartbeat(ctx, hb); err != nil {
		f.log.Warn("last heartbeat", "err", err)
	}
	return nil
}

// degraded returns what is wrong with the fleet store, for /readyz: an
// unreachable store does not make the instance unready (every replica
// would drop out at once), the gate's on-stale policy decides.
func (f *fleet) degraded() []string {
	if f == nil {
		return nil
	}
	if h := f.health.Load().(string); h != "ok" {
		return []string{"fleet store: " + h}
	}
	return nil
}

// Fleet implements api.FleetSource.
func (f *fleet) Fleet(ctx context.Context) (api.Fleet, error) {
	out := api.Fleet{Cell: f.cell, Instance: f.db.Instance(), Store: f.db.Where(), Leader: f.Leader()}
	ms, now, err := f.db.Members(ctx)
	if err != nil {
		return out, err
	}
	out.Now = now
	for _, m := range ms {
		if f.cell != "" && m.Cell != "" && m.Cell != f.cell {
			continue
		}
		fm := api.FleetMember{Instance: m.Instance, Cell: m.Cell, Version: m.Version, Schema: m.Schema, Started: m.Started,
			Heartbeat: m.Heartbeat, HeartbeatAge: now.Sub(m.Heartbeat).Seconds(), Leader: m.Leader, Health: m.Health}
		if !m.FlushedUntil.IsZero() {
			fm.FlushedUntil = m.FlushedUntil
			age := now.Sub(m.FlushedUntil).Seconds()
			fm.FlushAge = &age
		}
		// A member that missed three heartbeats is gone, whatever it said.
		if now.Sub(m.Heartbeat) > 3*f.interval && m.Health != "stopped" {
			fm.Health = "no heartbeat"
			fm.Leader = false
		}
		out.Members = append(out.Members, fm)
	}
	return out, nil
}

// fleetSource returns f as the API's fleet source; nil (not a nil
// pointer in an interface) on the embedded store.
func fleetSource(f *fleet) api.FleetSource {
	if f == nil {
		return nil
	}
	return f
}

func instanceOf(f *fleet) string {
	if f == nil {
		return ""
	}
	return f.db.Instance()
}

// lastFlush is when the SLO engine last stored its counts.
func (d *Daemon) lastFlush() time.Time { return d.slos.LastFlush() }

// cellLabel labels notifications with the cell, when there is one.
func cellLabel(cell string) map[string]string {
	if cell == "" {
		return nil
	}
	return map[string]string{"cell": cell}
}
