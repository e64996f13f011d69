package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
)

// gateSchema holds the gate's audit log, overrides and deploy markers.
// Times are Unix nanoseconds; a decision is kept whole as JSON next to the
// columns it is queried by.
var gateSchema = []string{
	`CREATE TABLE IF NOT EXISTS gate_decisions (
		id           TEXT PRIMARY KEY,
		service      TEXT NOT NULL,
		change_class TEXT NOT NULL,
		verdict      TEXT NOT NULL,
		policy_rule  TEXT NOT NULL,
		evaluated_at INTEGER NOT NULL,
		record       TEXT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS gate_decisions_service_time ON gate_decisions (service, evaluated_at)`,
	`CREATE INDEX IF NOT EXISTS gate_decisions_time ON gate_decisions (evaluated_at)`,
	`CREATE TABLE IF NOT EXISTS gate_overrides (
		id             TEXT PRIMARY KEY,
		service        TEXT NOT NULL,
		change_classes TEXT NOT NULL,
		reason         TEXT NOT NULL,
		approved_by    TEXT NOT NULL,
		created_by     TEXT NOT NULL,
		created_at     INTEGER NOT NULL,
		expires_at     INTEGER NOT NULL,
		revoked_at     INTEGER,
		revoked_by     TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE INDEX IF NOT EXISTS gate_overrides_expires ON gate_overrides (expires_at)`,
	`CREATE TABLE IF NOT EXISTS gate_deploys (
		id           TEXT PRIMARY KEY,
		service      TEXT NOT NULL,
		version      TEXT NOT NULL,
		environment  TEXT NOT NULL,
		change_class TEXT NOT NULL,
		at           INTEGER NOT NULL,
		deployed_by  TEXT NOT NULL,
		description  TEXT NOT NULL,
		principal    TEXT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS gate_deploys_service_time ON gate_deploys (service, at)`,
}

var (
	_ gate.Store           = (*DB)(nil)
	_ gate.DecisionBatcher = (*DB)(nil)
)

const insertDecision = `INSERT INTO gate_decisions (id, service, change_class, verdict, policy_rule, evaluated_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)`

// AddDecision implements gate.Store.
func (s *DB) AddDecision(ctx context.Context, d gate.Decision) error {
	return s.AddDecisions(ctx, []gate.Decision{d})
}

// AddDecisions implements gate.DecisionBatcher: one transaction for all
// the decisions and their audit rows.
func (s *DB) AddDecisions(ctx context.Context, ds []gate.Decision) error {
	es, err := gate.DecisionAudit(ds)
	if err != nil {
		return err
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		stmt := tx.StmtContext(ctx, s.stmts.decision)
		for i, d := range ds {
			// The audit payload is the decision's JSON already.
			if _, err := stmt.ExecContext(ctx, d.ID, d.Service, string(d.ChangeClass), d.Verdict.String(), d.PolicyRule, d.EvaluatedAt.UnixNano(), string(es[i].Payload)); err != nil {
				return fmt.Errorf("insert gate decision %s: %w", d.ID, err)
			}
		}
		return s.appendAudit(ctx, tx, es)
	})
	if err != nil {
		return fmt.Errorf("insert gate decisions: %w", err)
	}
	return nil
}

