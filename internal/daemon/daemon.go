// Package daemon assembles tailgate's components into the running server:
// OTLP ingest feeds the SLI and golden-signal counters and the tail
// sampler, the sampler feeds the exporter, and the HTTP API reads them all.
// It owns the order of start and of graceful shutdown.
package daemon

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tailgate-sre/tailgate/internal/api"
	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/export"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/ingest"
	"github.com/tailgate-sre/tailgate/internal/ingest/kafka"
	"github.com/tailgate-sre/tailgate/internal/memlimit"
	"github.com/tailgate-sre/tailgate/internal/notify"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/sampler"
	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/users"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// DecisionCacheFile is the sampler's decision cache, saved in the storage
// directory on shutdown.
const DecisionCacheFile = "decision-cache.bin"

// Daemon is a running tailgate.
type Daemon struct {
	cfg       config.Config
	log       *slog.Logger
	registry  *prometheus.Registry
	decisions sync.Pool // *decisionScratch

	store     store
	where     string // the store, for logs
	fleet     *fleet // nil on the embedded store
	exporter  *export.Exporter
	sampler   *sampler.Sampler
	slos      *slo.Engine
	notifiers *notify.Notifiers
	signals   *signals.Signals
	receiver  *ingest.Receiver
	kafka     *kafkaSource // nil without ingest.kafka
	gate      *gate.Gate
	flags     *flagRunner
	incidents *incident.Service
	pager     *pager
	counts    *counts // nil without the write-ahead log
	versions  *canary.Recorder
	canary    *canary.Checker
	canaries  *canarySync
	users     *users.Counter // nil without incidents.user_attribute
	incData   *incidentData
	authn     *auth.Authenticator
	tls       *auth.ReloadableTLS

	// listen binds every socket (the API's and, through ingest.Settings,
	// the receivers'); tests replace it before Start to hold the
	// listeners.
	listen func(ctx context.Context, network, address string) (net.Listener, error)

	apiLn  net.Listener
	apiSrv *http.Server
	ready  atomic.Bool

	// serving runs every part that should run until Shutdown (the API
	// server, the OTLP receivers): a member returns nil when Shutdown
	// stopped it and an error when it stopped on its own.
	serving errgroup.Group
	// ingestFailed carries the receivers' first failure to their member
	// of serving; stopped releases that member at Shutdown.
	ingestFailed chan error
	stopped      chan struct{}
	stopOnce     sync.Once

	// failed is closed when a part stops that should run until Shutdown
	// (a listener whose Serve returned); failure says which and why.
	failed   chan struct{}
	failOnce sync.Once
	failure  error
	stopping atomic.Bool
	closed   atomic.Bool // Start failed and cleaned up
}

