// Package sqlite is tailgate's embedded store: one SQLite file (pure Go
// driver, WAL mode) holding SLI and golden-signal minute buckets, SLO
// corrections, alert transitions and the other state that must survive a
// restart.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DB is an open store. It is safe for concurrent use.
type DB struct {
	db   *sql.DB
	path string
	// stmts are the audit path's statements, prepared once at Open (nil
	// in a read-only store).
	stmts *auditStmts
}

// FileName is the database file created inside the storage directory.
const FileName = "tailgate.db"

// private creates the storage directory and the database file readable by
// this user alone (0700 and 0600), and narrows them if an earlier version
// made them wider: they hold the audit log and every budget. SQLite gives
// its -wal and -shm files the database file's mode.
func private(dir, path string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create storage directory %q: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("storage directory %q: %w", dir, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create store %q: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("store %q: %w", path, err)
	}
	return f.Close()
}

// Open opens (creating if needed) the store in dir and applies the schema.
func Open(ctx context.Context, dir string) (*DB, error) {
	path := filepath.Join(dir, FileName)
	if err := private(dir, path); err != nil {
		return nil, err
	}
	// busy_timeout lets a writer wait for another instead of failing with
	// SQLITE_BUSY; synchronous=NORMAL is durable across process crashes in
	// WAL mode, which is the guarantee the flush interval promises.
	// _txlock=immediate makes every transaction BEGIN IMMEDIATE: it takes
	// the write lock before its first read, which the audit chain needs
	// (read the head, then append) when processes share the file, and
	// which spares a deferred transaction's SQLITE_BUSY on lock upgrade.
	// Every transaction this package begins writes.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	// One writer at a time is how SQLite works; a single connection also
	// keeps the pragmas above in force for every statement.
	db.SetMaxOpenConns(1)
	s := &DB{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if s.stmts, err = prepareAudit(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	return s, nil
}

// Path returns the database file's path.
func (s *DB) Path() string { return s.path }

// Close closes the database.
func (s *DB) Close() error {
	if s.stmts != nil {
		for _, st := range []*sql.Stmt{s.stmts.head, s.stmts.insert, s.stmts.decision} {
			st.Close()
		}
	}
	return s.db.Close()
}

// schemas lists each domain's DDL, applied in order at Open. Every statement
// must be idempotent (CREATE ... IF NOT EXISTS).
func schemas() [][]string {
	return [][]string{sloSchema, signalsSchema, gateSchema, auditSchema, flagsSchema, incidentSchema, walSchema, canarySchema, usersSchema, evidenceSchema}
}

func (s *DB) migrate(ctx context.Context) error {
	for _, stmts := range schemas() {
		for _, stmt := range stmts {
			if _, err := s.db.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("apply schema to %q: %w\n%s", s.path, err, stmt)
			}
		}
	}
	if err := s.addColumns(ctx, sloAddedColumns); err != nil {
		return fmt.Errorf("apply schema to %q: %w", s.path, err)
	}
	if err := s.upgradeCanaryCounts(ctx); err != nil {
		return fmt.Errorf("apply schema to %q: %w", s.path, err)
	}
	return nil
}
