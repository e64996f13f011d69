package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tailgate-sre/tailgate/internal/signals"
)

// signalsSchema holds the tables of golden-signal minute buckets and error
// origins. Rows are additive: several rows of one operation and minute (a
// late span, another instance) are merged by the reader.
var signalsSchema = []string{
	`CREATE TABLE IF NOT EXISTS signal_buckets (
		service    TEXT    NOT NULL,
		operation  TEXT    NOT NULL,
		start_unix INTEGER NOT NULL, -- bucket start, unix seconds
		step_sec   INTEGER NOT NULL, -- 60, or 3600 once rolled up
		requests   INTEGER NOT NULL,
		errors     INTEGER NOT NULL,
		latency    BLOB    NOT NULL  -- signals.Sketch encoding
	)`,
	`CREATE INDEX IF NOT EXISTS signal_buckets_by_service ON signal_buckets (service, start_unix)`,
	`CREATE INDEX IF NOT EXISTS signal_buckets_by_time ON signal_buckets (start_unix, step_sec)`,
	`CREATE TABLE IF NOT EXISTS signal_error_origins (
		start_unix       INTEGER NOT NULL,
		service          TEXT    NOT NULL,
		origin_service   TEXT    NOT NULL,
		origin_operation TEXT    NOT NULL,
		reason           TEXT    NOT NULL,
		dependency       INTEGER NOT NULL,
		requests         REAL    NOT NULL,
		requests_5xx     REAL    NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS signal_error_origins_by_service ON signal_error_origins (service, start_unix)`,
	`CREATE INDEX IF NOT EXISTS signal_error_origins_by_origin ON signal_error_origins (origin_service, start_unix)`,
	`CREATE INDEX IF NOT EXISTS signal_error_origins_by_time ON signal_error_origins (start_unix)`,
}

var _ signals.Store = (*DB)(nil)

// AppendSignalBuckets adds golden-signal buckets in one transaction.
func (s *DB) AppendSignalBuckets(ctx context.Context, buckets []signals.Bucket) error {
	return s.signalsTx(ctx, "append signal buckets", func(tx *sql.Tx) error {
		return insertSignalBuckets(ctx, tx, buckets)
	})
}

func insertSignalBuckets(ctx context.Context, tx *sql.Tx, buckets []signals.Bucket) error {
	if len(buckets) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO signal_buckets
		(service, operation, start_unix, step_sec, requests, errors, latency) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, b := range buckets {
		if _, err := stmt.ExecContext(ctx, b.Service, b.Operation, b.Start.Unix(), int64(b.Step/time.Second),
			int64(b.Requests), int64(b.Errors), b.Latency); err != nil {
			return err
		}
	}
	return nil
}

// SignalBuckets returns the buckets that match f, oldest first.
func (s *DB) SignalBuckets(ctx context.Context, f signals.BucketFilter) ([]signals.Bucket, error) {
	q := `SELECT service, operation, start_unix, step_sec, requests, errors, latency
		FROM signal_buckets WHERE start_unix >= ? AND start_unix < ?`
	args := []any{f.From.Unix(), f.To.Unix()}
	if f.Service != "" {
		q += ` AND service = ?`
		args = append(args, f.Service)
	}
	if f.Step != 0 {
		q += ` AND step_sec = ?`
		args = append(args, int64(f.Step/time.Second))
	}
	q += ` ORDER BY start_unix`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read signal buckets from %q: %w", s.path, err)
	}
	defer rows.Close()
	var out []signals.Bucket
	for rows.Next() {
		var b signals.Bucket
		var start, step, req, errs int64
		if err := rows.Scan(&b.Service, &b.Operation, &start, &step, &req, &errs, &b.Latency); err != nil {
			return nil, fmt.Errorf("read signal buckets from %q: %w", s.path, err)
		}
		b.Start = time.Unix(start, 0).UTC()
		b.Step = time.Duration(step) * time.Second
		b.Requests, b.Errors = uint64(req), uint64(errs)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read signal buckets from %q: %w", s.path, err)
	}
	return out, nil
}

// OldestSignalBucket returns the start of the oldest bucket of a step.
func (s *DB) OldestSignalBucket(ctx context.Context, step time.Duration) (time.Time, bool, error) {
	var oldest sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MIN(start_unix) FROM signal_buckets WHERE step_sec = ?`,
		int64(step/time.Second)).Scan(&oldest)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("find oldest signal bucket in %q: %w", s.path, err)
	}
	if !oldest.Valid {
		return time.Time{}, false, nil
	}
	return time.Unix(oldest.Int64, 0).UTC(), true, nil
}

// ReplaceSignalBuckets deletes the minute buckets that start in [from, to)
// and adds buckets, in one transaction.
func (s *DB) ReplaceSignalBuckets(ctx context.Context, from, to time.Time, buckets []signals.Bucket) error {
	return s.signalsTx(ctx, "roll up signal buckets", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM signal_buckets WHERE step_sec = 60 AND start_unix >= ? AND start_unix < ?`,
			from.Unix(), to.Unix()); err != nil {
			return err
		}
		return insertSignalBuckets(ctx, tx, buckets)
	})
}

// AppendErrorOrigins adds error-origin rows in one transaction.
func (s *DB) AppendErrorOrigins(ctx context.Context, rows []signals.OriginRow) error {
	return s.signalsTx(ctx, "append error origins", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO signal_error_origins
			(start_unix, service, origin_service, origin_operation, reason, dependency, requests, requests_5xx)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rows {
			if _, err := stmt.ExecContext(ctx, r.Start.Unix(), r.Service, r.OriginService, r.OriginOperation,
				r.Reason, r.Dependency, r.Requests, r.Requests5xx); err != nil {
				return err
			}
		}
		return nil
	})
}

// ErrorOrigins returns the origin rows in [from, to) whose service or
// origin service is service.
func (s *DB) ErrorOrigins(ctx context.Context, service string, from, to time.Time) ([]signals.OriginRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT start_unix, service, origin_service, origin_operation, reason,
			dependency, requests, requests_5xx
		FROM signal_error_origins
		WHERE start_unix >= ? AND start_unix < ? AND (service = ? OR origin_service = ?)
		ORDER BY start_unix`, from.Unix(), to.Unix(), service, service)
	if err != nil {
		return nil, fmt.Errorf("read error origins from %q: %w", s.path, err)
	}
	defer rows.Close()
	var out []signals.OriginRow
	for rows.Next() {
		var r signals.OriginRow
		var start int64
		if err := rows.Scan(&start, &r.Service, &r.OriginService, &r.OriginOperation, &r.Reason,
			&r.Dependency, &r.Requests, &r.Requests5xx); err != nil {
			return nil, fmt.Errorf("read error origins from %q: %w", s.path, err)
		}
		r.Start = time.Unix(start, 0).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read error origins from %q: %w", s.path, err)
	}
	return out, nil
}

// DeleteSignalsBefore deletes buckets and origin rows that start before t.
func (s *DB) DeleteSignalsBefore(ctx context.Context, t time.Time) error {
	return s.signalsTx(ctx, "expire golden signals", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM signal_buckets WHERE start_unix < ?`, t.Unix()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM signal_error_origins WHERE start_unix < ?`, t.Unix())
		return err
	})
}

// signalsTx runs fn in a transaction, committing when it returns nil.
func (s *DB) signalsTx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s in %q: %w", what, s.path, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error that matters is fn's
		return fmt.Errorf("%s in %q: %w", what, s.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s in %q: %w", what, s.path, err)
	}
	return nil
}
