package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/notify"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

// flagRefresh is how often an instance reloads flag states from the
// store, so a flip made on another instance of a fleet takes effect here
// within it.
const flagRefresh = time.Second

// flagRunner runs the flag service's refresh loop and the kill switches.
type flagRunner struct {
	svc      *flags.Service
	ctl      *flags.Controller
	interval time.Duration

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newFlags builds the flag service over the store and the kill switches
// over the SLO engine's states, evaluated as often as the SLO alerts.
func newFlags(ctx context.Context, cfgFlags []flags.Config, ks flags.KillSwitchConfig, store flags.Store, specs []slo.Spec,
	engine *slo.Engine, n *notify.Notifiers, leader func() bool, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) (*flagRunner, error) {
	svc, err := flags.NewService(ctx, cfgFlags, flags.Settings{Logger: log, Store: store})
	if err != nil {
		return nil, err
	}
	sloServices := make(map[string]string, len(specs))
	for _, s := range specs {
		sloServices[s.Name] = s.Service
	}
	ctl, err := flags.NewController(svc, ks, flags.ControllerSettings{
		Logger: log, States: gateStates{engine}, SLOServices: sloServices, Notifier: n, Registerer: reg, Leader: leader,
	})
	if err != nil {
		return nil, fmt.Errorf("kill switches: %w", err)
	}
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &flagRunner{svc: svc, ctl: ctl, interval: interval}, nil
}

func (r *flagRunner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return nil
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.wg.Go(func() { r.svc.Run(runCtx, flagRefresh) })
	r.wg.Go(func() { r.ctl.Run(runCtx, r.interval, time.Now) })
	return nil
}

func (r *flagRunner) Shutdown(context.Context) error {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		r.wg.Wait()
	}
	return nil
}
