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
//
// Holding the lock is not enough to act on it: an instance cut off from
// the database holds it, as far as it knows, until its next renewal fails,
// while the database has already given it to another. So every claim has
// a lease: a leader acts only until a lease after the last heartbeat that
// recorded its claim (a heartbeat it could not record does not extend
// it), and an instance that takes the lock acts only once every other
// recorded claim has run out by the database's clock. Two instances never
// act as the leader at once, as long as their clocks run at the same rate
// over a lease.
type fleet struct {
	db       fleetStore
	lead     leaderLock
	cell     string
	version  string
	started  time.Time
	interval time.Duration
	// lease is how long a recorded claim lets its leader act: two
	// intervals, so that one late heartbeat does not interrupt it.
	lease time.Duration
	now   func() time.Time
	log   *slog.Logger
	// flushed returns the time of the last stored flush of counts.
	flushed func() time.Time
	// syncs read, every syncInterval, what other instances changed and
	// this one keeps in memory (the gate's overrides).
	syncs []func(context.Context) error

	health atomic.Value // string: "ok" or the last error talking to the store

	claimMu sync.Mutex
	claim   claim
	// reported is whether the log last said this instance leads (tick's).
	reported bool

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// claim is this instance's hold on the leader lock as of its last tick.
type claim struct {
	holds bool      // the lock is this instance's
	from  time.Time // it may act from then: earlier leaders' claims have run out
	until time.Time // and until then: a lease after its last recorded heartbeat
}

// acting reports whether c lets its instance act as the leader at now.
func (c claim) acting(now time.Time) bool {
	return c.holds && !now.Before(c.from) && now.Before(c.until)
}

// fleetStore is what the fleet reads and writes in the fleet store
// (*postgres.DB).
type fleetStore interface {
	Heartbeat(ctx context.Context, m postgres.Member) error
	Members(ctx context.Context) ([]postgres.Member, time.Time, error)
	Instance() string
	Where() string
}

// leaderLock is the fleet's leader lock (*postgres.Leadership).
type leaderLock interface {
	TryLead(ctx context.Context, lease time.Duration) (bool, error)
	Renew(ctx context.Context, m postgres.Member) error
	Release()
}

func newFleet(db *postgres.DB, cell string, interval time.Duration, flushed func() time.Time, log *slog.Logger, reg prometheus.Registerer) *fleet {
	return newFleetWith(db, db.Leadership(), time.Now, cell, interval, flushed, log, reg)
}

func newFleetWith(db fleetStore, lead leaderLock, now func() time.Time, cell string, interval time.Duration, flushed func() time.Time, log *slog.Logger, reg prometheus.Registerer) *fleet {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	f := &fleet{db: db, lead: lead, cell: cell, version: buildVersion(), started: now().UTC(),
		interval: interval, lease: 2 * interval, now: now, log: log, flushed: flushed}
	f.health.Store("ok")
	if reg != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tailgate_fleet_leader",
			Help:        "1 while this instance acts as the fleet's leader (it evaluates kill switches, notifies, rolls up and prunes): it holds the leader lock, its claim is recorded and the previous leader's has run out.",
			ConstLabels: prometheus.Labels{"instance_name": db.Instance(), "cell": cell},
		}, func() float64 {
			if f.Leader() {
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

// Leader reports whether this instance acts as the fleet's leader now; a
// nil fleet (the embedded store) always does.
func (f *fleet) Leader() bool {
	if f == nil {
		return true
	}
	f.claimMu.Lock()
	c := f.claim
	f.claimMu.Unlock()
	return c.acting(f.now())
}

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
	f.claimMu.Lock()
	c := f.claim
	f.claimMu.Unlock()

	holds, err := f.lead.TryLead(ctx, f.lease)
	if holds && !c.holds {
		// Read the recorded claims before this instance's own replaces
		// what its row said (it may be a previous run's claim).
		c = claim{holds: true, from: f.takeOver(ctx)}
		if wait := c.from.Sub(f.now()); wait > 0 {
			f.log.Info("took the fleet's leader lock; leading once the previous leader's claim has run out",
				"instance", f.db.Instance(), "cell", f.cell, "in", wait.Round(time.Millisecond))
		}
	}
	if holds {
		// The database stamps the heartbeat after it was sent: a lease
		// counted from the sending ends no later than one counted from
		// the stamp, which is what a successor waits out.
		sent := f.now()
		if err = f.lead.Renew(ctx, f.member("ok")); err == nil {
			c.until = sent.Add(f.lease)
		} else {
			holds = false
		}
	}
	health := "ok"
	if err != nil {
		health = err.Error()
	}
	if !holds {
		c = claim{}
		if herr := f.db.Heartbeat(ctx, f.member(health)); herr != nil && err == nil {
			err, health = herr, herr.Error()
		}
	}
	f.claimMu.Lock()
	f.claim = c
	f.claimMu.Unlock()

	// A claim runs out between ticks too; the log says so at the next.
	switch acting := c.acting(f.now()); {
	case acting && !f.reported:
		f.log.Info("this instance leads the fleet now", "instance", f.db.Instance(), "cell", f.cell)
		f.reported = true
	case !acting && f.reported:
		f.log.Warn("this instance no longer leads the fleet", "instance", f.db.Instance(), "err", err)
		f.reported = false
	}
	if prev := f.health.Swap(health); prev != health && health != "ok" {
		f.log.Warn("fleet store unreachable; answering from memory", "err", health)
	}
}

// member is this instance's heartbeat record with the given health.
func (f *fleet) member(health string) postgres.Member {
	m := postgres.Member{Cell: f.cell, Version: f.version, Started: f.started, Health: health}
	if f.flushed != nil {
		m.FlushedUntil = f.flushed()
	}
	return m
}

// takeOver returns when an instance that has just taken the leader lock
// may act on it: once every leader claim recorded in the fleet store has
// run out, a lease after its heartbeat by the database's clock (its own
// earlier claims included: they may be a previous run's). A member that
// stopped cleanly or never led claims nothing. If the claims cannot be
// read, it waits a whole lease.
func (f *fleet) takeOver(ctx context.Context) time.Time {
	ms, dbNow, err := f.db.Members(ctx)
	now := f.now()
	if err != nil {
		return now.Add(f.lease)
	}
	var wait time.Duration
	for _, m := range ms {
		if m.Leader && m.Health != "stopped" {
			wait = max(wait, m.Heartbeat.Add(f.lease).Sub(dbNow))
		}
	}
	return now.Add(wait)
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
	// Stop acting, record that, then give the lock up: a successor that
	// reads the record takes over at once instead of a lease later.
	f.claimMu.Lock()
	f.claim = claim{}
	f.claimMu.Unlock()
	if err := f.db.Heartbeat(ctx, f.member("stopped")); err != nil {
		f.log.Warn("last heartbeat", "err", err)
	}
	f.lead.Release()
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