// New builds every component from cfg. It opens the store but binds no
// socket; Start does.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: log, registry: prometheus.NewRegistry(), pager: &pager{},
		ingestFailed: make(chan error, 1), stopped: make(chan struct{}), failed: make(chan struct{})}
	d.decisions.New = func() any { return new(decisionScratch) }
	var lc net.ListenConfig
	d.listen = lc.Listen
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	specs := cfg.SLOs
	if warnings, _ := slo.ValidateSpecs(specs); len(warnings) > 0 { // errors were reported by config
		for _, w := range warnings {
			log.Warn("slo definition", "warning", w.String())
		}
	}
	if len(cfg.SLOFiles) > 0 {
		more, warnings, err := slo.LoadFiles(cfg.SLOFiles...)
		if err != nil {
			return nil, err
		}
		for _, w := range warnings {
			log.Warn("slo definition", "warning", w.String())
		}
		specs = append(append([]slo.Spec(nil), specs...), more...)
	}

	instance := cfg.Instance
	if instance == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			instance = h
		} else {
			instance = "tailgate"
		}
	}
	st, where, fleetDB, err := openStore(ctx, cfg, instance, log)
	if err != nil {
		return nil, err
	}
	d.store, d.where = st, where
	fail := func(err error) (*Daemon, error) {
		if d.counts != nil {
			d.counts.log.Close()
		}
		d.store.Close()
		return nil, err
	}
	var checkpoint wal.Checkpoint
	if cfg.Storage.WAL.Enabled {
		if d.counts, err = openCounts(cfg, instance, d.store, d.registry, log.With("component", "wal")); err != nil {
			return fail(fmt.Errorf("storage.wal: %w", err))
		}
		checkpoint = d.counts
	}
	if d.exporter, err = export.New(cfg.Export, export.Settings{Logger: log.With("component", "export"), Registerer: d.registry, StorageDir: cfg.Storage.Path}); err != nil {
		return fail(fmt.Errorf("export: %w", err))
	}
	if fleetDB != nil {
		d.fleet = newFleet(fleetDB, cfg.Cell, cfg.Fleet.HeartbeatInterval.Std(), d.lastFlush, log.With("component", "fleet"), d.registry)
	}
	if d.signals, err = signals.New(cfg.Signals, signals.Settings{Logger: log.With("component", "signals"), Registerer: d.registry, Store: d.store,
		Checkpoint: checkpoint, Leader: d.fleet.Leader}); err != nil {
		return fail(fmt.Errorf("signals: %w", err))
	}
	var sourceMarks func() []wal.Mark
	if kc := cfg.Ingest.Kafka; kc != nil {
		d.kafka = newKafkaSource(d, kc, cfg.Sampling.DecisionWait.Std(), d.store, log.With("component", "kafka"))
		sourceMarks = d.kafka.sourceMarks
	}
	if d.notifiers, err = notify.New(cfg.Notify, notify.Settings{Logger: log.With("component", "notify"), Registerer: d.registry}); err != nil {
		return fail(fmt.Errorf("notify: %w", err))
	}
	if d.slos, err = slo.NewEngine(specs, slo.Settings{
		Logger:      log.With("component", "slo"),
		Registerer:  d.registry,
		Store:       d.store,
		Notifiers:   append(d.notifiers.List(), d.pager),
		APIBaseURL:  "http://" + cfg.Server.API,
		Config:      cfg.SLOEngine,
		Checkpoint:  checkpoint,
		SourceMarks: sourceMarks,
		Leader:      d.fleet.Leader,
		Labels:      cellLabel(cfg.Cell),
	}); err != nil {
		return fail(fmt.Errorf("slos: %w", err))
	}
	if d.counts != nil {
		if err := d.counts.replay(ctx, cfg, d.slos, d.signals); err != nil {
			return fail(fmt.Errorf("storage.wal: replay: %w", err))
		}
	}
	if d.sampler, err = sampler.New(cfg.Sampling, sampler.Settings{
		Logger:     log.With("component", "sampler"),
		Registerer: d.registry,
		Exporter:   d.exporter,
		CachePath:  filepath.Join(cfg.Storage.Path, DecisionCacheFile),
		OnDecision: d.onDecision,
	}); err != nil {
		return fail(fmt.Errorf("sampling: %w", err))
	}
	if d.authn, err = auth.New(cfg.Auth, log.With("component", "auth")); err != nil {
		return fail(fmt.Errorf("auth: %w", err))
	}
	if d.tls, err = auth.NewReloadableTLS(cfg.Auth.TLS, time.Now()); err != nil {
		return fail(fmt.Errorf("auth.tls: %w", err))
	}
	d.versions, d.canary = newCanary(specs, cfg.Policies)
	// The fleet's canary counts (and incident data) lag by at most this:
	// Argo Rollouts and Flagger ask every minute or so.
	syncEvery := max(cfg.SLOEngine.FlushInterval.Std(), canarySyncInterval)
	d.canaries = newCanarySync(d.versions, d.store, syncEvery, log.With("component", "canary"))
	if d.gate, err = gate.New(cfg.Policies, gate.Settings{
		Logger:     log.With("component", "gate"),
		Registerer: d.registry,
		States:     gateStates{d.slos},
		Store:      d.store,
		History:    gateHistory{d.store},
		Canaries:   canaryGate{d.canary},
	}); err != nil {
		return fail(fmt.Errorf("policies: %w", err))
	}
	if d.fleet != nil {
		d.fleet.syncs = append(d.fleet.syncs, d.gate.SyncOverrides)
	}
	if d.flags, err = newFlags(ctx, cfg.Flags, cfg.KillSwitches, d.store, specs, d.slos, d.notifiers, d.fleet.Leader,
		cfg.SLOEngine.EvalInterval.Std(), log.With("component", "flags"), d.registry); err != nil {
		return fail(fmt.Errorf("flags: %w", err))
	}
	d.users = users.NewCounter(cfg.Incidents.UserAttribute, usersMemory)
	d.incData = &incidentData{users: d.users, evidence: &incident.Evidence{}, store: d.store,
		interval: syncEvery, log: log.With("component", "incidents")}
	var usersAffected incident.UsersEstimate
	if d.users != nil {
		usersAffected = d.incData.estimate
	}
	if d.incidents, err = newIncidents(cfg.Incidents, cfg.Oncall, d.store, specs, d.slos, d.flags.svc, d.notifiers, usersAffected, log.With("component", "incidents")); err != nil {
		return fail(fmt.Errorf("incidents: %w", err))
	}
	d.pager.svc.Store(d.incidents)
	// The soft memory limit, and refusing requests near it, keep a flood
	// from growing the heap past the container's limit.
	memLimit, err := memlimit.Apply(cfg.Server.MemoryLimit, memlimit.System{
		LookupEnv: os.LookupEnv, FS: os.DirFS("/"), SetMemoryLimit: debug.SetMemoryLimit,
	}, log.With("component", "memlimit"))
	if err != nil {
		log.Warn("no soft memory limit", "err", err)
	}
	var admit func() bool
	if guard := memlimit.NewGuard(memlimit.GuardConfig{Limit: memLimit}); guard != nil {
		admit = guard.Allow
	}
	if d.receiver, err = ingest.New(cfg.Ingest, ingest.Settings{Logger: log.With("component", "ingest"), Registerer: d.registry, Consumer: pipeline{d},
		Admit: admit,
		Auth:  d.authn,
		OnFailure: func(err error) {
			select {
			case d.ingestFailed <- err:
			default: // the first failure is enough
			}
		},
		Listen: func(ctx context.Context, network, address string) (net.Listener, error) {
			return d.listen(ctx, network, address)
		},
	}); err != nil {
		return fail(fmt.Errorf("ingest: %w", err))
	}
	if d.kafka != nil {
		ic := cfg.Ingest
		if d.kafka.intake, err = kafka.New(*ic.Kafka, kafka.Settings{Logger: log.With("component", "kafka"), Registerer: d.registry,
			Handler: d.kafka, Limits: otlp.Limits{MaxAttributes: ic.MaxAttributesPerSpan, MaxSpanBytes: int(ic.MaxSpanSize), MaxSpans: ic.MaxSpansPerRequest},
		}); err != nil {
			return fail(fmt.Errorf("ingest: %w", err))
		}
	}
	return d, nil
}

