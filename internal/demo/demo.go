package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tailgate-sre/tailgate/internal/daemon"
)

// Options configure a demo run.
type Options struct {
	// API is the listen address of tailgate's API and dashboard.
	API string
	// Schedule is how long each phase lasts.
	Schedule Schedule
	// RPS is the frontend requests per second (each a trace of 2 to 12
	// spans, about 6 on average).
	RPS float64
	// Seed seeds the traffic's randomness; 0 picks one.
	Seed uint64
	// Keep leaves tailgate running after the traffic stops, until ctx
	// ends, and keeps the data directory.
	Keep bool
	// TUI redraws a compact screen in place; otherwise plain log lines.
	TUI bool
	// Override creates a gate override for checkout's features two thirds
	// into the recovery.
	Override bool
	// Refresh is how often the screen is updated (default 1s, 2s plain).
	Refresh time.Duration
	// Out receives the screen and the summary.
	Out io.Writer
	// Model is the synthetic system (default DefaultModel).
	Model *Model
	// OnReady, when set, is called with the API's base URL (ending in /)
	// once tailgate serves, before the traffic starts: a browser test can
	// load the dashboard during the run.
	OnReady func(url string)

	// virtual plays the schedule on a virtual clock (tests): see
	// virtualClock.
	virtual bool
}

// virtualClock is a demo's time in tests. It starts one schedule's length
// in the past (so that spans end no later than tailgate's own now) and
// advances only when the play loop waits, by one tick, with the traffic
// sent from the play loop itself: a run plays its whole schedule as fast
// as tailgate takes the spans, and every request, phase change, deploy
// marker and override lands where the schedule puts it, however loaded
// the machine.
type virtualClock struct{ now time.Time }

func (c *virtualClock) Now() time.Time { return c.now }

func (c *virtualClock) wait(ctx context.Context) bool {
	c.now = c.now.Add(playTick)
	return ctx.Err() == nil
}

// playTick is how often the play loop looks at the schedule.
const playTick = 100 * time.Millisecond

