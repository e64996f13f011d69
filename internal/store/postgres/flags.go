package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
)

var _ flags.Store = (*DB)(nil)

// FlagStates implements flags.Store.
func (s *DB) FlagStates(ctx context.Context) ([]flags.State, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, forced_variant, forced_by, paused, version, since FROM flag_states ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("read flag states: %w", err)
	}
	defer rows.Close()
	var out []flags.State
	for rows.Next() {
		var st flags.State
		var forced *string
		var by string
		var since int64
		if err := rows.Scan(&st.Key, &forced, &by, &st.Paused, &st.Version, &since); err != nil {
			return nil, fmt.Errorf("read flag states: %w", err)
		}
		if forced != nil {
			st.Forced = &flags.Forced{Variant: *forced, By: by}
		}
		st.Since = time.Unix(0, since).UTC()
		out = append(out, st)
	}
	return out, rows.Err()
}

// SetFlagState implements flags.Store: the state, the history entry and
// the audit row are written in one transaction, which the fleet's
// audit lock serializes with every other instance's.
func (s *DB) SetFlagState(ctx context.Context, st flags.State, ch flags.Change) error {
	return s.writeTx(ctx, func(tx pgx.Tx) error {
		var have int64
		err := tx.QueryRow(ctx, `SELECT version FROM flag_states WHERE key = $1`, st.Key).Scan(&have)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read flag %q: %w", st.Key, err)
		}
		if have != st.Version-1 {
			return fmt.Errorf("%w: %q is at version %d, the change was based on %d", flags.ErrConflict, st.Key, have, st.Version-1)
		}
		var forced any
		by := ""
		if st.Forced != nil {
			forced, by = st.Forced.Variant, st.Forced.By
		}
		if _, err := tx.Exec(ctx, `INSERT INTO flag_states (key, forced_variant, forced_by, paused, version, since) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (key) DO UPDATE SET forced_variant = excluded.forced_variant, forced_by = excluded.forced_by,
				paused = excluded.paused, version = excluded.version, since = excluded.since`,
			st.Key, forced, by, st.Paused, st.Version, st.Since.UnixNano()); err != nil {
			return fmt.Errorf("write flag %q: %w", st.Key, err)
		}
		return s.recordFlagChange(ctx, tx, ch)
	})
}

// recordFlagChange appends ch to the flag's history and to the audit chain.
func (s *DB) recordFlagChange(ctx context.Context, tx pgx.Tx, ch flags.Change) error {
	rec, err := json.Marshal(ch)
	if err != nil {
		return fmt.Errorf("encode flag change: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO flag_history (key, at, record) VALUES ($1, $2, $3)`, ch.Key, ch.At.UnixNano(), string(rec)); err != nil {
		return fmt.Errorf("append flag history: %w", err)
	}
	e, err := gate.NewAuditEntry(gate.AuditFlagChange, ch.Actor, ch.At, ch)
	if err != nil {
		return err
	}
	return appendAudit(ctx, tx, []gate.AuditEntry{e})
}

// FlagHistory implements flags.Store.
func (s *DB) FlagHistory(ctx context.Context, key string, limit int) ([]flags.Change, error) {
	rows, err := s.pool.Query(ctx, `SELECT record FROM flag_history WHERE key = $1 ORDER BY id DESC LIMIT $2`, key, limit)
	if err != nil {
		return nil, fmt.Errorf("read flag history: %w", err)
	}
	defer rows.Close()
	out := []flags.Change{}
	for rows.Next() {
		var rec string
		if err := rows.Scan(&rec); err != nil {
			return nil, fmt.Errorf("read flag history: %w", err)
		}
		var ch flags.Change
		if err := json.Unmarshal([]byte(rec), &ch); err != nil {
			return nil, fmt.Errorf("decode flag history of %q: %w", key, err)
		}
		out = append(out, ch)
	}
	return out, rows.Err()
}

// FlagDefinitions implements flags.Store.
func (s *DB) FlagDefinitions(ctx context.Context) ([]flags.Config, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, definition FROM flag_definitions ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("read flag definitions: %w", err)
	}
	defer rows.Close()
	var out []flags.Config
	for rows.Next() {
		var key, def string
		if err := rows.Scan(&key, &def); err != nil {
			return nil, fmt.Errorf("read flag definitions: %w", err)
		}
		var c flags.Config
		if err := json.Unmarshal([]byte(def), &c); err != nil {
			return nil, fmt.Errorf("decode flag definition %q: %w", key, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// PutFlagDefinition implements flags.Store.
func (s *DB) PutFlagDefinition(ctx context.Context, c flags.Config, ch flags.Change) error {
	def, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode flag definition: %w", err)
	}
	return s.writeTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO flag_definitions (key, definition, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at`,
			c.Key, string(def), ch.At.UnixNano()); err != nil {
			return fmt.Errorf("write flag definition %q: %w", c.Key, err)
		}
		return s.recordFlagChange(ctx, tx, ch)
	})
}

// DeleteFlagDefinition implements flags.Store.
func (s *DB) DeleteFlagDefinition(ctx context.Context, key string, ch flags.Change) (bool, error) {
	var existed bool
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM flag_definitions WHERE key = $1`, key)
		if err != nil {
			return fmt.Errorf("delete flag definition %q: %w", key, err)
		}
		if res.RowsAffected() == 0 {
			return nil
		}
		existed = true
		if _, err := tx.Exec(ctx, `DELETE FROM flag_states WHERE key = $1`, key); err != nil {
			return fmt.Errorf("delete flag state %q: %w", key, err)
		}
		return s.recordFlagChange(ctx, tx, ch)
	})
	return existed, err
}
