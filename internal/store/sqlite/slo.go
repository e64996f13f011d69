package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

var _ slo.Store = (*DB)(nil)

// sloSchema holds the tables of SLI minute buckets, corrections and alert
// transitions.
var sloSchema = []string{
	// One row per SLO, group ("" for the SLO as a whole) and minute (Unix
	// seconds of its start). Writes add to the row, so instances sum.
	`CREATE TABLE IF NOT EXISTS slo_buckets (
		slo    TEXT    NOT NULL,
		grp    TEXT    NOT NULL DEFAULT '',
		minute INTEGER NOT NULL,
		good   INTEGER NOT NULL,
		total  INTEGER NOT NULL,
		PRIMARY KEY (slo, grp, minute)
	) WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS slo_buckets_minute ON slo_buckets (minute)`,
	// When counting began per SLO: the start of its windows' coverage.
	`CREATE TABLE IF NOT EXISTS slo_tracking (
		slo   TEXT PRIMARY KEY,
		since TEXT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS slo_corrections (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		slo        TEXT NOT NULL,
		start      TEXT NOT NULL,
		end_time   TEXT NOT NULL DEFAULT '',
		duration   TEXT NOT NULL DEFAULT '',
		rrule      TEXT NOT NULL DEFAULT '',
		time_zone  TEXT NOT NULL DEFAULT '',
		reason     TEXT NOT NULL,
		created_by TEXT NOT NULL DEFAULT '',
		created_at TEXT NOT NULL,
		deleted_by TEXT NOT NULL DEFAULT '',
		deleted_at TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE INDEX IF NOT EXISTS slo_corrections_slo ON slo_corrections (slo)`,
	`CREATE TABLE IF NOT EXISTS slo_alert_transitions (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		slo        TEXT    NOT NULL,
		service    TEXT    NOT NULL,
		grp        TEXT    NOT NULL DEFAULT '',
		alert      TEXT    NOT NULL,
		kind       TEXT    NOT NULL,
		severity   TEXT    NOT NULL,
		from_state TEXT    NOT NULL,
		to_state   TEXT    NOT NULL,
		at         INTEGER NOT NULL, -- Unix nanoseconds
		alert_values TEXT  NOT NULL  -- JSON of slo.AlertValues
	)`,
	`CREATE INDEX IF NOT EXISTS slo_alert_transitions_key ON slo_alert_transitions (slo, grp, alert, id)`,
	`CREATE INDEX IF NOT EXISTS slo_alert_transitions_at ON slo_alert_transitions (at)`,
}

// addedColumn is a column added to a table after its first release: a store
// created before gets it by ALTER TABLE at Open.
type addedColumn struct{ table, column, decl string }

// sloAddedColumns are the columns added to the SLO tables since their
// CREATE TABLE first shipped.
var sloAddedColumns = []addedColumn{
	// Soft deletion of corrections: who deleted one and when ('' while it
	// applies).
	{"slo_corrections", "deleted_by", "TEXT NOT NULL DEFAULT ''"},
	{"slo_corrections", "deleted_at", "TEXT NOT NULL DEFAULT ''"},
	// The command that undoes a deploy.
	{"gate_deploys", "rollback_command", "TEXT NOT NULL DEFAULT ''"},
}

// addColumns adds the columns a table lacks. SQLite has no ADD COLUMN IF
// NOT EXISTS, so the table's columns are read first.
func (s *DB) addColumns(ctx context.Context, cols []addedColumn) error {
	for _, c := range cols {
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n); err != nil {
			return fmt.Errorf("migrate %s.%s: %w", c.table, c.column, err)
		}
		if n > 0 {
			continue
		}
		if _, err := s.db.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.column+` `+c.decl); err != nil {
			return fmt.Errorf("migrate %s.%s: %w", c.table, c.column, err)
		}
	}
	return nil
}

// AddSLIBuckets adds the buckets' counts to the stored minutes, in one
// transaction.
func (s *DB) AddSLIBuckets(ctx context.Context, buckets []slo.Bucket) error {
	if len(buckets) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add SLI buckets: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if err := insertSLIBuckets(ctx, tx, buckets); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add SLI buckets: %w", err)
	}
	return nil
}

