package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TableScanner reads a table of the embedded store, row by row
// (*sqlite.DB's ScanTable).
type TableScanner func(ctx context.Context, table string, cols []string, fn func(row []any) error) error

// importTable is how one embedded-store table lands in the fleet store.
type importTable struct {
	name string
	cols []string // read from the embedded store, written under the same names
	// convert adapts a row in place (types the two stores keep
	// differently); nil keeps it.
	convert func(row []any) error
	// perInstance tables get the importing instance's name in an
	// instance column.
	perInstance bool
	// serial names the column whose sequence continues after the copied
	// rows ("" for none).
	serial string
}

// importTables lists every table of the embedded store, in the order
// they are copied.
var importTables = []importTable{
	{name: "slo_buckets", cols: []string{"slo", "grp", "minute", "good", "total"}, perInstance: true},
	{name: "slo_tracking", cols: []string{"slo", "since"}, convert: func(r []any) error {
		// The embedded store keeps RFC 3339 text; the fleet store Unix ns.
		s, _ := r[1].(string)
		t, err := time.Parse(time.RFC3339Nano, s)
		r[1] = t.UnixNano()
		return err
	}},
	{name: "slo_corrections", cols: []string{"id", "slo", "start", "end_time", "duration", "rrule", "time_zone", "reason",
		"created_by", "created_at", "deleted_by", "deleted_at"}, serial: "id"},
	{name: "slo_alert_transitions", cols: []string{"id", "slo", "service", "grp", "alert", "kind", "severity", "from_state",
		"to_state", "at", "alert_values"}, serial: "id"},
	{name: "signal_buckets", cols: []string{"service", "operation", "start_unix", "step_sec", "requests", "errors", "latency"}, perInstance: true},
	{name: "signal_error_origins", cols: []string{"start_unix", "service", "origin_service", "origin_operation", "reason",
		"dependency", "requests", "requests_5xx"}, convert: boolAt(5)},
	{name: "gate_decisions", cols: []string{"id", "service", "change_class", "verdict", "policy_rule", "evaluated_at", "record"}},
	{name: "gate_overrides", cols: []string{"id", "service", "change_classes", "reason", "approved_by", "created_by",
		"created_at", "expires_at", "revoked_at", "revoked_by"}},
	{name: "gate_deploys", cols: []string{"id", "service", "version", "environment", "change_class", "at", "deployed_by",
		"description", "principal", "rollback_command"}},
	{name: "audit_log", cols: []string{"seq", "kind", "actor", "at", "payload", "prev_hash", "hash"}},
	{name: "flag_states", cols: []string{"key", "forced_variant", "forced_by", "paused", "version", "since"}, convert: boolAt(3)},
	{name: "flag_history", cols: []string{"id", "key", "at", "record"}, serial: "id"},
	{name: "flag_definitions", cols: []string{"key", "definition", "updated_at"}},
	{name: "incidents", cols: []string{"seq", "id", "state", "declared_at", "version", "record"}},
	{name: "incident_entries", cols: []string{"n", "incident", "at", "record"}, serial: "n"},
	{name: "wal_marks", cols: []string{"instance", "consumer", "pos", "closed_before"}},
	{name: "canary_counts", cols: []string{"service", "version", "operation", "minute", "requests", "errors", "slow"}, perInstance: true},
	{name: "user_sketches", cols: []string{"service", "start", "registers"}, perInstance: true},
	{name: "failed_traces", cols: []string{"service", "minute", "trace_id"}},
}

// boolAt converts SQLite's 0/1 integer at column i to a boolean.
func boolAt(i int) func([]any) error {
	return func(r []any) error {
		n, ok := r[i].(int64)
		if !ok {
			return fmt.Errorf("column %d: want 0 or 1, got %v", i+1, r[i])
		}
		r[i] = n != 0
		return nil
	}
}

// ImportStats counts the rows Import copied, per table.
type ImportStats map[string]int64

// ErrNotEmpty is returned by Import into a store that holds state.
var ErrNotEmpty = errors.New("the fleet store is not empty")

// Import copies everything an embedded store holds into this (empty)
// fleet store, in one transaction: counts and log marks under this
// store's instance name (the name the moved instance will run with, so
// that it replays its write-ahead log from its marks and counts nothing
// twice), the audit log row for row (its hash chain stays intact), the
// IDs of corrections, transitions and history. progress, if not nil, is
// called after each table.
func (s *DB) Import(ctx context.Context, scan TableScanner, progress func(table string, rows int64)) (ImportStats, error) {
	stats := ImportStats{}
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		for _, t := range []string{"slo_buckets", "audit_log", "gate_decisions", "signal_buckets", "flag_states", "incidents"} {
			var has bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t+`)`).Scan(&has); err != nil {
				return err
			}
			if has {
				return fmt.Errorf("%w: %s has rows; copy into a new database", ErrNotEmpty, t)
			}
		}
		for _, t := range importTables {
			cols := t.cols
			if t.perInstance {
				cols = append(append([]string(nil), cols...), "instance")
			}
			rows := make(chan []any, 256)
			scanErr := make(chan error, 1)
			scanCtx, cancel := context.WithCancel(ctx)
			go func() {
				defer close(rows)
				scanErr <- scan(scanCtx, t.name, t.cols, func(r []any) error {
					if t.convert != nil {
						if err := t.convert(r); err != nil {
							return fmt.Errorf("%s: %w", t.name, err)
						}
					}
					if t.perInstance {
						r = append(r, s.instance)
					}
					if t.name == "wal_marks" {
						r[0] = s.instance // the marks are of the instance's own log
					}
					select {
					case rows <- r:
						return nil
					case <-scanCtx.Done():
						return scanCtx.Err()
					}
				})
			}()
			n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, cols, pgx.CopyFromFunc(func() ([]any, error) {
				r, ok := <-rows
				if !ok {
					return nil, nil
				}
				return r, nil
			}))
			cancel()
			for range rows { // let the scanner finish after a failed copy
			}
			if serr := <-scanErr; serr != nil && err == nil {
				err = serr
			}
			if err != nil {
				return fmt.Errorf("copy %s: %w", t.name, err)
			}
			if t.serial != "" && n > 0 {
				if _, err := tx.Exec(ctx, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), (SELECT MAX(%s) FROM %s))`,
					t.name, t.serial, t.serial, t.name)); err != nil {
					return fmt.Errorf("continue %s's numbering: %w", t.name, err)
				}
			}
			stats[t.name] = n
			if progress != nil {
				progress(t.name, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("copy into %s: %w", s.where, err)
	}
	return stats, nil
}

// Tables lists the tables Import copies, for messages and tests.
func Tables() []string {
	out := make([]string, len(importTables))
	for i, t := range importTables {
		out[i] = t.name
	}
	return out
}
