package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

var (
	_ signals.Store       = (*DB)(nil)
	_ signals.MarkedStore = (*DB)(nil)
)

// AppendSignalBuckets adds golden-signal buckets, as this instance's rows.
func (s *DB) AppendSignalBuckets(ctx context.Context, buckets []signals.Bucket) error {
	return s.signalsTx(ctx, "append signal buckets", func(tx pgx.Tx) error {
		return s.insertSignalBuckets(ctx, tx, buckets)
	})
}

// AppendSignalBucketsMarked implements signals.MarkedStore.
func (s *DB) AppendSignalBucketsMarked(ctx context.Context, buckets []signals.Bucket, mark wal.Mark) error {
	return s.signalsTx(ctx, "append signal buckets", func(tx pgx.Tx) error {
		if err := s.insertSignalBuckets(ctx, tx, buckets); err != nil {
			return err
		}
		return putMark(ctx, tx, mark)
	})
}

func (s *DB) insertSignalBuckets(ctx context.Context, tx pgx.Tx, buckets []signals.Bucket) error {
	if len(buckets) == 0 {
		return nil
	}
	rows := make([][]any, len(buckets))
	for i, b := range buckets {
		rows[i] = []any{b.Service, b.Operation, b.Start.Unix(), int64(b.Step / time.Second), s.instance,
			int64(b.Requests), int64(b.Errors), b.Latency}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"signal_buckets"},
		[]string{"service", "operation", "start_unix", "step_sec", "instance", "requests", "errors", "latency"},
		pgx.CopyFromRows(rows))
	return err
}

// SignalBuckets returns the buckets of every instance that match f, oldest
// first.
func (s *DB) SignalBuckets(ctx context.Context, f signals.BucketFilter) ([]signals.Bucket, error) {
	q := `SELECT service, operation, start_unix, step_sec, requests, errors, latency
		FROM signal_buckets WHERE start_unix >= $1 AND start_unix < $2`
	args := []any{f.From.Unix(), f.To.Unix()}
	if f.Service != "" {
		args = append(args, f.Service)
		q += fmt.Sprintf(` AND service = $%d`, len(args))
	}
	if f.Step != 0 {
		args = append(args, int64(f.Step/time.Second))
		q += fmt.Sprintf(` AND step_sec = $%d`, len(args))
	}
	q += ` ORDER BY start_unix`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read signal buckets from %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []signals.Bucket
	for rows.Next() {
		var b signals.Bucket
		var start, step, req, errs int64
		if err := rows.Scan(&b.Service, &b.Operation, &start, &step, &req, &errs, &b.Latency); err != nil {
			return nil, fmt.Errorf("read signal buckets from %s: %w", s.where, err)
		}
		b.Start = time.Unix(start, 0).UTC()
		b.Step = time.Duration(step) * time.Second
		b.Requests, b.Errors = uint64(req), uint64(errs)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read signal buckets from %s: %w", s.where, err)
	}
	return out, nil
}

// OldestSignalBucket returns the start of the oldest bucket of a step.
func (s *DB) OldestSignalBucket(ctx context.Context, step time.Duration) (time.Time, bool, error) {
	var oldest *int64
	if err := s.pool.QueryRow(ctx, `SELECT MIN(start_unix) FROM signal_buckets WHERE step_sec = $1`,
		int64(step/time.Second)).Scan(&oldest); err != nil {
		return time.Time{}, false, fmt.Errorf("find oldest signal bucket in %s: %w", s.where, err)
	}
	if oldest == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(*oldest, 0).UTC(), true, nil
}

// ReplaceSignalBuckets deletes every instance's minute buckets that start
// in [from, to) and adds buckets (the rollup), in one transaction.
func (s *DB) ReplaceSignalBuckets(ctx context.Context, from, to time.Time, buckets []signals.Bucket) error {
	return s.signalsTx(ctx, "roll up signal buckets", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM signal_buckets WHERE step_sec = 60 AND start_unix >= $1 AND start_unix < $2`,
			from.Unix(), to.Unix()); err != nil {
			return err
		}
		return s.insertSignalBuckets(ctx, tx, buckets)
	})
}

// AppendErrorOrigins adds error-origin rows.
func (s *DB) AppendErrorOrigins(ctx context.Context, origins []signals.OriginRow) error {
	if len(origins) == 0 {
		return nil
	}
	return s.signalsTx(ctx, "append error origins", func(tx pgx.Tx) error {
		rows := make([][]any, len(origins))
		for i, r := range origins {
			rows[i] = []any{r.Start.Unix(), r.Service, r.OriginService, r.OriginOperation, r.Reason, r.Dependency, r.Requests, r.Requests5xx}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"signal_error_origins"},
			[]string{"start_unix", "service", "origin_service", "origin_operation", "reason", "dependency", "requests", "requests_5xx"},
			pgx.CopyFromRows(rows))
		return err
	})
}

// ErrorOrigins returns the origin rows in [from, to) whose service or
// origin service is service.
func (s *DB) ErrorOrigins(ctx context.Context, service string, from, to time.Time) ([]signals.OriginRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT start_unix, service, origin_service, origin_operation, reason,
			dependency, requests, requests_5xx
		FROM signal_error_origins
		WHERE start_unix >= $1 AND start_unix < $2 AND (service = $3 OR origin_service = $3)
		ORDER BY start_unix`, from.Unix(), to.Unix(), service)
	if err != nil {
		return nil, fmt.Errorf("read error origins from %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []signals.OriginRow
	for rows.Next() {
		var r signals.OriginRow
		var start int64
		if err := rows.Scan(&start, &r.Service, &r.OriginService, &r.OriginOperation, &r.Reason,
			&r.Dependency, &r.Requests, &r.Requests5xx); err != nil {
			return nil, fmt.Errorf("read error origins from %s: %w", s.where, err)
		}
		r.Start = time.Unix(start, 0).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read error origins from %s: %w", s.where, err)
	}
	return out, nil
}

// DeleteSignalsBefore deletes buckets and origin rows that start before t.
func (s *DB) DeleteSignalsBefore(ctx context.Context, t time.Time) error {
	return s.signalsTx(ctx, "expire golden signals", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM signal_buckets WHERE start_unix < $1`, t.Unix()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM signal_error_origins WHERE start_unix < $1`, t.Unix())
		return err
	})
}

// signalsTx runs fn in a transaction, committing when it returns nil.
func (s *DB) signalsTx(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	if err := s.tx(ctx, fn); err != nil {
		return fmt.Errorf("%s in %s: %w", what, s.where, err)
	}
	return nil
}