// pipeline is what the receivers hand every request to.
type pipeline struct{ d *Daemon }

// Consume gives the request to the sampler first: the sampler takes all of
// it or none (backpressure), and only spans it took may be counted, or a
// client's retry would count them twice. SLIs and golden signals then see
// 100% of the accepted spans, whatever the sampler keeps.
func (p pipeline) Consume(ctx context.Context, req *otlp.Request) error {
	if c := p.d.counts; c != nil {
		// Refused before the sampler takes anything: a retry must not
		// find its spans buffered already.
		if c.Full() {
			c.full.Inc()
			return errWALFull{}
		}
		if err := p.d.sampler.Consume(ctx, req); err != nil {
			return err
		}
		if err := c.Count(req); err != nil {
			return err
		}
		p.d.observeVersionsUsers(req, time.Now())
		return nil
	}
	if err := p.d.sampler.Consume(ctx, req); err != nil {
		return err
	}
	now := time.Now()
	p.d.slos.Observe(req, now)
	p.d.signals.Observe(req, now)
	p.d.observeVersionsUsers(req, now)
	return nil
}

// observeVersionsUsers feeds the observers that every intake path (OTLP
// with or without the WAL, Kafka) shares: the deploy version tracker and
// the users-affected sketches.
func (d *Daemon) observeVersionsUsers(req *otlp.Request, now time.Time) {
	d.versions.Observe(req, now)
	d.users.Observe(req, now)
}

func (d *Daemon) countsStart(ctx context.Context) error {
	if d.counts == nil {
		return nil
	}
	return d.counts.Start(ctx)
}

func (d *Daemon) countsStop(ctx context.Context) error {
	if d.counts == nil {
		return nil
	}
	return d.counts.Shutdown(ctx)
}