// Decisions implements gate.Store.
func (s *DB) Decisions(ctx context.Context, q gate.DecisionQuery) ([]gate.Decision, error) {
	where, args := timeFilter("evaluated_at", q.Service, q.From, q.To)
	args = append(args, gate.EffectiveLimit(q.Limit))
	rows, err := s.db.QueryContext(ctx,
		`SELECT record FROM gate_decisions`+where+` ORDER BY evaluated_at DESC, rowid DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("query gate decisions: %w", err)
	}
	defer rows.Close()
	out := []gate.Decision{}
	for rows.Next() {
		var rec string
		if err := rows.Scan(&rec); err != nil {
			return nil, fmt.Errorf("read gate decision: %w", err)
		}
		var d gate.Decision
		if err := json.Unmarshal([]byte(rec), &d); err != nil {
			return nil, fmt.Errorf("decode gate decision: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read gate decisions: %w", err)
	}
	return out, nil
}

// timeFilter builds the WHERE clause of a service and time-range filter.
func timeFilter(col, service string, from, to time.Time) (string, []any) {
	var conds []string
	var args []any
	if service != "" {
		conds = append(conds, "service = ?")
		args = append(args, service)
	}
	if !from.IsZero() {
		conds = append(conds, col+" >= ?")
		args = append(args, from.UnixNano())
	}
	if !to.IsZero() {
		conds = append(conds, col+" < ?")
		args = append(args, to.UnixNano())
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// AddOverride implements gate.Store, with its audit row in the same
// transaction.
func (s *DB) AddOverride(ctx context.Context, o gate.Override) error {
	classes, err := json.Marshal(o.ChangeClasses)
	if err != nil {
		return fmt.Errorf("encode override classes: %w", err)
	}
	e, err := gate.OverrideAudit(o)
	if err != nil {
		return err
	}
	var revoked any
	if o.RevokedAt != nil {
		revoked = o.RevokedAt.UnixNano()
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO gate_overrides (id, service, change_classes, reason, approved_by, created_by, created_at, expires_at, revoked_at, revoked_by)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, o.Service, string(classes), o.Reason, o.ApprovedBy, o.CreatedBy, o.CreatedAt.UnixNano(), o.ExpiresAt.UnixNano(), revoked, o.RevokedBy); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, []gate.AuditEntry{e})
	})
	if err != nil {
		return fmt.Errorf("insert override: %w", err)
	}
	return nil
}

const overrideColumns = `id, service, change_classes, reason, approved_by, created_by, created_at, expires_at, revoked_at, revoked_by`

func scanOverride(sc interface{ Scan(...any) error }) (gate.Override, error) {
	var o gate.Override
	var classes string
	var created, expires int64
	var revoked sql.NullInt64
	if err := sc.Scan(&o.ID, &o.Service, &classes, &o.Reason, &o.ApprovedBy, &o.CreatedBy, &created, &expires, &revoked, &o.RevokedBy); err != nil {
		return o, err
	}
	if err := json.Unmarshal([]byte(classes), &o.ChangeClasses); err != nil {
		return o, fmt.Errorf("decode override %s classes: %w", o.ID, err)
	}
	o.CreatedAt, o.ExpiresAt = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
	if revoked.Valid {
		t := time.Unix(0, revoked.Int64).UTC()
		o.RevokedAt = &t
	}
	return o, nil
}

// RevokeOverride implements gate.Store; a revocation that changes the
// override appends its audit row in the same transaction.
func (s *DB) RevokeOverride(ctx context.Context, id, by string, at time.Time) (gate.Override, error) {
	var o gate.Override
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE gate_overrides SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL`,
			at.UnixNano(), by, id)
		if err != nil {
			return err
		}
		o, err = scanOverride(tx.QueryRowContext(ctx, `SELECT `+overrideColumns+` FROM gate_overrides WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return gate.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read override: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		e, err := gate.RevokeAudit(o)
		if err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, []gate.AuditEntry{e})
	})
	if errors.Is(err, gate.ErrNotFound) {
		return gate.Override{}, gate.ErrNotFound
	}
	if err != nil {
		return gate.Override{}, fmt.Errorf("revoke override: %w", err)
	}
	return o, nil
}

// Overrides implements gate.Store.
func (s *DB) Overrides(ctx context.Context, q gate.OverrideQuery) ([]gate.Override, error) {
	var conds []string
	var args []any
	if q.Service != "" {
		conds = append(conds, "service = ?")
		args = append(args, q.Service)
	}
	if !q.ActiveAt.IsZero() {
		at := q.ActiveAt.UnixNano()
		conds = append(conds, "expires_at > ?", "(revoked_at IS NULL OR revoked_at > ?)")
		args = append(args, at, at)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	args = append(args, gate.EffectiveLimit(q.Limit))
	rows, err := s.db.QueryContext(ctx, `SELECT `+overrideColumns+` FROM gate_overrides`+where+` ORDER BY created_at DESC, rowid DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("query overrides: %w", err)
	}
	defer rows.Close()
	out := []gate.Override{}
	for rows.Next() {
		o, err := scanOverride(rows)
		if err != nil {
			return nil, fmt.Errorf("read override: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read overrides: %w", err)
	}
	return out, nil
}

// AddDeploy implements gate.Store.
func (s *DB) AddDeploy(ctx context.Context, d gate.Deploy) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO gate_deploys (id, service, version, environment, change_class, at, deployed_by, description, principal, rollback_command)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.Service, d.Version, d.Environment, string(d.ChangeClass), d.Time.UnixNano(), d.DeployedBy, d.Description, d.Principal, d.RollbackCommand)
	if err != nil {
		return fmt.Errorf("insert deploy: %w", err)
	}
	return nil
}

// Deploys implements gate.Store: the newest q.Limit markers, oldest first.
func (s *DB) Deploys(ctx context.Context, q gate.DeployQuery) ([]gate.Deploy, error) {
	where, args := timeFilter("at", q.Service, q.From, q.To)
	args = append(args, gate.EffectiveLimit(q.Limit))
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, service, version, environment, change_class, at, deployed_by, description, principal, rollback_command FROM (
		   SELECT rowid AS r, * FROM gate_deploys`+where+` ORDER BY at DESC, rowid DESC LIMIT ?
		 ) ORDER BY at, r`, args...)
	if err != nil {
		return nil, fmt.Errorf("query deploys: %w", err)
	}
	defer rows.Close()
	out := []gate.Deploy{}
	for rows.Next() {
		var d gate.Deploy
		var class string
		var at int64
		if err := rows.Scan(&d.ID, &d.Service, &d.Version, &d.Environment, &class, &at, &d.DeployedBy, &d.Description, &d.Principal, &d.RollbackCommand); err != nil {
			return nil, fmt.Errorf("read deploy: %w", err)
		}
		d.ChangeClass, d.Time = gate.ChangeClass(class), time.Unix(0, at).UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read deploys: %w", err)
	}
	return out, nil
}
