package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFleetStoreSettings checks the fleet store's keys as users write
// them: the DSN inline or from a file (trimmed, as a Secret mounts it),
// not both, and a missing or empty file named in the error.
func TestFleetStoreSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dsn")
	if err := os.WriteFile(file, []byte("postgres://tailgate@pg:5432/tailgate?sslmode=require\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		yaml, dsn, err string
	}{
		{yaml: "storage:\n  postgres: postgres://u@h/db\n", dsn: "postgres://u@h/db"},
		{yaml: "storage: {postgres_file: " + file + "}\ncell: eu-1\nfleet: {heartbeat_interval: 500ms}\n", dsn: "postgres://tailgate@pg:5432/tailgate?sslmode=require"},
		{yaml: "storage: {postgres: postgres://u@h/db, postgres_file: " + file + "}\n", err: "postgres and postgres_file are both set"},
		{yaml: "storage: {postgres_file: " + filepath.Join(dir, "missing") + "}\n", err: "storage.postgres_file: open " + filepath.Join(dir, "missing")},
		{yaml: "storage: {postgres_file: " + empty + "}\n", err: "storage.postgres_file: " + empty + " is empty"},
		{yaml: "fleet: {heartbeat_interval: 10ms}\n", err: "fleet.heartbeat_interval: must be at least 100ms"},
	} {
		cfg, err := Parse([]byte(tc.yaml))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if dsn, err := cfg.Storage.PostgresDSN(); err != nil || dsn != tc.dsn {
			t.Errorf("%q: DSN %q (%v), want %q", tc.yaml, dsn, err, tc.dsn)
		}
	}
}
