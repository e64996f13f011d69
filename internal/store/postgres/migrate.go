package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migration is one versioned, additive step of the schema. Migrations are
// never edited once released: a change is a new migration.
type migration struct {
	version int
	name    string
	stmts   []string
}

// ErrSchemaTooNew is returned by Open when the database was migrated by a
// newer tailgate: this one does not know the schema and refuses to write
// to it. Finish the upgrade, or roll the newer instances back first.
var ErrSchemaTooNew = errors.New("the database schema is newer than this tailgate knows")

// Version returns the newest schema version this build knows.
func Version() int { return migrations[len(migrations)-1].version }

// migrations is the schema's history, oldest first.
var migrations = []migration{{
	version: 1,
	name:    "fleet store",
	stmts: []string{
		// SLI minute buckets, one row per instance: an instance adds its
		// counts to its own row, readers sum the instances. updated_at
		// lets an instance fetch only the rows its peers changed.
		`CREATE TABLE slo_buckets (
			slo        TEXT   NOT NULL,
			grp        TEXT   NOT NULL DEFAULT '',
			minute     BIGINT NOT NULL, -- Unix seconds of the minute's start
			instance   TEXT   NOT NULL,
			good       BIGINT NOT NULL,
			total      BIGINT NOT NULL,
			updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
			PRIMARY KEY (slo, grp, minute, instance)
		)`,
		`CREATE INDEX slo_buckets_minute ON slo_buckets (minute)`,
		`CREATE INDEX slo_buckets_updated ON slo_buckets (updated_at)`,
		`CREATE TABLE slo_tracking (
			slo   TEXT PRIMARY KEY,
			since BIGINT NOT NULL
		)`,
		// Corrections keep their times as written (RFC 3339 with the
		// offset), which a recurrence without a time zone follows.
		`CREATE TABLE slo_corrections (
			id         BIGSERIAL PRIMARY KEY,
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
		`CREATE INDEX slo_corrections_slo ON slo_corrections (slo)`,
		`CREATE TABLE slo_alert_transitions (
			id           BIGSERIAL PRIMARY KEY,
			slo          TEXT   NOT NULL,
			service      TEXT   NOT NULL,
			grp          TEXT   NOT NULL DEFAULT '',
			alert        TEXT   NOT NULL,
			kind         TEXT   NOT NULL,
			severity     TEXT   NOT NULL,
			from_state   TEXT   NOT NULL,
			to_state     TEXT   NOT NULL,
			at           BIGINT NOT NULL, -- Unix nanoseconds
			alert_values TEXT   NOT NULL  -- JSON of slo.AlertValues
		)`,
		`CREATE INDEX slo_alert_transitions_key ON slo_alert_transitions (slo, grp, alert, id)`,
		`CREATE INDEX slo_alert_transitions_at ON slo_alert_transitions (at)`,

		// Golden signals: additive rows, merged by the reader.
		`CREATE TABLE signal_buckets (
			service    TEXT   NOT NULL,
			operation  TEXT   NOT NULL,
			start_unix BIGINT NOT NULL,
			step_sec   BIGINT NOT NULL,
			instance   TEXT   NOT NULL,
			requests   BIGINT NOT NULL,
			errors     BIGINT NOT NULL,
			latency    BYTEA  NOT NULL
		)`,
		`CREATE INDEX signal_buckets_by_service ON signal_buckets (service, start_unix)`,
		`CREATE INDEX signal_buckets_by_time ON signal_buckets (start_unix, step_sec)`,
		`CREATE TABLE signal_error_origins (
			start_unix       BIGINT NOT NULL,
			service          TEXT   NOT NULL,
			origin_service   TEXT   NOT NULL,
			origin_operation TEXT   NOT NULL,
			reason           TEXT   NOT NULL,
			dependency       BOOLEAN NOT NULL,
			requests         DOUBLE PRECISION NOT NULL,
			requests_5xx     DOUBLE PRECISION NOT NULL
		)`,
		`CREATE INDEX signal_error_origins_by_service ON signal_error_origins (service, start_unix)`,
		`CREATE INDEX signal_error_origins_by_origin ON signal_error_origins (origin_service, start_unix)`,
		`CREATE INDEX signal_error_origins_by_time ON signal_error_origins (start_unix)`,

		// The gate: decisions (whole, as JSON), overrides, deploy markers.
		// seq orders rows written in the same nanosecond.
		`CREATE TABLE gate_decisions (
			seq          BIGSERIAL,
			id           TEXT PRIMARY KEY,
			service      TEXT   NOT NULL,
			change_class TEXT   NOT NULL,
			verdict      TEXT   NOT NULL,
			policy_rule  TEXT   NOT NULL,
			evaluated_at BIGINT NOT NULL,
			record       TEXT   NOT NULL
		)`,
		`CREATE INDEX gate_decisions_service_time ON gate_decisions (service, evaluated_at)`,
		`CREATE INDEX gate_decisions_time ON gate_decisions (evaluated_at)`,
		`CREATE TABLE gate_overrides (
			seq            BIGSERIAL,
			id             TEXT PRIMARY KEY,
			service        TEXT   NOT NULL,
			change_classes TEXT   NOT NULL,
			reason         TEXT   NOT NULL,
			approved_by    TEXT   NOT NULL,
			created_by     TEXT   NOT NULL,
			created_at     BIGINT NOT NULL,
			expires_at     BIGINT NOT NULL,
			revoked_at     BIGINT,
			revoked_by     TEXT   NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX gate_overrides_expires ON gate_overrides (expires_at)`,
		`CREATE TABLE gate_deploys (
			seq          BIGSERIAL,
			id           TEXT PRIMARY KEY,
			service      TEXT   NOT NULL,
			version      TEXT   NOT NULL,
			environment  TEXT   NOT NULL,
			change_class TEXT   NOT NULL,
			at           BIGINT NOT NULL,
			deployed_by  TEXT   NOT NULL,
			description  TEXT   NOT NULL,
			principal    TEXT   NOT NULL
		)`,
		`CREATE INDEX gate_deploys_service_time ON gate_deploys (service, at)`,

		// The hash-chained audit log; seq is part of what the hash covers.
		`CREATE TABLE audit_log (
			seq       BIGINT PRIMARY KEY,
			kind      TEXT   NOT NULL,
			actor     TEXT   NOT NULL,
			at        BIGINT NOT NULL,
			payload   TEXT   NOT NULL,
			prev_hash TEXT   NOT NULL,
			hash      TEXT   NOT NULL
		)`,

		// Feature flags.
		`CREATE TABLE flag_states (
			key            TEXT PRIMARY KEY,
			forced_variant TEXT,
			forced_by      TEXT    NOT NULL DEFAULT '',
			paused         BOOLEAN NOT NULL,
			version        BIGINT  NOT NULL,
			since          BIGINT  NOT NULL
		)`,
		`CREATE TABLE flag_history (
			id     BIGSERIAL PRIMARY KEY,
			key    TEXT   NOT NULL,
			at     BIGINT NOT NULL,
			record TEXT   NOT NULL
		)`,
		`CREATE INDEX flag_history_key ON flag_history (key, id)`,
		`CREATE TABLE flag_definitions (
			key        TEXT PRIMARY KEY,
			definition TEXT   NOT NULL,
			updated_at BIGINT NOT NULL
		)`,

		// Incidents and their recorded timeline entries.
		`CREATE TABLE incidents (
			seq         BIGINT PRIMARY KEY,
			id          TEXT   NOT NULL UNIQUE,
			state       TEXT   NOT NULL,
			declared_at BIGINT NOT NULL,
			version     BIGINT NOT NULL,
			record      TEXT   NOT NULL
		)`,
		`CREATE TABLE incident_entries (
			n        BIGSERIAL PRIMARY KEY,
			incident TEXT   NOT NULL,
			at       BIGINT NOT NULL,
			record   TEXT   NOT NULL
		)`,
		`CREATE INDEX incident_entries_incident ON incident_entries (incident, n)`,

		// What each instance's write-ahead log consumers have stored.
		`CREATE TABLE wal_marks (
			instance      TEXT   NOT NULL,
			consumer      TEXT   NOT NULL,
			pos           BIGINT NOT NULL,
			closed_before BIGINT NOT NULL,
			PRIMARY KEY (instance, consumer)
		)`,

		// The fleet's instances, by their heartbeats.
		`CREATE TABLE fleet_instances (
			instance      TEXT PRIMARY KEY,
			cell          TEXT   NOT NULL DEFAULT '',
			version       TEXT   NOT NULL DEFAULT '',
			schema        INT    NOT NULL,
			started_at    BIGINT NOT NULL,
			heartbeat_at  BIGINT NOT NULL,
			leader        BOOLEAN NOT NULL DEFAULT false,
			flushed_until BIGINT NOT NULL DEFAULT 0,
			health        TEXT   NOT NULL DEFAULT ''
		)`,
	},
}, {
	version: 2,
	name:    "canary counts",
	stmts: []string{
		// Per-version minute counts of the canary checks, one row per
		// instance: each adds its own, every instance reads the sum.
		`CREATE TABLE canary_counts (
			service  TEXT   NOT NULL,
			version  TEXT   NOT NULL,
			minute   BIGINT NOT NULL, -- Unix seconds of the minute's start
			instance TEXT   NOT NULL,
			requests BIGINT NOT NULL,
			errors   BIGINT NOT NULL,
			slow     BIGINT NOT NULL,
			PRIMARY KEY (service, version, minute, instance)
		)`,
		`CREATE INDEX canary_counts_minute ON canary_counts (minute)`,
	},
}, {
	version: 3,
	name:    "user sketches",
	stmts: []string{
		// HyperLogLog sketches of the users of failed requests, per service
		// and ten minutes, one per instance: readers merge them.
		`CREATE TABLE user_sketches (
			service   TEXT   NOT NULL,
			start     BIGINT NOT NULL, -- Unix seconds of the ten minutes' start
			instance  TEXT   NOT NULL,
			registers BYTEA  NOT NULL,
			PRIMARY KEY (service, start, instance)
		)`,
	},
}, {
	version: 4,
	name:    "failed traces",
	stmts: []string{
		// Kept traces with failed requests, a few per service and minute
		// from each instance: a post-mortem's evidence.
		`CREATE TABLE failed_traces (
			service  TEXT   NOT NULL,
			minute   BIGINT NOT NULL, -- Unix seconds of the minute's start
			trace_id TEXT   NOT NULL,
			PRIMARY KEY (service, minute, trace_id)
		)`,
	},
}, {
	version: 5,
	name:    "deploy rollback commands",
	stmts: []string{
		`ALTER TABLE gate_deploys ADD COLUMN rollback_command TEXT NOT NULL DEFAULT ''`,
	},
}, {
	version: 6,
	name:    "canary counts per operation",
	stmts: []string{
		// The canary counts are kept per operation too, so that a canary
		// and a deploy are compared operation by operation; older rows
		// are operation ''.
		`ALTER TABLE canary_counts ADD COLUMN operation TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE canary_counts DROP CONSTRAINT canary_counts_pkey`,
		`ALTER TABLE canary_counts ADD PRIMARY KEY (service, version, operation, minute, instance)`,
	},
}}

// migrate applies the migrations the database lacks, holding a session
// advisory lock so that instances starting together apply each once.
func (s *DB) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockMigrate); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// A failed unlock (a dead connection) releases the lock anyway.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockMigrate)
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INT PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
		applied_by TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	if have > Version() {
		return fmt.Errorf("%w: the database is at version %d, this tailgate knows up to %d; upgrade this instance (migrations are additive, so older instances already running keep working)",
			ErrSchemaTooNew, have, Version())
	}
	for _, m := range migrations {
		if m.version <= have {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, stmt := range m.stmts {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("%w\n%s", err, stmt)
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_by) VALUES ($1, $2, $3)`, m.version, m.name, s.instance)
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// SchemaVersion returns the database's schema version.
func (s *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the schema version of %s: %w", s.where, err)
	}
	return v, nil
}
