package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
)

// auditSchema holds the hash-chained audit log (see gate.AuditRecord):
// every decision, override, revocation and correction, and later flag
// flips and incidents, as one chain. seq is assigned by the writer, not
// by SQLite, because it is part of what the hash covers.
var auditSchema = []string{
	`CREATE TABLE IF NOT EXISTS audit_log (
		seq       INTEGER PRIMARY KEY,
		kind      TEXT NOT NULL,
		actor     TEXT NOT NULL,
		at        INTEGER NOT NULL,
		payload   TEXT NOT NULL,
		prev_hash TEXT NOT NULL,
		hash      TEXT NOT NULL
	)`,
}

var _ gate.AuditStore = (*DB)(nil)

// auditStmts are the statements of every audited write, prepared once:
// preparing them per transaction cost a quarter of a gate check's commit.
type auditStmts struct {
	head, insert, decision *sql.Stmt
}

func prepareAudit(ctx context.Context, db *sql.DB) (*auditStmts, error) {
	var st auditStmts
	for _, p := range []struct {
		dst *(*sql.Stmt)
		q   string
	}{
		{&st.head, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`},
		{&st.insert, `INSERT INTO audit_log (seq, kind, actor, at, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&st.decision, insertDecision},
	} {
		stmt, err := db.PrepareContext(ctx, p.q)
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", p.q, err)
		}
		*p.dst = stmt
	}
	return &st, nil
}

// writeTx runs fn in a transaction, which the DSN's _txlock=immediate
// begins with BEGIN IMMEDIATE: the database's write lock is taken before
// fn reads the chain's head, so two processes sharing the file cannot both
// link a row to the same head.
func (s *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.stmts == nil {
		return errors.New("store is read-only")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// appendAudit links es to the chain inside a writeTx transaction.
func (s *DB) appendAudit(ctx context.Context, tx *sql.Tx, es []gate.AuditEntry) error {
	if len(es) == 0 {
		return nil
	}
	var head *gate.AuditRecord
	var h gate.AuditRecord
	err := tx.StmtContext(ctx, s.stmts.head).QueryRowContext(ctx).Scan(&h.Seq, &h.Hash)
	switch {
	case err == nil:
		head = &h
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("read audit log head: %w", err)
	}
	rs, err := gate.ChainAudit(head, es)
	if err != nil {
		return err
	}
	stmt := tx.StmtContext(ctx, s.stmts.insert)
	for _, r := range rs {
		if _, err := stmt.ExecContext(ctx, r.Seq, string(r.Kind), r.Actor, r.Time.UnixNano(), string(r.Payload), r.PrevHash, r.Hash); err != nil {
			return fmt.Errorf("append audit row %d: %w", r.Seq, err)
		}
	}
	return nil
}

// AppendAudit implements gate.AuditStore.
func (s *DB) AppendAudit(ctx context.Context, es []gate.AuditEntry) error {
	if err := s.writeTx(ctx, func(tx *sql.Tx) error { return s.appendAudit(ctx, tx, es) }); err != nil {
		return fmt.Errorf("append to audit log: %w", err)
	}
	return nil
}

// AuditRecords implements gate.AuditStore.
func (s *DB) AuditRecords(ctx context.Context, after int64, limit int) ([]gate.AuditRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, kind, actor, at, payload, prev_hash, hash FROM audit_log
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
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
		r.Kind, r.Time, r.Payload = gate.AuditKind(kind), time.Unix(0, at).UTC(), []byte(payload)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// OpenReadOnly opens the existing store in dir for reading only, as
// `tailgate audit verify` does next to a running daemon: it creates
// nothing and applies no schema.
func OpenReadOnly(ctx context.Context, dir string) (*DB, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	dsn := "file:" + path + "?mode=ro&_pragma=busy_timeout(5000)&_pragma=query_only(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	return &DB{db: db, path: path}, nil
}
