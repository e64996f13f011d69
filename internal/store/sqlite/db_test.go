package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
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

// TestCanaryCountsUpgrade opens a store whose canary_counts predates the
// operation column: its rows are kept, as operation "", and new rows of
// the same key but another operation are rows of their own.
func TestCanaryCountsUpgrade(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, stmt := range []string{
		`DROP TABLE canary_counts`,
		`CREATE TABLE canary_counts (service TEXT NOT NULL, version TEXT NOT NULL, minute INTEGER NOT NULL,
			requests INTEGER NOT NULL, errors INTEGER NOT NULL, slow INTEGER NOT NULL, PRIMARY KEY (service, version, minute))`,
		`INSERT INTO canary_counts VALUES ('checkout', '2.4.0', 1800000000, 10, 2, 1)`,
	} {
		if _, err := db.db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db, err = Open(ctx, dir)
	if err != nil {
		t.Fatalf("open over the old table: %v", err)
	}
	defer db.Close()
	m := time.Unix(1800000000, 0).UTC()
	if err := db.AddCanaryCounts(ctx, []canary.VersionRow{{Service: "checkout", Version: "2.4.0", Operation: "/pay", Minute: m, Counts: canary.Counts{Requests: 5}}}); err != nil {
		t.Fatal(err)
	}
	own, _, err := db.CanaryCounts(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]canary.Counts{}
	for _, r := range own {
		got[r.Operation] = r.Counts
	}
	if len(own) != 2 || got[""] != (canary.Counts{Requests: 10, Errors: 2, Slow: 1}) || got["/pay"] != (canary.Counts{Requests: 5}) {
		t.Errorf("rows after the upgrade %+v, want the old row as operation \"\" and the new /pay row", own)
	}
}
