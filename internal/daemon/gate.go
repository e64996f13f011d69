package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

// gateStates adapts the SLO engine to what the release gate reads.
type gateStates struct{ e *slo.Engine }

func (a gateStates) SLOStates(service string, now time.Time) []gate.SLOState {
	sts := a.e.ServiceStatus(service, now)
	out := make([]gate.SLOState, 0, len(sts))
	for _, s := range sts {
		g := gate.SLOState{
			Name: s.Name, Service: s.Service, Objective: s.Objective,
			Window:          time.Duration(s.WindowSeconds * float64(time.Second)),
			BudgetRemaining: s.BudgetRemaining, BurnRates: s.BurnRates, Coverage: s.Coverage,
			Good: s.Good, Total: s.Total,
			// The alert loop's last run: if the engine stalls, the gate sees stale data.
			UpdatedAt: s.AlertsEvaluatedAt,
		}
		if s.BudgetRemaining != nil {
			r := s.Budget.Remaining
			g.BudgetRemainingEvents = &r
		}
		if s.TimeToExhaustion != nil {
			d := time.Duration(*s.TimeToExhaustion * float64(time.Second))
			g.TimeToExhaustion = &d
		}
		for _, al := range s.Alerts {
			if al.State == slo.Firing && al.Group == "" {
				g.AlertsFiring = append(g.AlertsFiring, gate.FiringAlert{Name: al.Name, Severity: gate.Severity(al.Severity.String()), Since: al.FiredAt})
			}
		}
		for _, c := range s.Corrections {
			g.Exemptions = append(g.Exemptions, fmt.Sprintf("%s (correction %d by %s, %d of %d events excluded)", c.Reason, c.ID, c.CreatedBy, c.ExcludedTotal-c.ExcludedGood, c.ExcludedTotal))
		}
		out = append(out, g)
	}
	return out
}

// gateHistory answers the risk report's release costs from the stored minute buckets.
type gateHistory struct{ store slo.BucketStore }

func (h gateHistory) SLOEvents(ctx context.Context, name string, from, to time.Time) (good, total float64, err error) {
	bs, err := h.store.LoadSLIBuckets(ctx, from.Truncate(time.Minute))
	if err != nil {
		return 0, 0, err
	}
	for _, b := range bs {
		if b.SLO == name && b.Group == "" && b.Minute.Before(to) {
			good, total = good+float64(b.Good), total+float64(b.Total)
		}
	}
	return good, total, nil
}

var (
	_ gate.StateSource   = gateStates{}
	_ gate.HistorySource = gateHistory{}
)