// Start starts the components, downstream first so that nothing is
// accepted before it has somewhere to go, then binds the API. If a
// component fails to start (or the API's port is taken), the ones already
// started are stopped in reverse order and the store is closed; Shutdown is
// then a no-op. Once Start returns nil, the API server and the OTLP
// receivers run until Shutdown; if one stops on its own, the daemon logs
// it once and closes Failed, and Wait returns the cause.
func (d *Daemon) Start(ctx context.Context) error {
	var started []step
	for _, s := range d.steps() {
		if err := s.start(ctx); err != nil {
			d.closeAfterFailedStart(ctx, started)
			return fmt.Errorf("start %s: %w", s.name, err)
		}
		started = append(started, s)
	}
	d.serve("ingest", func() error {
		select {
		case err := <-d.ingestFailed:
			return err
		case <-d.stopped:
			return nil
		}
	})
	ln, err := d.listen(ctx, "tcp", d.cfg.Server.API)
	if err != nil {
		d.closeAfterFailedStart(ctx, started)
		return fmt.Errorf("listen on server.api %s: %w", d.cfg.Server.API, err)
	}
	if d.tls != nil {
		ln = tls.NewListener(ln, d.tls.ServerConfig())
	}
	d.apiLn = ln
	d.apiSrv = &http.Server{
		Handler: api.New(api.Deps{
			Logger:    d.log.With("component", "api"),
			Gatherer:  d.registry,
			Ready:     d.readyErr,
			Degraded:  d.fleet.degraded,
			Instance:  instanceOf(d.fleet),
			Cell:      d.cfg.Cell,
			Fleet:     fleetSource(d.fleet),
			SLOs:      d.slos,
			Services:  d.signals,
			Gate:      d.gate,
			Flags:     d.flags.svc,
			Incidents: d.incidents,
			Canary:    d.canary,
			Auth:      d.authn,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       d.cfg.Server.ReadTimeout.Std(),
		WriteTimeout:      d.cfg.Server.WriteTimeout.Std(),
		IdleTimeout:       d.cfg.Server.IdleTimeout.Std(),
	}
	d.serve("api", func() error {
		if err := d.apiSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("API server on %s: %w", ln.Addr(), err)
		}
		return nil
	})
	d.ready.Store(true)
	d.log.Info("tailgate serving",
		"api", ln.Addr().String(), "otlp_grpc", d.receiver.GRPCAddr(), "otlp_http", d.receiver.HTTPAddr(),
		"storage", d.where)
	return nil
}

// serve runs fn, a part that should run until Shutdown, as a member of
// d.serving: an error from fn means the part stopped on its own, which is
// recorded (and logged once) as the daemon's failure.
func (d *Daemon) serve(component string, fn func() error) {
	d.serving.Go(func() error {
		err := fn()
		if err == nil || d.stopping.Load() {
			return nil // stopped by Shutdown
		}
		return d.fail(component, err)
	})
}

// step is a component's start and stop, in start order.
type step struct {
	name  string
	start func(context.Context) error
	stop  func(context.Context) error
}

func (d *Daemon) steps() []step {
	return []step{
		{"fleet", d.fleet.Start, d.fleet.Shutdown},
		{"export", d.exporter.Start, d.exporter.Shutdown},
		{"signals", d.signals.Start, d.signals.Shutdown},
		{"notify", d.notifiers.Start, d.notifiers.Shutdown},
		{"slo", d.slos.Start, d.slos.Shutdown},
		{"wal", d.countsStart, d.countsStop},
		{"canary", d.canaries.Start, d.canaries.Shutdown},
		{"incident data", d.incData.Start, d.incData.Shutdown},
		{"gate", d.gate.Start, d.gate.Shutdown},
		{"flags", d.flags.Start, d.flags.Shutdown},
		{"incidents", d.incidents.Start, d.incidents.Shutdown},
		{"sampler", d.sampler.Start, d.sampler.Shutdown},
		{"ingest", d.receiver.Start, d.receiver.Shutdown},
		{"kafka", d.kafka.start, d.kafka.drain},
	}
}

// closeAfterFailedStart stops the started components in reverse order,
// under the shutdown deadline, and closes the store.
func (d *Daemon) closeAfterFailedStart(ctx context.Context, started []step) {
	if !d.closed.CompareAndSwap(false, true) {
		return
	}
	d.stopping.Store(true)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Server.ShutdownTimeout.Std())
	defer cancel()
	for i := len(started) - 1; i >= 0; i-- {
		if err := started[i].stop(ctx); err != nil {
			d.log.Warn("stop after a failed start", "component", started[i].name, "err", err)
		}
	}
	d.stopOnce.Do(func() { close(d.stopped) })
	_ = d.serving.Wait() // failures while stopping are not failures
	if d.counts != nil {
		if err := d.counts.Close(ctx, d.cfg.Storage.Path, false); err != nil {
			d.log.Warn("close write-ahead log after a failed start", "err", err)
		}
	}
	if err := d.store.Close(); err != nil {
		d.log.Warn("close store after a failed start", "err", err)
	}
}

