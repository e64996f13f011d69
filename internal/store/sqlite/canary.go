package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
)

// canaryTable is the per-version, per-operation minute counts of the
// canary checks.
const canaryTable = `CREATE TABLE IF NOT EXISTS canary_counts (
		service   TEXT    NOT NULL,
		version   TEXT    NOT NULL,
		operation TEXT    NOT NULL DEFAULT '',
		minute    INTEGER NOT NULL, -- Unix seconds of the minute's start
		requests  INTEGER NOT NULL,
		errors    INTEGER NOT NULL,
		slow      INTEGER NOT NULL,
		PRIMARY KEY (service, version, operation, minute)
	)`

// canarySchema holds the canary counts.
var canarySchema = []string{
	canaryTable,
	`CREATE INDEX IF NOT EXISTS canary_counts_minute ON canary_counts (minute)`,
}

// upgradeCanaryCounts rebuilds a canary_counts table from before the
// operation column (its primary key grew a column, which SQLite cannot
// alter in place): the old rows become rows of operation "".
func (s *DB) upgradeCanaryCounts(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('canary_counts') WHERE name = 'operation'`).Scan(&n); err != nil {
		return fmt.Errorf("migrate canary_counts: %w", err)
	}
	if n > 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate canary_counts: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for _, stmt := range []string{
		`ALTER TABLE canary_counts RENAME TO canary_counts_v1`,
		canaryTable,
		`INSERT INTO canary_counts (service, version, operation, minute, requests, errors, slow)
			SELECT service, version, '', minute, requests, errors, slow FROM canary_counts_v1`,
		`DROP TABLE canary_counts_v1`,
		`CREATE INDEX IF NOT EXISTS canary_counts_minute ON canary_counts (minute)`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migrate canary_counts: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate canary_counts: %w", err)
	}
	return nil
}

var _ canary.Store = (*DB)(nil)

// AddCanaryCounts implements canary.Store: the counts are added to the
// rows'.
func (s *DB) AddCanaryCounts(ctx context.Context, rows []canary.VersionRow) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add canary counts: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO canary_counts (service, version, operation, minute, requests, errors, slow) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (service, version, operation, minute) DO UPDATE SET requests = requests + excluded.requests,
			errors = errors + excluded.errors, slow = slow + excluded.slow`)
	if err != nil {
		return fmt.Errorf("add canary counts: %w", err)
	}
	defer stmt.Close()
	for _, r := range rows {
		if _, err := stmt.ExecContext(ctx, r.Service, r.Version, r.Operation, r.Minute.Unix(), int64(r.Requests), int64(r.Errors), int64(r.Slow)); err != nil {
			return fmt.Errorf("add canary counts of %s %s %q at %s: %w", r.Service, r.Version, r.Operation, r.Minute.Format(time.RFC3339), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add canary counts: %w", err)
	}
	return nil
}

// CanaryCounts implements canary.Store. The embedded store has one
// instance: every row is its own.
func (s *DB) CanaryCounts(ctx context.Context, since time.Time) (own, peers []canary.VersionRow, err error) {
	rs, err := s.db.QueryContext(ctx, `SELECT service, version, operation, minute, requests, errors, slow FROM canary_counts WHERE minute >= ?`,
		since.Truncate(time.Minute).Unix())
	if err != nil {
		return nil, nil, fmt.Errorf("read canary counts: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var r canary.VersionRow
		var m, req, bad, slow int64
		if err := rs.Scan(&r.Service, &r.Version, &r.Operation, &m, &req, &bad, &slow); err != nil {
			return nil, nil, fmt.Errorf("read canary counts: %w", err)
		}
		r.Minute = time.Unix(m, 0).UTC()
		r.Requests, r.Errors, r.Slow = uint64(req), uint64(bad), uint64(slow)
		own = append(own, r)
	}
	if err := rs.Err(); err != nil {
		return nil, nil, fmt.Errorf("read canary counts: %w", err)
	}
	return own, nil, nil
}

// PruneCanaryCounts implements canary.Store.
func (s *DB) PruneCanaryCounts(ctx context.Context, cut time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM canary_counts WHERE minute < ?`, cut.Unix()); err != nil {
		return fmt.Errorf("prune canary counts: %w", err)
	}
	return nil
}
