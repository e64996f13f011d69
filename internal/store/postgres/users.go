package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/users"
)

var _ users.Store = (*DB)(nil)

// PutUserSketches implements users.Store: this instance's sketches
// replace its earlier ones.
func (s *DB) PutUserSketches(ctx context.Context, rows []users.Row) error {
	if len(rows) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, r := range rows {
			b.Queue(`INSERT INTO user_sketches (service, start, instance, registers) VALUES ($1, $2, $3, $4)
				ON CONFLICT (service, start, instance) DO UPDATE SET registers = excluded.registers`,
				r.Service, r.Start.Unix(), s.instance, r.Sketch[:])
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("put user sketches in %s: %w", s.where, err)
	}
	return nil
}

// UserSketches implements users.Store: every instance's.
func (s *DB) UserSketches(ctx context.Context, service string, from, to time.Time) ([]users.Row, error) {
	rows, err := s.pool.Query(ctx, `SELECT start, registers FROM user_sketches WHERE service = $1 AND start > $2 AND start <= $3`,
		service, from.Add(-users.BucketLength).Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read user sketches from %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []users.Row
	for rows.Next() {
		r := users.Row{Service: service}
		var start int64
		var regs []byte
		if err := rows.Scan(&start, &regs); err != nil {
			return nil, fmt.Errorf("read user sketches from %s: %w", s.where, err)
		}
		if len(regs) != users.Registers {
			return nil, fmt.Errorf("read user sketches from %s: a sketch of %d bytes, want %d", s.where, len(regs), users.Registers)
		}
		r.Start = time.Unix(start, 0).UTC()
		copy(r.Sketch[:], regs)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read user sketches from %s: %w", s.where, err)
	}
	return out, nil
}

// PruneUserSketches implements users.Store.
func (s *DB) PruneUserSketches(ctx context.Context, cut time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM user_sketches WHERE start < $1`, cut.Unix()); err != nil {
		return fmt.Errorf("prune user sketches in %s: %w", s.where, err)
	}
	return nil
}