// fail records the first part that stopped on its own, logs it, closes
// Failed and returns the recorded error.
func (d *Daemon) fail(component string, err error) error {
	d.failOnce.Do(func() {
		d.failure = fmt.Errorf("%s stopped: %w", component, err)
		d.ready.Store(false)
		d.log.Error("a component stopped unexpectedly; tailgate shuts down", "component", component, "err", err)
		close(d.failed)
	})
	return d.failure
}

// Failed is closed once a part that should run until Shutdown has
// stopped (a listener's Serve returned); the owner should then call
// Shutdown and exit non-zero, which Wait does. Err tells which part and
// why.
func (d *Daemon) Failed() <-chan struct{} { return d.failed }

// Err returns why Failed was closed, or nil.
func (d *Daemon) Err() error {
	select {
	case <-d.failed:
		return d.failure
	default:
		return nil
	}
}

func (d *Daemon) readyErr() error {
	if !d.ready.Load() {
		return errors.New("starting or shutting down")
	}
	return nil
}

// APIAddr returns the bound API address.
func (d *Daemon) APIAddr() string { return d.apiLn.Addr().String() }

// GRPCAddr returns the bound OTLP gRPC address.
func (d *Daemon) GRPCAddr() string { return d.receiver.GRPCAddr() }

// HTTPAddr returns the bound OTLP HTTP address.
func (d *Daemon) HTTPAddr() string { return d.receiver.HTTPAddr() }

// Pending returns the sampler's spans accepted and not yet decided, in its
// intake and in its buffer, without gathering the metrics registry.
func (d *Daemon) Pending() (intake, buffered int64) { return d.sampler.Pending() }

// Registry returns the Prometheus registry of this daemon's metrics.
func (d *Daemon) Registry() *prometheus.Registry { return d.registry }

// Shutdown stops accepting spans, decides every buffered trace, flushes the
// exports and the stores, and closes the API last, all within ctx. It
// returns the first error but always runs every step.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.stopping.Store(true)
	d.ready.Store(false)
	if d.closed.Load() {
		return nil // Start failed and cleaned up
	}
	var errs []error
	stop := func(ctx context.Context, name string, fn func(context.Context) error) {
		if err := fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down %s: %w", name, err))
		}
	}
	// Stop in the order data flows, not the reverse of Start: ingest
	// first so nothing new arrives, then the sampler decides what it
	// holds and the exporter sends it. Those wait on clients and on the
	// backend, so together they get dataShare of the deadline: a backend
	// that hangs must not cost the SLO counts, the gate's decisions or a
	// clean close of the store, which get the rest.
	dataCtx, cancelData := shareOf(ctx, dataShare)
	defer cancelData()
	stop(dataCtx, "ingest", d.receiver.Shutdown)
	stop(dataCtx, "kafka", d.kafka.stop)
	stop(dataCtx, "sampler", d.sampler.Shutdown)
	stop(dataCtx, "export", d.exporter.Shutdown)
	// Kafka offsets are committed once the pipeline drained: the
	// partitions' counts are stored as they are revoked.
	stop(ctx, "kafka", d.kafka.drain)
	stop(ctx, "wal", d.countsStop)
	stop(ctx, "slo", d.slos.Shutdown) // final flush, no more alerts
	stop(ctx, "canary", d.canaries.Shutdown)
	stop(ctx, "incident data", d.incData.Shutdown)
	notifyCtx, cancelNotify := shareOf(ctx, 0.5) // network too: half of what is left
	defer cancelNotify()
	stop(notifyCtx, "notify", d.notifiers.Shutdown)
	stop(ctx, "signals", d.signals.Shutdown)
	if d.counts != nil {
		// The log is trimmed to what the final flushes stored; a clean
		// stop is marked, so the next start knows no trace buffer was lost.
		if err := d.counts.Close(ctx, d.cfg.Storage.Path, len(errs) == 0); err != nil {
			errs = append(errs, fmt.Errorf("close write-ahead log: %w", err))
		}
	}
	if d.apiSrv != nil {
		apiCtx, cancelAPI := shareOf(ctx, 0.5)
		defer cancelAPI()
		stop(apiCtx, "api", d.apiSrv.Shutdown)
	}
	d.stopOnce.Do(func() { close(d.stopped) })
	_ = d.serving.Wait() // a part that failed before was reported through Failed
	stop(ctx, "incidents", d.incidents.Shutdown)
	stop(ctx, "flags", d.flags.Shutdown)
	stop(ctx, "gate", d.gate.Shutdown)
	if err := d.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	return errors.Join(errs...)
}

