package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// walSchema holds the write-ahead log marks: what each consumer of each
// instance's log has stored, written in the same transaction as the
// counts (see package wal).
var walSchema = []string{
	`CREATE TABLE IF NOT EXISTS wal_marks (
		instance      TEXT NOT NULL,
		consumer      TEXT NOT NULL,
		pos           INTEGER NOT NULL,
		closed_before INTEGER NOT NULL,
		PRIMARY KEY (instance, consumer)
	)`,
}

var (
	_ slo.MarkedBucketStore = (*DB)(nil)
	_ signals.MarkedStore   = (*DB)(nil)
)

func putMark(ctx context.Context, tx *sql.Tx, m wal.Mark) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO wal_marks (instance, consumer, pos, closed_before) VALUES (?, ?, ?, ?)
		ON CONFLICT (instance, consumer) DO UPDATE SET pos = excluded.pos, closed_before = excluded.closed_before`,
		m.Instance, m.Consumer, int64(m.Pos), m.ClosedBefore)
	if err != nil {
		return fmt.Errorf("store write-ahead log mark of %s: %w", m.Consumer, err)
	}
	return nil
}

// AddSLIBucketsMarked implements slo.MarkedBucketStore.
func (s *DB) AddSLIBucketsMarked(ctx context.Context, buckets []slo.Bucket, mark wal.Mark, more ...wal.Mark) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add SLI buckets: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if err := insertSLIBuckets(ctx, tx, buckets); err != nil {
		return err
	}
	for _, m := range append([]wal.Mark{mark}, more...) {
		if err := putMark(ctx, tx, m); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add SLI buckets: %w", err)
	}
	return nil
}

// AppendSignalBucketsMarked implements signals.MarkedStore.
func (s *DB) AppendSignalBucketsMarked(ctx context.Context, buckets []signals.Bucket, mark wal.Mark) error {
	return s.signalsTx(ctx, "append signal buckets", func(tx *sql.Tx) error {
		if err := insertSignalBuckets(ctx, tx, buckets); err != nil {
			return err
		}
		return putMark(ctx, tx, mark)
	})
}

// WALMarks returns the stored marks of an instance's consumers.
func (s *DB) WALMarks(ctx context.Context, instance string) (map[string]wal.Mark, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT consumer, pos, closed_before FROM wal_marks WHERE instance = ?`, instance)
	if err != nil {
		return nil, fmt.Errorf("read write-ahead log marks: %w", err)
	}
	defer rows.Close()
	out := map[string]wal.Mark{}
	for rows.Next() {
		m := wal.Mark{Instance: instance}
		var pos int64
		if err := rows.Scan(&m.Consumer, &pos, &m.ClosedBefore); err != nil {
			return nil, fmt.Errorf("read write-ahead log marks: %w", err)
		}
		m.Pos = uint64(pos)
		out[m.Consumer] = m
	}
	return out, rows.Err()
}
