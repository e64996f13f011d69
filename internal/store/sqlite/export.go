package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ScanTable calls fn with each row of table (the columns cols, in rowid
// order), for `tailgate store copy`. table and cols are the caller's
// constants, not user input.
func (s *DB) ScanTable(ctx context.Context, table string, cols []string, fn func(row []any) error) error {
	order := "rowid"
	if table == "slo_buckets" || table == "wal_marks" || table == "slo_tracking" || table == "flag_states" || table == "flag_definitions" {
		order = "1" // WITHOUT ROWID tables, or no order that matters
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+table+` ORDER BY `+order)
	if err != nil {
		return fmt.Errorf("read %s from %q: %w", table, s.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read %s from %q: %w", table, s.path, err)
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s from %q: %w", table, s.path, err)
	}
	return nil
}

// Backup writes a consistent copy of the store in dir to the file dest
// (which must not exist) while the daemon may be writing: SQLite's VACUUM
// INTO reads one snapshot of the database. The copy is a store file on
// its own: put it in a directory as tailgate.db to open it.
func Backup(ctx context.Context, dir, dest string) error {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("back up the store: %w", err)
	}
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("back up the store: %s exists; give a new file", dest)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("back up %q: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return fmt.Errorf("back up %q to %q: %w", path, dest, err)
	}
	// The copy holds the audit log and every budget, like the original.
	if err := os.Chmod(dest, 0o600); err != nil {
		return fmt.Errorf("back up %q: %w", path, err)
	}
	return nil
}