// dataShare is the part of the shutdown deadline that stopping ingest,
// the sampler and the exporter may use; the state (SLO and signal counts,
// gate decisions, the store) keeps the rest.
const dataShare = 0.6

// shareOf returns ctx bounded to share of the time left before its
// deadline; without a deadline, ctx itself.
func shareOf(ctx context.Context, share float64) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Duration(float64(time.Until(dl))*share)))
}

// Wait blocks until ctx is done or a part of the daemon stops on its own
// (see Failed), then shuts the daemon down gracefully under
// server.shutdown_timeout, detached from ctx. It returns the failure, if
// any, joined with what the shutdown could not finish: nil means ctx
// ended a healthy daemon that then stopped cleanly.
func (d *Daemon) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-d.failed:
	}
	d.log.Info("shutting down", "deadline", d.cfg.Server.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Server.ShutdownTimeout.Std())
	defer cancel()
	err := d.Shutdown(sctx)
	return errors.Join(d.Err(), err)
}

// Reload re-reads the token files (auth.tokens[].file), the API's TLS
// files (auth.tls) and the OTLP receivers' (ingest.tls) without a
// restart; serve calls it on SIGHUP. What fails to load keeps its current
// value. now is the time certificates must be valid at. The config file
// itself is read only at startup.
func (d *Daemon) Reload(now time.Time) error {
	var tlsErr error
	if err := d.tls.Reload(now); err != nil {
		tlsErr = fmt.Errorf("auth.tls: %w", err)
	}
	err := errors.Join(d.authn.Reload(), tlsErr, d.receiver.ReloadTLS(now))
	if err != nil {
		d.log.Error("reload failed; what could not be read keeps its current value", "err", err)
		return err
	}
	d.log.Info("reloaded token files and TLS files")
	return nil
}

// Run starts the daemon and serves until ctx is done or a part fails: it
// is Start followed by Wait.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.Start(ctx); err != nil {
		return err
	}
	return d.Wait(ctx)
}

// onDecision runs on a sampler shard for every decided trace; error traces,
// complete in the buffer, go to the error-origin analysis.
func (d *Daemon) onDecision(t *sampler.Trace, dec sampler.Decision) {
	if !t.HasError() {
		return
	}
	if dec == sampler.Keep {
		// Evidence for post-mortems: the service of its first failed
		// entry span.
		for i := range t.Len() {
			if ts := t.Span(i); ts.Bad() && ts.Kind().IsEntry() {
				id := t.ID()
				d.incData.evidence.Record(ts.ServiceName(), hex.EncodeToString(id[:]), time.Now())
				break
			}
		}
	}
	sc := d.decisions.Get().(*decisionScratch)
	defer d.decisions.Put(sc)
	sc.spans.Reset()
	for i := range t.Len() {
		ts := t.Span(i)
		// The builder copies what it keeps, so one buffer serves.
		sc.raw = ts.AppendRaw(sc.raw[:0])
		sp, err := otlp.ParseSpan(sc.raw) // validated at ingest; cannot fail
		if err != nil {
			continue
		}
		sc.spans.Add(&sp, ts.ServiceName())
	}
	d.signals.ObserveTrace(sc.spans.Spans(), time.Now())
}

// decisionScratch is onDecision's memory, reused from one error trace to
// the next (the sampler's shards decide concurrently, hence a pool).
type decisionScratch struct {
	spans signals.TraceBuilder
	raw   []byte
}
