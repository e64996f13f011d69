package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Member is an instance of the fleet as its heartbeats describe it.
type Member struct {
	Instance string    `json:"instance"`
	Cell     string    `json:"cell,omitempty"`
	Version  string    `json:"version"`
	Schema   int       `json:"schema"`
	Started  time.Time `json:"started_at"`
	// Heartbeat is the time of the member's last heartbeat, by the
	// database's clock.
	Heartbeat time.Time `json:"heartbeat_at"`
	Leader    bool      `json:"leader"`
	// FlushedUntil is the end of the last minute whose counts the member
	// stored (the zero time before its first flush).
	FlushedUntil time.Time `json:"flushed_until,omitzero"`
	// Health is "ok" or what is wrong, as the member saw it.
	Health string `json:"health"`
}

// Heartbeat records m (its Instance is this store's) with the database's
// clock as its heartbeat time.
func (s *DB) Heartbeat(ctx context.Context, m Member) error {
	if _, err := s.pool.Exec(ctx, heartbeatSQL, s.heartbeatArgs(m)...); err != nil {
		return fmt.Errorf("heartbeat to %s: %w", s.where, err)
	}
	return nil
}

// heartbeatSQL records a member's heartbeat, stamped with the database's
// clock when the statement runs.
const heartbeatSQL = `INSERT INTO fleet_instances (instance, cell, version, schema, started_at, heartbeat_at, leader, flushed_until, health)
	VALUES ($1, $2, $3, $4, $5, (extract(epoch FROM clock_timestamp()) * 1e9)::bigint, $6, $7, $8)
	ON CONFLICT (instance) DO UPDATE SET cell = excluded.cell, version = excluded.version, schema = excluded.schema,
		started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, leader = excluded.leader,
		flushed_until = GREATEST(fleet_instances.flushed_until, excluded.flushed_until), health = excluded.health`

func (s *DB) heartbeatArgs(m Member) []any {
	return []any{s.instance, m.Cell, m.Version, Version(), nanos(m.Started), m.Leader, unixOrZero(m.FlushedUntil), m.Health}
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return nanos(t)
}

// Members returns the fleet's instances by name, and the database's clock
// to judge their heartbeats' age by.
func (s *DB) Members(ctx context.Context) ([]Member, time.Time, error) {
	var now time.Time
	if err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		return nil, time.Time{}, fmt.Errorf("read the fleet from %s: %w", s.where, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT instance, cell, version, schema, started_at, heartbeat_at, leader, flushed_until, health
		FROM fleet_instances ORDER BY instance`)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read the fleet from %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var started, hb, flushed int64
		if err := rows.Scan(&m.Instance, &m.Cell, &m.Version, &m.Schema, &started, &hb, &m.Leader, &flushed, &m.Health); err != nil {
			return nil, time.Time{}, fmt.Errorf("read the fleet from %s: %w", s.where, err)
		}
		m.Started, m.Heartbeat = fromNanos(started), fromNanos(hb)
		if flushed != 0 {
			m.FlushedUntil = fromNanos(flushed)
		}
		out = append(out, m)
	}
	return out, now.UTC(), rows.Err()
}

// Leadership holds the fleet's leader lock: a PostgreSQL session advisory
// lock on a connection of its own. The lock is the database's: when the
// holder dies, or its connection does, the server releases it and another
// instance's next TryLead takes it.
type Leadership struct {
	db   *DB
	mu   sync.Mutex
	conn *pgxpool.Conn // non-nil while leading
}

// Leadership returns the store's leader lock (not taken until TryLead).
// Close releases it.
func (s *DB) Leadership() *Leadership { return s.leader }

// TryLead tries to take the lock unless this instance holds it already;
// it reports whether this instance holds it, as far as it knows: Renew
// proves it. The lock's session ends, and frees the lock, once it has been
// idle for lease (PostgreSQL's idle_session_timeout): a leader whose host
// dies or is cut off frees it after a lease of silence, not when the
// database's TCP keepalives give up on the connection (hours by default).
// An error means the database could not be asked, and the instance does
// not hold the lock.
func (l *Leadership) TryLead(ctx context.Context, lease time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		return true, nil
	}
	conn, err := l.db.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("leader lock on %s: %w", l.db.where, err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockLeader).Scan(&got); err != nil {
		conn.Release()
		return false, fmt.Errorf("leader lock on %s: %w", l.db.where, err)
	}
	if !got {
		conn.Release()
		return false, nil
	}
	l.conn = conn
	// The connection never goes back to the pool (dropLocked closes it),
	// so the setting stays with the lock's session.
	if _, err := conn.Exec(ctx, `SELECT set_config('idle_session_timeout', $1, false)`, fmt.Sprint(lease.Milliseconds())); err != nil {
		l.dropLocked()
		return false, fmt.Errorf("leader lock on %s: idle_session_timeout (PostgreSQL 14 or later): %w", l.db.where, err)
	}
	return true, nil
}

// Renew records m as this instance's heartbeat, with Leader set, on the
// lock's own session. The lock lives as long as the session, so success
// proves the lock was this instance's when the database stamped the
// heartbeat: the last stamp of a leader that lost its session is older
// than the moment another instance could take the lock. On an error the
// lock is given up (it may be lost already).
func (l *Leadership) Renew(ctx context.Context, m Member) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return fmt.Errorf("leader lock on %s: not held", l.db.where)
	}
	m.Leader = true
	if _, err := l.conn.Exec(ctx, heartbeatSQL, l.db.heartbeatArgs(m)...); err != nil {
		l.dropLocked()
		return fmt.Errorf("leader lock on %s lost: %w", l.db.where, err)
	}
	return nil
}

// dropLocked closes the lock's connection: closing the session is what
// surely releases the lock.
func (l *Leadership) dropLocked() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.conn.Conn().Close(ctx) // a dead connection fails to close; the server drops the session anyway
	l.conn.Release()
	l.conn = nil
}

// Release gives the lock up, for a clean shutdown: another instance can
// lead at once instead of after this one's connection times out.
func (l *Leadership) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		// Unlock first: the server ends a closed session asynchronously,
		// so closing alone would leave the lock held for a moment after
		// Release returns, and a successor's try could still fail.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lockLeader)
		cancel()
	}
	l.dropLocked()
}

// Leading reports whether this instance holds the lock, as far as it
// knows since its last TryLead or Renew.
func (l *Leadership) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil
}
