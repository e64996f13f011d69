package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/wal"
)

func putMark(ctx context.Context, tx pgx.Tx, m wal.Mark) error {
	_, err := tx.Exec(ctx, `INSERT INTO wal_marks (instance, consumer, pos, closed_before) VALUES ($1, $2, $3, $4)
		ON CONFLICT (instance, consumer) DO UPDATE SET pos = excluded.pos, closed_before = excluded.closed_before`,
		m.Instance, m.Consumer, int64(m.Pos), m.ClosedBefore)
	if err != nil {
		return fmt.Errorf("store write-ahead log mark of %s: %w", m.Consumer, err)
	}
	return nil
}

// WALMarks returns the stored marks of an instance's consumers.
func (s *DB) WALMarks(ctx context.Context, instance string) (map[string]wal.Mark, error) {
	rows, err := s.pool.Query(ctx, `SELECT consumer, pos, closed_before FROM wal_marks WHERE instance = $1`, instance)
	if err != nil {
		return nil, fmt.Errorf("read write-ahead log marks from %s: %w", s.where, err)
	}
	defer rows.Close()
	out := map[string]wal.Mark{}
	for rows.Next() {
		m := wal.Mark{Instance: instance}
		var pos int64
		if err := rows.Scan(&m.Consumer, &pos, &m.ClosedBefore); err != nil {
			return nil, fmt.Errorf("read write-ahead log marks from %s: %w", s.where, err)
		}
		m.Pos = uint64(pos)
		out[m.Consumer] = m
	}
	return out, rows.Err()
}
