package sqlite

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/slo"
)

// TestStoragePermissions checks that the storage directory is 0700 and the
// database and its WAL 0600, also when an older version left them wider.
func TestStoragePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A write, so that the WAL exists.
	if err := db.AddSLIBuckets(t.Context(), []slo.Bucket{{SLO: "a", Minute: time.Unix(600, 0).UTC(), Good: 1, Total: 1}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{dir: 0o700, filepath.Join(dir, FileName): 0o600, filepath.Join(dir, FileName+"-wal"): 0o600} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(name), got, want)
		}
	}
}
