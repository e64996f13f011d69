package slo

import (
	"context"
	"log/slog"
	"maps"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// evaluate runs every alert rule at now and sends the notifications of
// the alerts that started firing or resolved.
func (e *Engine) evaluate(now time.Time) {
	start := time.Now()
	var notes []Notification
	leads := e.leading()
	if leads && !e.wasLeader && e.leader != nil {
		e.takeOver()
	}
	e.wasLeader = leads
	e.mu.Lock()
	e.advanceLocked(units.MinuteOf(now))
	e.refreshCorrectionsLocked(now, false)
	cur := e.openMinute()
	var ms measure
	for _, st := range e.slos {
		if len(st.rules) == 0 {
			continue
		}
		eval := func(s *series) {
			st.measureSeries(s, now, cur, unpack(s.live.Load()), &ms)
			e.evalRules(st, s, &ms, now, &notes)
		}
		if st.groupBy == nil {
			eval(st.agg)
		} else {
			for _, s := range st.groups.Load().list {
				eval(s)
			}
		}
	}
	e.lastEval = now
	e.evalSeconds = time.Since(start).Seconds()
	e.mu.Unlock()
	if !leads {
		return // the leader notifies
	}
	if len(notes) > 0 && e.leader != nil {
		// In a fleet, the transition is stored before the notification
		// goes out: a leader that takes over after a crash finds it and
		// stays silent (see takeOver).
		e.storeTransitions()
	}
	for _, n := range notes {
		for _, nf := range e.notifiers {
			nf.Notify(n)
		}
	}
}

// evalRules steps each rule's state machine for one series. The alert's
// values are built only for alerts that are not inactive, so that an
// evaluation of quiet SLOs allocates nothing.
func (e *Engine) evalRules(st *sloState, s *series, ms *measure, now time.Time, notes *[]Notification) {
	rem, remOK := budgetRemaining(ms.whole.good, ms.whole.total, st.eb)
	for i := range st.rules {
		r := &st.rules[i]
		a := &s.alerts[i]
		var (
			c        bool
			bl, bs   float64
			okl, oks bool
			coverage = ms.whole.coverage
		)
		switch r.kind {
		case BurnRateAlert:
			l, sh := ms.win[r.longIdx], ms.win[r.shortIdx]
			bl, okl = burnRate(l.good, l.total, st.eb)
			bs, oks = burnRate(sh.good, sh.total, st.eb)
			coverage = l.coverage
			thr := r.burn * (1 - 1e-9) // a burn rate equal to the threshold fires despite rounding
			c = okl && oks && l.coverage >= st.minCoverage && bl >= thr && bs >= thr
		case BudgetExhaustedAlert:
			c = remOK && rem <= 0
		case BudgetLowAlert:
			c = remOK && rem < r.below
		case NoDataAlert:
			w := ms.win[r.longIdx]
			coverage = w.coverage
			c = w.total == 0 && w.coverage >= 1
		}
		from, to, changed := a.step(c, now, r)
		if a.state == Inactive && !changed {
			continue
		}
		v := AlertValues{BudgetRemaining: ptr(rem, remOK), Coverage: coverage}
		if r.kind == BurnRateAlert {
			v.Threshold, v.LongWindow, v.ShortWindow = r.burn, r.longLabel, r.shortLabel
			v.BurnRateLong, v.BurnRateShort = ptr(bl, okl), ptr(bs, oks)
		}
		a.values = v
		if !changed {
			continue
		}
		t := Transition{SLO: st.spec.Name, Service: st.spec.Service, Group: s.group, Alert: r.name, Kind: r.kind,
			Severity: r.severity, From: from, To: to, At: now, Values: v}
		e.recordLocked(t)
		lvl := slog.LevelInfo
		if to == Firing {
			lvl = slog.LevelWarn
		}
		e.log.Log(context.Background(), lvl, "SLO alert "+to.String(), "slo", st.spec.Name, "service", st.spec.Service,
			"group", s.group, "alert", r.name, "severity", r.severity.String())
		if to == Firing || to == Resolved {
			*notes = append(*notes, e.notification(st, s, i, ms, now))
		}
	}
}

func (e *Engine) recordLocked(t Transition) {
	if len(e.recent) >= recentTransitions {
		copy(e.recent, e.recent[1:])
		e.recent = e.recent[:len(e.recent)-1]
	}
	e.recent = append(e.recent, t)
	if e.store != nil && e.leading() {
		e.unsaved = append(e.unsaved, t)
	}
}

// notification builds the notification of rule i of series s.
func (e *Engine) notification(st *sloState, s *series, i int, ms *measure, now time.Time) Notification {
	var stt Status
	st.fill(ms, &stt)
	a := st.alertOf(s, i)
	n := Notification{
		Alert: a, Status: a.State, Objective: st.spec.Objective, Window: st.per.label,
		BurnRates: stt.BurnRates, BudgetRemaining: stt.BudgetRemaining, TimeToExhaustion: stt.TimeToExhaustion,
		Description: st.spec.Description, Labels: st.spec.Labels, At: now,
	}
	if len(e.labels) > 0 {
		n.Labels = maps.Clone(e.labels)
		maps.Copy(n.Labels, st.spec.Labels)
	}
	if e.baseURL != "" {
		n.Links = map[string]string{
			"slo":    e.baseURL + "/api/v1/slos/" + st.spec.Name,
			"alerts": e.baseURL + "/api/v1/alerts",
		}
	}
	return n
}

// alertOf returns rule i's alert on series s.
func (st *sloState) alertOf(s *series, i int) Alert {
	r := &st.rules[i]
	a := &s.alerts[i]
	out := Alert{SLO: st.spec.Name, Service: st.spec.Service, Group: s.group, Name: r.name, AlertName: r.kind.AlertName(),
		Kind: r.kind, Severity: r.severity, State: a.state, ActiveAt: a.activeAt, FiredAt: a.firedAt, Values: a.values}
	if a.state == Resolved {
		out.ResolvedAt = a.changedAt
	}
	out.Summary = r.summary(st, &a.values)
	return out
}

// activeAlerts appends the pending and firing alerts of an SLO.
func (st *sloState) activeAlerts(dst []Alert) []Alert {
	st.allSeries(func(s *series) {
		for i := range s.alerts {
			if s.alerts[i].state == Pending || s.alerts[i].state == Firing {
				dst = append(dst, st.alertOf(s, i))
			}
		}
	})
	return dst
}
