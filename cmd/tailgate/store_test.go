package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/store/postgres"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
)

// TestStoreCopyAndBackup moves an embedded store to PostgreSQL with
// "tailgate store copy" and backs it up with "tailgate store backup",
// as the docs show, and reads the budgets' counts back from both.
func TestStoreCopyAndBackup(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	m0 := time.Date(2026, 3, 4, 10, 7, 0, 0, time.UTC)
	if err := db.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "checkout-availability", Minute: m0, Good: 997, Total: 1000}}); err != nil {
		t.Fatal(err)
	}
	// The daemon may be running: the backup is online.
	defer db.Close()

	var out, errOut bytes.Buffer
	backup := filepath.Join(t.TempDir(), "backup.db")
	if code := run(ctx, []string{"tailgate", "store", "backup", "--storage", dir, "--to", backup}, nil, &out, &errOut); code != exitOK {
		t.Fatalf("store backup: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	restored := t.TempDir()
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, sqlite.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	rdb, err := sqlite.OpenReadOnly(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := rdb.LoadSLIBuckets(ctx, m0)
	rdb.Close()
	if err != nil || len(bs) != 1 || bs[0].Good != 997 || bs[0].Total != 1000 {
		t.Fatalf("backup holds %+v (%v), want 997/1000", bs, err)
	}
	if code := run(ctx, []string{"tailgate", "store", "backup", "--storage", dir, "--to", backup}, nil, &out, &errOut); code == exitOK {
		t.Error("a backup over an existing file succeeded")
	}

	dsn := pg.Database(t)
	out.Reset()
	errOut.Reset()
	if code := run(ctx, []string{"tailgate", "store", "copy", "--from", "sqlite:" + dir, "--to", "postgres:" + dsn, "--instance", "tg-0"},
		nil, &out, &errOut); code != exitOK {
		t.Fatalf("store copy: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), `as instance "tg-0"`) || !strings.Contains(errOut.String(), "slo_buckets") {
		t.Errorf("store copy printed:\n%s%s", out.String(), errOut.String())
	}
	pdb, err := postgres.Open(ctx, dsn, postgres.Options{Instance: "tg-0"})
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	bs, err = pdb.LoadSLIBuckets(ctx, m0)
	if err != nil || len(bs) != 1 || bs[0].Good != 997 || bs[0].Total != 1000 {
		t.Fatalf("the fleet store holds %+v (%v) for tg-0, want 997/1000", bs, err)
	}
	// The copied audit log verifies in place.
	out.Reset()
	if code := run(ctx, []string{"tailgate", "audit", "verify", "--postgres", dsn}, nil, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "audit log intact") {
		t.Errorf("audit verify --postgres: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	// Copying again into the same database is refused, with exit 2.
	if code := run(ctx, []string{"tailgate", "store", "copy", "--from", "sqlite:" + dir, "--to", "postgres:" + dsn, "--instance", "tg-0"},
		nil, &out, &errOut); code != exitUsage {
		t.Errorf("second copy: exit %d, want %d", code, exitUsage)
	}
	if code := run(ctx, []string{"tailgate", "store", "copy", "--from", dir, "--to", "postgres:" + dsn}, nil, &out, &errOut); code != exitUsage {
		t.Errorf("--from without sqlite: exit %d, want %d", code, exitUsage)
	}
}
