package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/gate"
)

var (
	_ gate.Store           = (*DB)(nil)
	_ gate.DecisionBatcher = (*DB)(nil)
	_ gate.AuditStore      = (*DB)(nil)
)

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
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		for i, d := range ds {
			if _, err := tx.Exec(ctx, `INSERT INTO gate_decisions (id, service, change_class, verdict, policy_rule, evaluated_at, record)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, d.ID, d.Service, string(d.ChangeClass), d.Verdict.String(), d.PolicyRule,
				nanos(d.EvaluatedAt), string(es[i].Payload)); err != nil {
				return fmt.Errorf("insert gate decision %s: %w", d.ID, err)
			}
		}
		return appendAudit(ctx, tx, es)
	})
	if err != nil {
		return fmt.Errorf("insert gate decisions: %w", err)
	}
	return nil
}

// filter builds a WHERE clause with numbered parameters.
type filter struct {
	conds []string
	args  []any
}

func (f *filter) add(cond string, arg any) {
	f.args = append(f.args, arg)
	f.conds = append(f.conds, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(f.args))))
}

func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}

// next returns the placeholder of one more argument.
func (f *filter) next(arg any) string {
	f.args = append(f.args, arg)
	return fmt.Sprintf("$%d", len(f.args))
}

func timeFilter(col, service string, from, to time.Time) *filter {
	f := &filter{}
	if service != "" {
		f.add("service = ?", service)
	}
	if !from.IsZero() {
		f.add(col+" >= ?", nanos(from))
	}
	if !to.IsZero() {
		f.add(col+" < ?", nanos(to))
	}
	return f
}

// Decisions implements gate.Store.
func (s *DB) Decisions(ctx context.Context, q gate.DecisionQuery) ([]gate.Decision, error) {
	f := timeFilter("evaluated_at", q.Service, q.From, q.To)
	where := f.where()
	lim := f.next(gate.EffectiveLimit(q.Limit))
	rows, err := s.pool.Query(ctx, `SELECT record FROM gate_decisions`+where+` ORDER BY evaluated_at DESC, seq DESC LIMIT `+lim, f.args...)
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
	var revoked *int64
	if o.RevokedAt != nil {
		n := nanos(*o.RevokedAt)
		revoked = &n
	}
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx,
			`INSERT INTO gate_overrides (id, service, change_classes, reason, approved_by, created_by, created_at, expires_at, revoked_at, revoked_by)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			o.ID, o.Service, string(classes), o.Reason, o.ApprovedBy, o.CreatedBy, nanos(o.CreatedAt), nanos(o.ExpiresAt), revoked, o.RevokedBy); err != nil {
			return err
		}
		return appendAudit(ctx, tx, []gate.AuditEntry{e})
	})
	if err != nil {
		return fmt.Errorf("insert override: %w", err)
	}
	return nil
}

const overrideColumns = `id, service, change_classes, reason, approved_by, created_by, created_at, expires_at, revoked_at, revoked_by`

func scanOverride(sc pgx.Row) (gate.Override, error) {
	var o gate.Override
	var classes string
	var created, expires int64
	var revoked *int64
	if err := sc.Scan(&o.ID, &o.Service, &classes, &o.Reason, &o.ApprovedBy, &o.CreatedBy, &created, &expires, &revoked, &o.RevokedBy); err != nil {
		return o, err
	}
	if err := json.Unmarshal([]byte(classes), &o.ChangeClasses); err != nil {
		return o, fmt.Errorf("decode override %s classes: %w", o.ID, err)
	}
	o.CreatedAt, o.ExpiresAt = fromNanos(created), fromNanos(expires)
	if revoked != nil {
		t := fromNanos(*revoked)
		o.RevokedAt = &t
	}
	return o, nil
}