func insertSLIBuckets(ctx context.Context, tx *sql.Tx, buckets []slo.Bucket) error {
	if len(buckets) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO slo_buckets (slo, grp, minute, good, total) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (slo, grp, minute) DO UPDATE SET good = good + excluded.good, total = total + excluded.total`)
	if err != nil {
		return fmt.Errorf("add SLI buckets: %w", err)
	}
	defer stmt.Close()
	for _, b := range buckets {
		if _, err := stmt.ExecContext(ctx, b.SLO, b.Group, b.Minute.Unix(), int64(b.Good), int64(b.Total)); err != nil {
			return fmt.Errorf("add SLI bucket of %q at %s: %w", b.SLO, b.Minute.Format(time.RFC3339), err)
		}
	}
	return nil
}

// LoadSLIBuckets returns the buckets from since on, in minute order.
func (s *DB) LoadSLIBuckets(ctx context.Context, since time.Time) ([]slo.Bucket, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT slo, grp, minute, good, total FROM slo_buckets WHERE minute >= ? ORDER BY minute, slo, grp`, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("load SLI buckets: %w", err)
	}
	defer rows.Close()
	var out []slo.Bucket
	for rows.Next() {
		var b slo.Bucket
		var m, g, t int64
		if err := rows.Scan(&b.SLO, &b.Group, &m, &g, &t); err != nil {
			return nil, fmt.Errorf("load SLI buckets: %w", err)
		}
		b.Minute, b.Good, b.Total = time.Unix(m, 0).UTC(), uint64(g), uint64(t)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load SLI buckets: %w", err)
	}
	return out, nil
}

// DeleteSLIBucketsBefore drops buckets older than before.
func (s *DB) DeleteSLIBucketsBefore(ctx context.Context, before time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM slo_buckets WHERE minute < ?`, before.Unix()); err != nil {
		return fmt.Errorf("prune SLI buckets: %w", err)
	}
	return nil
}

// TrackSLO records that counting of an SLO began at now unless it already
// had, and returns when it began.
func (s *DB) TrackSLO(ctx context.Context, name string, now time.Time) (time.Time, error) {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO slo_tracking (slo, since) VALUES (?, ?) ON CONFLICT (slo) DO NOTHING`,
		name, now.UTC().Format(time.RFC3339Nano)); err != nil {
		return time.Time{}, fmt.Errorf("track SLO %q: %w", name, err)
	}
	var since string
	if err := s.db.QueryRowContext(ctx, `SELECT since FROM slo_tracking WHERE slo = ?`, name).Scan(&since); err != nil {
		return time.Time{}, fmt.Errorf("track SLO %q: %w", name, err)
	}
	t, err := time.Parse(time.RFC3339Nano, since)
	if err != nil {
		return time.Time{}, fmt.Errorf("track SLO %q: bad stored time %q: %w", name, since, err)
	}
	return t, nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// AddCorrection stores a correction and returns it with its ID. Times keep
// their offsets, which a recurrence without a time zone follows. Its audit
// row is appended in the same transaction.
func (s *DB) AddCorrection(ctx context.Context, c slo.Correction) (slo.Correction, error) {
	dur := ""
	if c.Duration != 0 {
		dur = c.Duration.String()
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO slo_corrections (slo, start, end_time, duration, rrule, time_zone, reason, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.SLO, formatTime(c.Start), formatTime(c.End), dur, c.RRule, c.TimeZone, c.Reason, c.CreatedBy, formatTime(c.CreatedAt))
		if err != nil {
			return err
		}
		if c.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		rec := c
		rec.Source = slo.SourceAPI
		e, err := gate.NewAuditEntry(gate.AuditCorrection, c.CreatedBy, c.CreatedAt, rec)
		if err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, []gate.AuditEntry{e})
	})
	if err != nil {
		return slo.Correction{}, fmt.Errorf("add correction to %q: %w", c.SLO, err)
	}
	return c, nil
}

// correctionDeletion is the audit payload of a deleted correction.
type correctionDeletion struct {
	SLO       string    `json:"slo"`
	ID        int64     `json:"id"`
	DeletedBy string    `json:"deleted_by"`
	DeletedAt time.Time `json:"deleted_at"`
}

// ListCorrections returns every stored correction in ID order, deleted
// ones included.
func (s *DB) ListCorrections(ctx context.Context) ([]slo.Correction, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, slo, start, end_time, duration, rrule, time_zone, reason, created_by, created_at,
		deleted_by, deleted_at FROM slo_corrections ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list corrections: %w", err)
	}
	defer rows.Close()
	var out []slo.Correction
	for rows.Next() {
		var c slo.Correction
		var start, end, dur, created, deleted string
		if err := rows.Scan(&c.ID, &c.SLO, &start, &end, &dur, &c.RRule, &c.TimeZone, &c.Reason, &c.CreatedBy, &created,
			&c.DeletedBy, &deleted); err != nil {
			return nil, fmt.Errorf("list corrections: %w", err)
		}
		var errs []error
		var e1, e2, e3, e4 error
		c.Start, e1 = parseTime(start)
		c.End, e2 = parseTime(end)
		c.CreatedAt, e3 = parseTime(created)
		c.DeletedAt, e4 = parseTime(deleted)
		errs = append(errs, e1, e2, e3, e4)
		if dur != "" {
			errs = append(errs, c.Duration.UnmarshalText([]byte(dur)))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("list corrections: correction %d: %w", c.ID, err)
		}
		c.Source = slo.SourceAPI
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list corrections: %w", err)
	}
	return out, nil
}

