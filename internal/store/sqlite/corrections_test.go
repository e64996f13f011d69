package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
)

// TestCorrectionsMigration opens a store whose slo_corrections table
// predates soft deletion (no deleted_by, deleted_at): Open adds the
// columns, the old row reads back as applying, and it can be deleted.
// A second Open leaves the migrated table alone.
func TestCorrectionsMigration(t *testing.T) {
	dir := t.TempDir()
	old, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE slo_corrections (
			id         INTEGER PRIMARY KEY AUTOINCREMENT,
			slo        TEXT NOT NULL,
			start      TEXT NOT NULL,
			end_time   TEXT NOT NULL DEFAULT '',
			duration   TEXT NOT NULL DEFAULT '',
			rrule      TEXT NOT NULL DEFAULT '',
			time_zone  TEXT NOT NULL DEFAULT '',
			reason     TEXT NOT NULL,
			created_by TEXT NOT NULL DEFAULT '',
			created_at TEXT NOT NULL
		)`,
		`INSERT INTO slo_corrections (slo, start, end_time, reason, created_by, created_at)
			VALUES ('a', '2024-01-01T02:00:00Z', '2024-01-01T03:00:00Z', 'old', 'alice', '2024-01-02T00:00:00Z')`,
	} {
		if _, err := old.ExecContext(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.ListCorrections(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Reason != "old" || got[0].CreatedBy != "alice" || got[0].Deleted() {
		t.Fatalf("migrated corrections: %+v", got)
	}
	at := time.Date(2024, 1, 5, 0, 0, 0, 0, time.UTC)
	if ok, err := db.DeleteCorrection(t.Context(), "a", got[0].ID, "bob", at); err != nil || !ok {
		t.Fatalf("delete = %v, %v", ok, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	got, err = db.ListCorrections(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].DeletedBy != "bob" || !got[0].DeletedAt.Equal(at) {
		t.Errorf("after reopening: %+v, want deleted by bob at %s", got, at)
	}
}

// TestDeploysMigration opens a store whose gate_deploys table predates
// rollback commands: Open adds the column, the old marker reads back with
// none, and a new one keeps its command.
func TestDeploysMigration(t *testing.T) {
	dir := t.TempDir()
	old, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE gate_deploys (
			id TEXT PRIMARY KEY, service TEXT NOT NULL, version TEXT NOT NULL, environment TEXT NOT NULL,
			change_class TEXT NOT NULL, at INTEGER NOT NULL, deployed_by TEXT NOT NULL, description TEXT NOT NULL, principal TEXT NOT NULL
		)`,
		`INSERT INTO gate_deploys VALUES ('dep_old', 'checkout', 'v1', '', 'feature', 1700000000000000000, 'ci', '', '')`,
	} {
		if _, err := old.ExecContext(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.AddDeploy(t.Context(), gate.Deploy{ID: "dep_new", Service: "checkout", Version: "v2", Time: time.Unix(1800000000, 0),
		RollbackCommand: "kubectl rollout undo deployment/checkout"}); err != nil {
		t.Fatal(err)
	}
	ds, err := db.Deploys(t.Context(), gate.DeployQuery{Service: "checkout"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].ID != "dep_old" || ds[0].RollbackCommand != "" || ds[1].RollbackCommand != "kubectl rollout undo deployment/checkout" {
		t.Errorf("deploys after the migration: %+v", ds)
	}
}
