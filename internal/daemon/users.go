package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tailgate-sre/tailgate/internal/users"
)

// usersMemory is how long this instance keeps its user sketches in
// memory; usersStored how long the store keeps every instance's.
const (
	usersMemory = 24 * time.Hour
	usersStored = 30 * 24 * time.Hour
)

// usersSync writes this instance's sketches of the users of failed
// requests to the store every interval; the post-mortem merges every
// instance's (users.Counter.Estimate).
type usersSync struct {
	c        *users.Counter
	store    users.Store
	interval time.Duration
	log      *slog.Logger

	stop      chan struct{}
	done      chan struct{}
	started   bool
	stopOnce  sync.Once
	lastPrune time.Time
}

// newUsersSync returns nil when no user attribute is counted.
func newUsersSync(c *users.Counter, st users.Store, interval time.Duration, log *slog.Logger) *usersSync {
	if c == nil {
		return nil
	}
	return &usersSync{c: c, store: st, interval: interval, log: log, stop: make(chan struct{}), done: make(chan struct{})}
}

func (u *usersSync) Start(context.Context) error {
	if u == nil {
		return nil
	}
	u.started = true
	go func() {
		defer close(u.done)
		every(u.stop, u.interval, nil, func(ctx context.Context) {
			if err := u.flush(ctx, time.Now()); err != nil {
				u.log.Warn("user sketches: writing to the store failed; retrying", "err", err)
			}
		})
	}()
	return nil
}

func (u *usersSync) flush(ctx context.Context, now time.Time) error {
	rows := u.c.Unstored()
	if err := u.store.PutUserSketches(ctx, rows); err != nil {
		u.c.Unmark(rows)
		return err
	}
	u.c.Prune(now)
	if now.Sub(u.lastPrune) >= time.Hour {
		u.lastPrune = now
		return u.store.PruneUserSketches(ctx, now.Add(-usersStored))
	}
	return nil
}

// Shutdown stops the loop and writes what is left.
func (u *usersSync) Shutdown(ctx context.Context) error {
	if u == nil {
		return nil
	}
	var err error
	u.stopOnce.Do(func() {
		close(u.stop)
		if u.started {
			<-u.done
			err = u.flush(ctx, time.Now())
		}
	})
	return err
}

// estimate is the incidents' users.Counter.Estimate over the store.
func (u *usersSync) estimate(ctx context.Context, service string, from, to time.Time) (uint64, bool, error) {
	if u == nil {
		return 0, false, nil
	}
	return u.c.Estimate(ctx, u.store, service, from, to)
}
