package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/incident"
)

var _ incident.EvidenceStore = (*DB)(nil)

// AddFailedTraces implements incident.EvidenceStore.
func (s *DB) AddFailedTraces(ctx context.Context, ts []incident.FailedTrace) error {
	if len(ts) == 0 {
		return nil
	}
	svcs, minutes, ids := make([]string, len(ts)), make([]int64, len(ts)), make([]string, len(ts))
	for i, t := range ts {
		svcs[i], minutes[i], ids[i] = t.Service, t.Minute.Unix(), t.TraceID
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO failed_traces (service, minute, trace_id)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) ON CONFLICT DO NOTHING`, svcs, minutes, ids)
		return err
	})
	if err != nil {
		return fmt.Errorf("add failed traces to %s: %w", s.where, err)
	}
	return nil
}

// FailedTraces implements incident.EvidenceStore.
func (s *DB) FailedTraces(ctx context.Context, services []string, from, to time.Time, limit int) ([]incident.FailedTrace, error) {
	if len(services) == 0 || limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT service, minute, trace_id FROM failed_traces
		WHERE minute >= $1 AND minute <= $2 AND service = ANY($3) ORDER BY minute, service, trace_id LIMIT $4`,
		from.Truncate(time.Minute).Unix(), to.Truncate(time.Minute).Unix(), services, limit)
	if err != nil {
		return nil, fmt.Errorf("read failed traces from %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []incident.FailedTrace
	for rows.Next() {
		var t incident.FailedTrace
		var m int64
		if err := rows.Scan(&t.Service, &m, &t.TraceID); err != nil {
			return nil, fmt.Errorf("read failed traces from %s: %w", s.where, err)
		}
		t.Minute = time.Unix(m, 0).UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read failed traces from %s: %w", s.where, err)
	}
	return out, nil
}

// PruneFailedTraces implements incident.EvidenceStore.
func (s *DB) PruneFailedTraces(ctx context.Context, cut time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM failed_traces WHERE minute < $1`, cut.Unix()); err != nil {
		return fmt.Errorf("prune failed traces in %s: %w", s.where, err)
	}
	return nil
}
