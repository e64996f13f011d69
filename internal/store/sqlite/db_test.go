package sqlite

import (
	"path/filepath"
	"testing"
)

func TestOpenCreatesWALDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	// Opening again applies the schema again; it must be idempotent.
	db2, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	db2.Close()
}
