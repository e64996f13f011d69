package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/users"
)

// usersMemory is how long this instance keeps its user sketches in
// memory; retained how long the store keeps every instance's sketches and
// failed traces.
const (
	usersMemory = 24 * time.Hour
	retained    = 30 * 24 * time.Hour
)

// incidentData writes what this instance gathers for post-mortems to the
// store every interval: the sketches of the users of failed requests
// (merged with every instance's by users.Counter.Estimate) and a few kept
// failed traces per service and minute (the evidence).
type incidentData struct {
	users    *users.Counter // nil without incidents.user_attribute
	evidence *incident.Evidence
	store    interface {
		users.Store
		incident.EvidenceStore
	}
	interval time.Duration
	log      *slog.Logger

	bg        background
	lastPrune time.Time
}

func (u *incidentData) Start(context.Context) error {
	u.bg.start(u.interval, nil, func(ctx context.Context) {
		if err := u.flush(ctx, time.Now()); err != nil {
			u.log.Warn("incident data: writing to the store failed; retrying", "err", err)
		}
	})
	return nil
}

func (u *incidentData) flush(ctx context.Context, now time.Time) error {
	if err := u.evidence.Flush(ctx, u.store); err != nil {
		return err
	}
	if u.users != nil {
		rows := u.users.Unstored()
		if err := u.store.PutUserSketches(ctx, rows); err != nil {
			u.users.Unmark(rows)
			return err
		}
		u.users.Prune(now)
	}
	if now.Sub(u.lastPrune) >= time.Hour {
		u.lastPrune = now
		if err := u.store.PruneUserSketches(ctx, now.Add(-retained)); err != nil {
			return err
		}
		return u.store.PruneFailedTraces(ctx, now.Add(-retained))
	}
	return nil
}

// Shutdown stops the loop and writes what is left.
func (u *incidentData) Shutdown(ctx context.Context) error {
	return u.bg.shutdown(func() error { return u.flush(ctx, time.Now()) })
}

// estimate is the incidents' users.Counter.Estimate over the store.
func (u *incidentData) estimate(ctx context.Context, service string, from, to time.Time) (uint64, bool, error) {
	return u.users.Estimate(ctx, u.store, service, from, to)
}
