package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
)

// canarySchema holds the per-version minute counts of the canary checks.
var canarySchema = []string{
	`CREATE TABLE IF NOT EXISTS canary_counts (
		service  TEXT    NOT NULL,
		version  TEXT    NOT NULL,
		minute   INTEGER NOT NULL, -- Unix seconds of the minute's start
		requests INTEGER NOT NULL,
		errors   INTEGER NOT NULL,
		slow     INTEGER NOT NULL,
		PRIMARY KEY (service, version, minute)
	)`,
	`CREATE INDEX IF NOT EXISTS canary_counts_minute ON canary_counts (minute)`,
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
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO canary_counts (service, version, minute, requests, errors, slow) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (service, version, minute) DO UPDATE SET requests = requests + excluded.requests,
			errors = errors + excluded.errors, slow = slow + excluded.slow`)
	if err != nil {
		return fmt.Errorf("add canary counts: %w", err)
	}
	defer stmt.Close()
	for _, r := range rows {
		if _, err := stmt.ExecContext(ctx, r.Service, r.Version, r.Minute.Unix(), int64(r.Requests), int64(r.Errors), int64(r.Slow)); err != nil {
			return fmt.Errorf("add canary counts of %s %s at %s: %w", r.Service, r.Version, r.Minute.Format(time.RFC3339), err)
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
	rs, err := s.db.QueryContext(ctx, `SELECT service, version, minute, requests, errors, slow FROM canary_counts WHERE minute >= ?`,
		since.Truncate(time.Minute).Unix())
	if err != nil {
		return nil, nil, fmt.Errorf("read canary counts: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var r canary.VersionRow
		var m, req, bad, slow int64
		if err := rs.Scan(&r.Service, &r.Version, &m, &req, &bad, &slow); err != nil {
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
