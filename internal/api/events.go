package api

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
)

// ServiceEvent is a change to mark on a service's charts: a deploy marker
// of the service, or a flip or restore of a flag whose kill switch watches
// the service's SLOs.
type ServiceEvent struct {
	At time.Time `json:"at"`
	// Kind is deploy, flip or restore.
	Kind string `json:"kind"`
	Text string `json:"text"`
	// Verdict is a deploy's post-deploy regression verdict (regressed,
	// clean or inconclusive; none for a rollback).
	Verdict string `json:"verdict,omitempty"`
}

// maxServiceEvents bounds each source of GET .../events.
const maxServiceEvents = 200

// serviceEvents answers GET /api/v1/services/{service}/events?from=&to=
// (default the last hour), oldest first.
func (s *Server) serviceEvents(w http.ResponseWriter, r *http.Request) {
	svc, now := r.PathValue("service"), s.deps.Now()
	from, to, ok := rangeParams(w, r, now, time.Hour)
	if !ok {
		return
	}
	events := []ServiceEvent{}
	if s.deps.Gate != nil {
		ds, err := s.deps.Gate.Deploys(r.Context(), gate.DeployQuery{Service: svc, From: from, To: to, Limit: maxServiceEvents})
		if err != nil {
			s.gateError(w, r, err)
			return
		}
		for _, d := range ds {
			text := "deploy " + d.Version
			if d.ChangeClass != "" {
				text += " (" + string(d.ChangeClass) + ")"
			}
			if d.Description != "" {
				text += ": " + d.Description
			}
			e := ServiceEvent{At: d.Time, Kind: "deploy", Text: text}
			if s.deps.Canary != nil && d.ChangeClass != gate.Rollback {
				e.Verdict = string(s.deps.Canary.Regression(canary.Marker{Service: d.Service, At: d.Time, RollbackCommand: d.RollbackCommand}).Verdict)
			}
			events = append(events, e)
		}
	}
	if s.deps.Flags != nil {
		watched := map[string]bool{}
		if s.deps.SLOs != nil {
			for _, st := range s.deps.SLOs.List(now) {
				if st.Service == svc {
					watched[st.Name] = true
				}
			}
		}
		for _, f := range s.deps.Flags.List() {
			ks := f.KillSwitch
			if ks == nil || ks.Service != svc && !slices.ContainsFunc(ks.SLOs, func(n string) bool { return watched[n] }) {
				continue
			}
			hs, err := s.deps.Flags.History(r.Context(), f.Key, maxServiceEvents)
			if err != nil {
				s.flagError(w, r, err)
				return
			}
			for _, h := range hs {
				if h.At.Before(from) || !h.At.Before(to) || h.Action != flags.ActionFlip && h.Action != flags.ActionRestore {
					continue
				}
				text := fmt.Sprintf("flag %s %s", f.Key, h.Action)
				if h.To != "" {
					text += " to " + h.To
				}
				if h.Source == "kill_switch" {
					text += " by the kill switch"
				} else if h.Actor != "" {
					text += " by " + h.Actor
				}
				if h.Reason != "" {
					text += ": " + strings.TrimSpace(h.Reason)
				}
				events = append(events, ServiceEvent{At: h.At, Kind: string(h.Action), Text: text})
			}
		}
	}
	slices.SortStableFunc(events, func(a, b ServiceEvent) int { return cmp.Compare(a.At.UnixNano(), b.At.UnixNano()) })
	writeJSON(w, http.StatusOK, map[string]any{"events": events})
}