// Run plays the demo: it starts tailgate and the synthetic system, plays
// the schedule (or until ctx ends), shuts everything down and returns the
// summary, which it has also written to o.Out. An error means the demo
// could not run at all.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if err := o.Schedule.Validate(); err != nil {
		return nil, err
	}
	if !(o.RPS > 0) {
		return nil, fmt.Errorf("requests per second: must be positive, got %v", o.RPS)
	}
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
		if o.TUI {
			o.Refresh = time.Second
		}
	}
	if o.Model == nil {
		m := DefaultModel()
		o.Model = &m
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}

	dir, err := os.MkdirTemp("", "tailgate-demo-")
	if err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	keepDir := false
	defer func() {
		if !keepDir {
			os.RemoveAll(dir)
		}
	}()
	yaml := ConfigYAML(dir, o.API)
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), yaml, 0o644); err != nil {
		return nil, fmt.Errorf("write demo config: %w", err)
	}
	cfg, err := Config(dir, o.API)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "tailgate.log"))
	if err != nil {
		return nil, fmt.Errorf("create log file: %w", err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, nil))

	d, err := daemon.New(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("start tailgate: %w", err)
	}
	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout.Std())
		defer cancel()
		return d.Shutdown(sctx)
	}
	if err := d.Start(ctx); err != nil {
		shutdown()
		return nil, fmt.Errorf("start tailgate: %w", err)
	}
	em, err := NewEmitter(ctx, d.GRPCAddr(), o.Model)
	if err != nil {
		shutdown()
		return nil, err
	}

	r := &run{
		o: o, api: newClient("http://" + d.APIAddr()), url: "http://" + d.APIAddr() + "/",
		ledger: NewLedger(), now: time.Now,
	}
	if o.virtual {
		r.clock = &virtualClock{now: time.Now().Add(-o.Schedule.Total())}
		r.now = r.clock.Now
	}
	r.mon = &monitor{api: r.api, gatherer: d.Registry(), now: r.now}
	if o.TUI {
		r.screen = &tui{w: o.Out}
	} else {
		r.screen = &plain{w: o.Out}
		gone := " (removed at exit)"
		if o.Keep {
			gone = ""
		}
		fmt.Fprintf(o.Out, "tailgate demo: tailgate at %s (OTLP gRPC %s), %s, %.0f requests/s; data in %s%s\n",
			r.url, d.GRPCAddr(), o.Schedule, o.RPS, dir, gone)
	}
	if o.OnReady != nil {
		o.OnReady(r.url)
	}
	sum := r.play(ctx, em)

	// Stop the fleet: flush every span it still holds to tailgate.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	if err := em.Shutdown(fctx); err != nil {
		sum.Problems = append(sum.Problems, err.Error())
	}
	cancel()
	// Let the sampler decide the last traces (root grace after their root
	// span) unless interrupted: then the daemon's shutdown decides them.
	if ctx.Err() == nil {
		r.note("traffic stopped; waiting for the sampler to decide the last traces")
		wctx, cancel := context.WithTimeout(ctx, cfg.Sampling.DecisionWait.Std()+5*time.Second)
		if err := waitSettled(wctx, d.Registry()); err != nil && ctx.Err() == nil {
			sum.Problems = append(sum.Problems, err.Error())
		}
		cancel()
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	last := r.mon.poll(pctx)
	cancel()
	r.observe(last, Done)
	sum.Spans = last.Spans
	// The on-call closes the incidents the pages opened, and tailgate
	// drafts their post-mortems.
	for _, id := range r.rec.incOrder {
		in := r.rec.incidents[id]
		if ctx.Err() != nil {
			break
		}
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		impacts, md, err := r.api.closeIncident(ictx, id)
		cancel()
		if err != nil {
			sum.Problems = append(sum.Problems, fmt.Sprintf("close incident %s: %v", id, err))
			continue
		}
		in.Impacts = impacts
		if o.Keep {
			path := filepath.Join(dir, "postmortem-"+id+".md")
			if err := os.WriteFile(path, md, 0o600); err != nil {
				sum.Problems = append(sum.Problems, err.Error())
			} else {
				in.Postmortem = path
			}
		}
		r.note(fmt.Sprintf("incident %s resolved; post-mortem drafted (tailgate incident postmortem %s)", id, id))
	}
	r.screen.Close()

	if !o.Keep {
		if err := shutdown(); err != nil {
			sum.Problems = append(sum.Problems, err.Error())
		}
		r.api.http.CloseIdleConnections()
	}
	kept, err := keptTraces(filepath.Join(dir, ExportFile))
	if err != nil {
		sum.Problems = append(sum.Problems, err.Error())
	}
	sum.tally(r.ledger, kept)
	sum.Alerts = make([]AlertRecord, len(r.rec.alerts))
	for i, a := range r.rec.alerts {
		sum.Alerts[i] = *a
	}
	sum.Gate = r.rec.gate
	for _, f := range r.rec.flips {
		sum.Flips = append(sum.Flips, *f)
	}
	for _, id := range r.rec.incOrder {
		sum.Incidents = append(sum.Incidents, *r.rec.incidents[id])
	}
	sum.Canary = r.can.rec
	if o.Keep {
		keepDir = true
		sum.DataDir = dir
	}
	sum.WriteText(o.Out)

	if o.Keep {
		if ctx.Err() == nil {
			fmt.Fprintf(o.Out, "\ntailgate keeps running at %s (OTLP gRPC %s); Ctrl-C stops it.\n", r.url, d.GRPCAddr())
			<-ctx.Done()
		}
		err := shutdown()
		r.api.http.CloseIdleConnections()
		if err != nil {
			return sum, fmt.Errorf("shut down tailgate: %w", err)
		}
	}
	return sum, nil
}

// run is the state of one demo run.
type run struct {
	o      Options
	now    func() time.Time // the demo's clock: time.Now, or clock's
	clock  *virtualClock    // nil on the wall clock
	api    *client
	mon    *monitor
	url    string
	ledger *Ledger
	screen screen
	rec    *recorder
	start  time.Time
	events []event
	last   snapshot
	phase  Phase
	frac   float64
	// overrideTried is set once the override was created or failed.
	overrideTried bool
	can           canaryRun
}

