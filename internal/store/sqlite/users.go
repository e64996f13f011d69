package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/tailgate-sre/tailgate/internal/users"
)

// usersSchema holds the sketches of the users of failed requests.
var usersSchema = []string{
	`CREATE TABLE IF NOT EXISTS user_sketches (
		service   TEXT    NOT NULL,
		start     INTEGER NOT NULL, -- Unix seconds of the ten minutes' start
		registers BLOB    NOT NULL,
		PRIMARY KEY (service, start)
	)`,
}

var _ users.Store = (*DB)(nil)

// PutUserSketches implements users.Store.
func (s *DB) PutUserSketches(ctx context.Context, rows []users.Row) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put user sketches: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_sketches (service, start, registers) VALUES (?, ?, ?)
			ON CONFLICT (service, start) DO UPDATE SET registers = excluded.registers`, r.Service, r.Start.Unix(), r.Sketch[:]); err != nil {
			return fmt.Errorf("put user sketch of %s at %s: %w", r.Service, r.Start.Format(time.RFC3339), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put user sketches: %w", err)
	}
	return nil
}

// UserSketches implements users.Store.
func (s *DB) UserSketches(ctx context.Context, service string, from, to time.Time) ([]users.Row, error) {
	rs, err := s.db.QueryContext(ctx, `SELECT start, registers FROM user_sketches WHERE service = ? AND start > ? AND start <= ?`,
		service, from.Add(-users.BucketLength).Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read user sketches: %w", err)
	}
	defer rs.Close()
	var out []users.Row
	for rs.Next() {
		r := users.Row{Service: service}
		var start int64
		var regs []byte
		if err := rs.Scan(&start, &regs); err != nil {
			return nil, fmt.Errorf("read user sketches: %w", err)
		}
		if len(regs) != users.Registers {
			return nil, fmt.Errorf("read user sketches: a sketch of %d bytes, want %d", len(regs), users.Registers)
		}
		r.Start = time.Unix(start, 0).UTC()
		copy(r.Sketch[:], regs)
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read user sketches: %w", err)
	}
	return out, nil
}

// PruneUserSketches implements users.Store.
func (s *DB) PruneUserSketches(ctx context.Context, cut time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM user_sketches WHERE start < ?`, cut.Unix()); err != nil {
		return fmt.Errorf("prune user sketches: %w", err)
	}
	return nil
}