// DeleteCorrection marks a correction of an SLO deleted by by at at; the
// row stays, for the record. False when none had the ID or it was already
// deleted.
func (s *DB) DeleteCorrection(ctx context.Context, name string, id int64, by string, at time.Time) (bool, error) {
	if at.IsZero() {
		return false, fmt.Errorf("delete correction %d of %q: no deletion time", id, name)
	}
	deleted := false
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE slo_corrections SET deleted_by = ?, deleted_at = ?
			WHERE slo = ? AND id = ? AND deleted_at = ''`, by, formatTime(at), name, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		deleted = true
		e, err := gate.NewAuditEntry(gate.AuditCorrectionDelete, by, at, correctionDeletion{SLO: name, ID: id, DeletedBy: by, DeletedAt: at})
		if err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, []gate.AuditEntry{e})
	})
	if err != nil {
		return false, fmt.Errorf("delete correction %d of %q: %w", id, name, err)
	}
	return deleted, nil
}

// AddAlertTransitions appends transitions in one transaction.
func (s *DB) AddAlertTransitions(ctx context.Context, ts []slo.Transition) error {
	if len(ts) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add alert transitions: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for _, t := range ts {
		vals, err := json.Marshal(t.Values)
		if err != nil {
			return fmt.Errorf("add alert transitions: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO slo_alert_transitions (slo, service, grp, alert, kind, severity, from_state, to_state, at, alert_values)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.SLO, t.Service, t.Group, t.Alert, t.Kind.String(), t.Severity.String(),
			t.From.String(), t.To.String(), t.At.UnixNano(), string(vals)); err != nil {
			return fmt.Errorf("add alert transition of %q: %w", t.SLO, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add alert transitions: %w", err)
	}
	return nil
}

const transitionColumns = `slo, service, grp, alert, kind, severity, from_state, to_state, at, alert_values`

func scanTransitions(rows *sql.Rows) ([]slo.Transition, error) {
	defer rows.Close()
	out := []slo.Transition{}
	for rows.Next() {
		var t slo.Transition
		var kind, sev, from, to, vals string
		var at int64
		if err := rows.Scan(&t.SLO, &t.Service, &t.Group, &t.Alert, &kind, &sev, &from, &to, &at, &vals); err != nil {
			return nil, err
		}
		t.At = time.Unix(0, at).UTC()
		err := errors.Join(t.Kind.UnmarshalText([]byte(kind)), t.From.UnmarshalText([]byte(from)), t.To.UnmarshalText([]byte(to)))
		if sev != "" {
			err = errors.Join(err, t.Severity.UnmarshalText([]byte(sev)))
		}
		if err == nil {
			err = json.Unmarshal([]byte(vals), &t.Values)
		}
		if err != nil {
			return nil, fmt.Errorf("alert transition of %q at %s: %w", t.SLO, t.At.Format(time.RFC3339), err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// LatestAlertTransitions returns the newest transition of each alert.
func (s *DB) LatestAlertTransitions(ctx context.Context) ([]slo.Transition, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+transitionColumns+` FROM slo_alert_transitions
		WHERE id IN (SELECT MAX(id) FROM slo_alert_transitions GROUP BY slo, grp, alert) ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load alert states: %w", err)
	}
	ts, err := scanTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("load alert states: %w", err)
	}
	return ts, nil
}

// ListAlertTransitions returns transitions newest first, of one SLO when
// name is not empty, at or after since, at most limit (0: no limit).
func (s *DB) ListAlertTransitions(ctx context.Context, name string, since time.Time, limit int) ([]slo.Transition, error) {
	if limit <= 0 {
		limit = -1
	}
	from := int64(math.MinInt64)
	if !since.IsZero() {
		from = since.UnixNano()
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+transitionColumns+` FROM slo_alert_transitions
		WHERE (? = '' OR slo = ?) AND at >= ? ORDER BY id DESC LIMIT ?`, name, name, from, limit)
	if err != nil {
		return nil, fmt.Errorf("list alert transitions: %w", err)
	}
	ts, err := scanTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("list alert transitions: %w", err)
	}
	return ts, nil
}
