package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/incident"
)

// evidenceSchema holds kept traces with failed requests, for post-mortems.
var evidenceSchema = []string{
	`CREATE TABLE IF NOT EXISTS failed_traces (
		service  TEXT    NOT NULL,
		minute   INTEGER NOT NULL, -- Unix seconds of the minute's start
		trace_id TEXT    NOT NULL,
		PRIMARY KEY (service, minute, trace_id)
	)`,
}

var _ incident.EvidenceStore = (*DB)(nil)

// AddFailedTraces implements incident.EvidenceStore.
func (s *DB) AddFailedTraces(ctx context.Context, ts []incident.FailedTrace) error {
	if len(ts) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add failed traces: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for _, t := range ts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO failed_traces (service, minute, trace_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			t.Service, t.Minute.Unix(), t.TraceID); err != nil {
			return fmt.Errorf("add failed trace %s: %w", t.TraceID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add failed traces: %w", err)
	}
	return nil
}

// FailedTraces implements incident.EvidenceStore.
func (s *DB) FailedTraces(ctx context.Context, services []string, from, to time.Time, limit int) ([]incident.FailedTrace, error) {
	if len(services) == 0 || limit <= 0 {
		return nil, nil
	}
	args := []any{from.Truncate(time.Minute).Unix(), to.Truncate(time.Minute).Unix()}
	for _, svc := range services {
		args = append(args, svc)
	}
	args = append(args, limit)
	rs, err := s.db.QueryContext(ctx, `SELECT service, minute, trace_id FROM failed_traces
		WHERE minute >= ? AND minute <= ? AND service IN (?`+strings.Repeat(", ?", len(services)-1)+`)
		ORDER BY minute, service, trace_id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("read failed traces: %w", err)
	}
	defer rs.Close()
	var out []incident.FailedTrace
	for rs.Next() {
		var t incident.FailedTrace
		var m int64
		if err := rs.Scan(&t.Service, &m, &t.TraceID); err != nil {
			return nil, fmt.Errorf("read failed traces: %w", err)
		}
		t.Minute = time.Unix(m, 0).UTC()
		out = append(out, t)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read failed traces: %w", err)
	}
	return out, nil
}

// PruneFailedTraces implements incident.EvidenceStore.
func (s *DB) PruneFailedTraces(ctx context.Context, cut time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM failed_traces WHERE minute < ?`, cut.Unix()); err != nil {
		return fmt.Errorf("prune failed traces: %w", err)
	}
	return nil
}