// RevokeOverride implements gate.Store; a revocation that changes the
// override appends its audit row in the same transaction.
func (s *DB) RevokeOverride(ctx context.Context, id, by string, at time.Time) (gate.Override, error) {
	var o gate.Override
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE gate_overrides SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL`,
			nanos(at), by, id)
		if err != nil {
			return err
		}
		o, err = scanOverride(tx.QueryRow(ctx, `SELECT `+overrideColumns+` FROM gate_overrides WHERE id = $1`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return gate.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read override: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		e, err := gate.RevokeAudit(o)
		if err != nil {
			return err
		}
		return appendAudit(ctx, tx, []gate.AuditEntry{e})
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
	f := &filter{}
	if q.Service != "" {
		f.add("service = ?", q.Service)
	}
	if !q.ActiveAt.IsZero() {
		at := nanos(q.ActiveAt)
		f.add("expires_at > ?", at)
		f.add("(revoked_at IS NULL OR revoked_at > ?)", at)
	}
	where := f.where()
	lim := f.next(gate.EffectiveLimit(q.Limit))
	rows, err := s.pool.Query(ctx, `SELECT `+overrideColumns+` FROM gate_overrides`+where+` ORDER BY created_at DESC, seq DESC LIMIT `+lim, f.args...)
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
	_, err := s.pool.Exec(ctx,
		`INSERT INTO gate_deploys (id, service, version, environment, change_class, at, deployed_by, description, principal, rollback_command)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		d.ID, d.Service, d.Version, d.Environment, string(d.ChangeClass), nanos(d.Time), d.DeployedBy, d.Description, d.Principal, d.RollbackCommand)
	if err != nil {
		return fmt.Errorf("insert deploy: %w", err)
	}
	return nil
}

// Deploys implements gate.Store: the newest q.Limit markers, oldest first.
func (s *DB) Deploys(ctx context.Context, q gate.DeployQuery) ([]gate.Deploy, error) {
	f := timeFilter("at", q.Service, q.From, q.To)
	where := f.where()
	lim := f.next(gate.EffectiveLimit(q.Limit))
	rows, err := s.pool.Query(ctx,
		`SELECT id, service, version, environment, change_class, at, deployed_by, description, principal, rollback_command FROM (
		   SELECT * FROM gate_deploys`+where+` ORDER BY at DESC, seq DESC LIMIT `+lim+`
		 ) newest ORDER BY at, seq`, f.args...)
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
		d.ChangeClass, d.Time = gate.ChangeClass(class), fromNanos(at)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read deploys: %w", err)
	}
	return out, nil
}

// appendAudit links es to the chain inside a writeTx transaction, which
// holds the fleet's audit lock.
func appendAudit(ctx context.Context, tx pgx.Tx, es []gate.AuditEntry) error {
	if len(es) == 0 {
		return nil
	}
	var head *gate.AuditRecord
	var h gate.AuditRecord
	err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&h.Seq, &h.Hash)
	switch {
	case err == nil:
		head = &h
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("read audit log head: %w", err)
	}
	rs, err := gate.ChainAudit(head, es)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_log (seq, kind, actor, at, payload, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			r.Seq, string(r.Kind), r.Actor, nanos(r.Time), string(r.Payload), r.PrevHash, r.Hash); err != nil {
			return fmt.Errorf("append audit row %d: %w", r.Seq, err)
		}
	}
	return nil
}

// AppendAudit implements gate.AuditStore.
func (s *DB) AppendAudit(ctx context.Context, es []gate.AuditEntry) error {
	if err := s.writeTx(ctx, func(tx pgx.Tx) error { return appendAudit(ctx, tx, es) }); err != nil {
		return fmt.Errorf("append to audit log: %w", err)
	}
	return nil
}

// AuditRecords implements gate.AuditStore.
func (s *DB) AuditRecords(ctx context.Context, after int64, limit int) ([]gate.AuditRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, kind, actor, at, payload, prev_hash, hash FROM audit_log
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	out := []gate.AuditRecord{}
	for rows.Next() {
		var r gate.AuditRecord
		var kind, payload string
		var at int64
		if err := rows.Scan(&r.Seq, &kind, &r.Actor, &at, &payload, &r.PrevHash, &r.Hash); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		r.Kind, r.Time, r.Payload = gate.AuditKind(kind), fromNanos(at), []byte(payload)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
