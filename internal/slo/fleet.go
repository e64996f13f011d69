package slo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// A fleet of engines shares one FleetBucketStore. Each engine flushes the
// counts it observed and reads its peers' from the store every flush
// interval, keeping them in its series' histories (so that every read sees
// the fleet's sum) and, apart, in series.peer (so that a flush writes its
// own counts only). Corrections made on any instance are read back too;
// alert transitions are stored and notified by the leader alone (see
// Settings.Leader).

// syncPeers reads what the peers changed since the last sync into the
// series, and the corrections they added or deleted.
func (e *Engine) syncPeers(ctx context.Context, now time.Time) error {
	ps, ok := e.store.(FleetBucketStore)
	if !ok {
		return nil
	}
	e.syncTo(now)
	since := e.oldestKept(units.MinuteOf(now)).Time()
	bs, at, err := ps.PeerSLIBuckets(ctx, since, e.peerCursor)
	if err != nil {
		return err
	}
	cs, err := e.store.ListCorrections(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range bs {
		st := e.byName[b.SLO]
		if st == nil {
			continue
		}
		s := st.agg
		m := units.MinuteOf(b.Minute)
		if b.Group != "" {
			if st.groupBy == nil {
				continue
			}
			if s = st.groups.Load().byValue[b.Group]; s == nil {
				s = st.newGroup(b.Group, b.Minute)
			}
		}
		// The store gives the peers' whole count of the minute: add what
		// is new since the last read. Counts only grow, but uint64
		// arithmetic is modular, so a shrink would subtract as well.
		g0, t0 := s.peer.at(m)
		dg, dt := b.Good-g0, b.Total-t0
		if dg == 0 && dt == 0 {
			continue
		}
		s.peer.add(m, dg, dt)
		s.ev.add(m, dg, dt)
		st.reslice(s, m)
	}
	e.peerCursor = at
	e.applyStoredCorrectionsLocked(cs, now)
	return nil
}

// applyStoredCorrectionsLocked replaces the stored (API) corrections of
// each SLO with cs when they differ: another instance added or deleted
// one.
func (e *Engine) applyStoredCorrectionsLocked(cs []Correction, now time.Time) {
	stored := map[string][]Correction{}
	for _, c := range cs {
		if e.byName[c.SLO] != nil {
			stored[c.SLO] = append(stored[c.SLO], c)
		}
	}
	changed := false
	for _, st := range e.slos {
		var spec, api []Correction
		for _, c := range st.corrections {
			if c.Source == SourceAPI {
				api = append(api, c)
			} else {
				spec = append(spec, c)
			}
		}
		same := func(a, b Correction) bool { return a.ID == b.ID && a.DeletedAt.Equal(b.DeletedAt) }
		if slices.EqualFunc(api, stored[st.spec.Name], same) {
			continue
		}
		st.corrections = append(spec, stored[st.spec.Name]...)
		st.ivsTo = time.Time{}
		changed = true
	}
	if changed {
		e.refreshCorrectionsLocked(now, true)
	}
}

// leading reports whether this engine stores and notifies alert
// transitions: always, unless Settings.Leader says another instance does.
func (e *Engine) leading() bool { return e.leader == nil || e.leader() }

// SyncPeers reads the peers' counts now, for tests and for the daemon's
// start; the engine otherwise does it every flush interval.
func (e *Engine) SyncPeers(ctx context.Context, now time.Time) error {
	if err := e.syncPeers(ctx, now); err != nil {
		return fmt.Errorf("read the fleet's counts: %w", err)
	}
	return nil
}

// LastFlush returns when counts were last stored (the zero time before
// the first flush that succeeded).
func (e *Engine) LastFlush() time.Time {
	if n := e.lastFlushOK.Load(); n != 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Time{}
}

// fleetIO bounds the store calls evaluate makes on a fleet's behalf.
const fleetIO = 5 * time.Second

// takeOver adopts the alert states the previous leader stored, when this
// engine becomes the fleet's leader: an alert the old leader notified as
// firing (and stored before notifying) is firing here too, so the new
// leader does not notify it again, even when it had not evaluated the
// condition itself yet.
func (e *Engine) takeOver() {
	ctx, cancel := context.WithTimeout(context.Background(), fleetIO)
	defer cancel()
	ts, err := e.store.LatestAlertTransitions(ctx)
	if err != nil {
		e.log.Warn("taking over as leader: cannot read the stored alert states; alerts may be notified again", "err", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range ts {
		e.restoreAlert(t)
	}
	e.log.Info("leading the fleet: alert states adopted from the store", "alerts", len(ts))
}

// storeTransitions writes the transitions not stored yet, now.
func (e *Engine) storeTransitions() {
	e.mu.Lock()
	trans := e.unsaved
	e.unsaved = nil
	e.mu.Unlock()
	if len(trans) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetIO)
	defer cancel()
	if err := e.store.AddAlertTransitions(ctx, trans); err != nil {
		e.log.Warn("store alert transitions before notifying", "err", err)
		e.mu.Lock()
		e.unsaved = append(trans, e.unsaved...)
		e.mu.Unlock()
	}
}