// play sends the traffic and shows its effects until the schedule is over
// or ctx ends.
func (r *run) play(ctx context.Context, em *Emitter) *Summary {
	o := r.o
	r.start = r.now()
	r.rec = newRecorder(r.start, o.Schedule)
	sum := &Summary{Schedule: o.Schedule, RPS: o.RPS, DashboardURL: r.url}

	t := &Traffic{
		Model: o.Model, Schedule: o.Schedule, RPS: o.RPS, Ledger: r.ledger, Emitter: em,
		Rand:   rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		Canary: r.can.share,
	}
	wait := func(ctx context.Context) bool { return r.clock.wait(ctx) }
	sending := true // virtual clock: the loop sends the traffic
	if r.clock == nil {
		sending = false
		tctx, stopTraffic := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { t.Run(tctx, r.start) })
		defer func() {
			stopTraffic()
			wg.Wait()
		}()
		tick := time.NewTicker(playTick)
		defer tick.Stop()
		wait = func(ctx context.Context) bool {
			select {
			case <-ctx.Done():
				return false
			case <-tick.C:
				return true
			}
		}
	}
	defer func() { sum.Ran = min(r.elapsed(), o.Schedule.Total()) }()

	var lastPoll time.Time
	shown := Phase(-1)
	for {
		if sending {
			sending = t.Send(ctx, r.start, r.now())
		}
		r.phase, r.frac = o.Schedule.At(r.elapsed())
		if r.phase != shown {
			r.enter(ctx, shown, r.phase)
			shown = r.phase
			lastPoll = time.Time{} // show the new phase at once
		}
		if r.phase == Done {
			return sum
		}
		if r.now().Sub(lastPoll) >= o.Refresh {
			lastPoll = r.now()
			s := r.mon.poll(ctx)
			if ctx.Err() != nil {
				sum.Interrupted = true
				return sum
			}
			r.observe(s, r.phase)
		}
		if !wait(ctx) {
			sum.Interrupted = true
			return sum
		}
		if o.Override && r.phase == Recovery && r.frac >= 2.0/3 && !r.overrideTried {
			r.overrideTried = true
			r.override(ctx)
		}
		if r.phase == Recovery && r.frac >= canaryAt && r.can.rec == nil {
			r.startCanary(ctx)
		}
		if r.can.live() && r.now().Sub(r.can.lastCheck) >= canaryCheckEvery {
			r.checkCanary(ctx)
		}
		if r.can.live() && r.can.step+1 < len(o.Model.CanarySteps) && r.now().Sub(r.can.stepStarted) >= time.Duration(canaryStep*float64(o.Schedule.Recovery)) {
			r.stepCanary(ctx)
		}
	}
}

// enter runs what happens when a phase begins: the bad release at the
// failure, its rollback at the recovery, each recorded as a deploy marker.
func (r *run) enter(ctx context.Context, from, to Phase) {
	m := r.o.Model
	switch to {
	case Calm:
		r.event(fmt.Sprintf("phase calm: %s", phaseStory(Calm, m.Stable.Version)))
	case Failure:
		r.event(fmt.Sprintf("phase failure: payments %s deployed; %s", m.Broken.Version, phaseStory(Failure, m.Broken.Version)))
		r.deploy(ctx, m.Broken.Version, "feature", "payments "+m.Broken.Version+": new fraud checks")
	case Recovery:
		if from != Failure {
			r.event(fmt.Sprintf("phase recovery: %s", phaseStory(Recovery, m.Stable.Version)))
			break
		}
		r.event(fmt.Sprintf("phase recovery: payments rolled back to %s (deploy marker: rollback)", m.Stable.Version))
		r.deploy(ctx, m.Stable.Version, "rollback", "roll back payments "+m.Broken.Version+": slow charge query")
	case Done:
		r.event("traffic stopped")
	}
}

func (r *run) deploy(ctx context.Context, version, class, desc string) {
	if err := r.api.recordDeploy(ctx, Payments, version, class, desc); err != nil && !isGone(err) {
		r.event("could not record the deploy marker: " + err.Error())
	}
}

// override approves checkout's feature releases for an hour, as a release
// manager would once the rollback has stopped the bleeding.
func (r *run) override(ctx context.Context) {
	id, err := r.api.createOverride(ctx, r.now())
	if err != nil {
		if !isGone(err) {
			r.event("could not create the override: " + err.Error())
		}
		return
	}
	r.event("override " + id + ": checkout's feature releases approved for 1h (risk accepted after the rollback)")
}

func (r *run) event(text string) {
	e := event{At: r.elapsed(), Text: text}
	r.events = append(r.events, e)
	r.screen.Event(e)
}

// observe records a snapshot and redraws.
func (r *run) observe(s snapshot, p Phase) {
	r.last = s
	for _, e := range r.rec.observe(s, p) {
		r.events = append(r.events, e)
		r.screen.Event(e)
	}
	r.draw("")
}

// elapsed returns the demo's time since the start of the traffic.
func (r *run) elapsed() time.Duration { return r.now().Sub(r.start) }

func (r *run) note(text string) { r.draw(text) }

func (r *run) draw(note string) {
	sent, spans := r.ledger.Sent()
	rel := r.o.Model.Release(r.phase).Version
	r.screen.Frame(&view{
		URL: r.url, Elapsed: min(r.elapsed(), r.o.Schedule.Total()), Total: r.o.Schedule.Total(),
		Phase: r.phase, Frac: r.frac, RPS: r.o.RPS, Release: rel,
		Sent: sent, Spans: spans, Snap: r.last, Events: r.events, Note: note,
	})
}
