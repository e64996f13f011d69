package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

// pager forwards the SLO engine's notifications to the incident service,
// which is built after the engine (it reads the engine's states).
type pager struct {
	svc atomic.Pointer[incident.Service]
}

// Notify implements slo.Notifier.
func (p *pager) Notify(n slo.Notification) {
	if s := p.svc.Load(); s != nil {
		s.Notify(n)
	}
}

// newIncidents builds the incident service over the store, the SLO
// engine's states, the gate's records, the flags' history and the error
// origins.
// incidentStore is what the incidents read and write in the store.
type incidentStore interface {
	incident.Store
	incident.GateEvents
	slo.BucketStore
	slo.AlertStore
	signals.Store
	incident.EvidenceStore
}

func newIncidents(cfg incident.Config, oncall incident.OncallConfig, store incidentStore, specs []slo.Spec, engine *slo.Engine, fl *flags.Service,
	n incident.Notifier, usersAffected incident.UsersEstimate, log *slog.Logger) (*incident.Service, error) {
	return incident.NewService(cfg, incident.Settings{
		Logger: log, Store: store, SLOs: specs, Buckets: store, Alerts: store, Oncall: oncall, States: gateStates{engine}, Gate: store, Notifier: n,
		Flags:    flagChanges(fl),
		Origins:  errorOrigins(store),
		Users:    usersAffected,
		Evidence: store,
	})
}

// flagChanges reads every flag's history in a time range.
func flagChanges(fl *flags.Service) incident.FlagChanges {
	return func(ctx context.Context, from, to time.Time) ([]flags.Change, error) {
		var out []flags.Change
		for _, v := range fl.List() {
			hs, err := fl.History(ctx, v.Key, 1000)
			if err != nil {
				return out, err
			}
			for _, h := range hs {
				if !h.At.Before(from) && h.At.Before(to) {
					out = append(out, h)
				}
			}
		}
		return out, nil
	}
}

// errorOrigins names the service most of the failed requests of services
// start in, from the error-origin analysis of the golden signals.
func errorOrigins(store signals.Store) incident.Origins {
	return func(ctx context.Context, services []string, from, to time.Time) (string, string, bool) {
		by := map[string]float64{}
		top := map[string]string{}
		var total float64
		seen := map[string]bool{}
		for _, svc := range services {
			rows, err := store.ErrorOrigins(ctx, svc, from, to)
			if err != nil {
				return "", "", false
			}
			for _, r := range rows {
				if !slices.Contains(services, r.Service) {
					continue
				}
				key := fmt.Sprintf("%s|%s|%s|%s|%d", r.Start, r.Service, r.OriginService, r.OriginOperation, len(r.Reason))
				if seen[key] {
					continue // a row read for two of the services
				}
				seen[key] = true
				by[r.OriginService] += r.Requests
				total += r.Requests
				if top[r.OriginService] == "" {
					top[r.OriginService] = r.OriginOperation + " (" + r.Reason + ")"
				}
			}
		}
		best := ""
		for svc, n := range by {
			if best == "" || n > by[best] || n == by[best] && svc < best {
				best = svc
			}
		}
		if best == "" || total == 0 {
			return "", "", false
		}
		return best, fmt.Sprintf("%.0f of %.0f failed requests start in %s: %s", by[best], total, best, top[best]), true
	}
}
