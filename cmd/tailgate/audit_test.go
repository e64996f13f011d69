package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
)

// writeAuditStore creates the store in dir with n gate decisions, each
// with its audit row.
func writeAuditStore(ctx context.Context, dir string, n int) error {
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		return err
	}
	at := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	for i := range n {
		d := gate.Decision{ID: fmt.Sprintf("dec-%d", i+1), Service: "checkout", ChangeClass: gate.Feature,
			Verdict: gate.Allow, PolicyRule: "within-budget", EvaluatedAt: at.Add(time.Duration(i) * time.Minute)}
		if err := db.AddDecision(ctx, d); err != nil {
			db.Close()
			return err
		}
	}
	return db.Close()
}

// editAuditStore changes the audit log behind the store's back: tamper
// rewrites row seq's verdict, delete removes it.
func editAuditStore(ctx context.Context, dir, how string, seq int) error {
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		return err
	}
	defer raw.Close()
	q := map[string]string{
		"tamper": `UPDATE audit_log SET payload = replace(payload, '"decision":"allow"', '"decision":"deny"') WHERE seq = ?`,
		"delete": `DELETE FROM audit_log WHERE seq = ?`,
	}[how]
	if q == "" {
		return fmt.Errorf("unknown edit %q", how)
	}
	res, err := raw.ExecContext(ctx, q, seq)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%s row %d: %d rows changed, %v", how, seq, n, err)
	}
	return nil
}

// cmdAuditStore is the scripts' "auditstore DIR N" (a store with N
// audited decisions) and "auditstore DIR tamper|delete SEQ".
func cmdAuditStore(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: auditstore DIR N | auditstore DIR tamper|delete SEQ")
	}
	dir := ts.MkAbs(args[0])
	var err error
	if len(args) == 2 {
		n, aerr := strconv.Atoi(args[1])
		ts.Check(aerr)
		err = writeAuditStore(context.Background(), dir, n)
	} else {
		seq, aerr := strconv.Atoi(args[2])
		ts.Check(aerr)
		err = editAuditStore(context.Background(), dir, args[1], seq)
	}
	ts.Check(err)
}

func TestAuditVerify(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     string
		seq      int
		code     int
		stdout   string
		stderrOK bool
	}{
		{"intact", "", 0, exitOK, "audit log intact: 5 rows, head ", false},
		{"tampered", "tamper", 3, exitFail, "audit log BROKEN at row 3 (gate.decision, 2026-03-04T10:02:00Z): hash ", false},
		{"deleted", "delete", 2, exitFail, "audit log BROKEN at row 3 (gate.decision, 2026-03-04T10:02:00Z): row 3 follows row 1: row 2 is missing", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := writeAuditStore(t.Context(), dir, 5); err != nil {
				t.Fatal(err)
			}
			if tc.edit != "" {
				if err := editAuditStore(t.Context(), dir, tc.edit, tc.seq); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"tailgate", "audit", "verify", "--storage", dir}, strings.NewReader(""), &stdout, &stderr)
			if code != tc.code || !strings.HasPrefix(stdout.String(), tc.stdout) || stderr.Len() != 0 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout starting %q, no stderr", code, stdout.String(), stderr.String(), tc.code, tc.stdout)
			}
		})
	}
	t.Run("no store", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{"tailgate", "audit", "verify", "--storage", t.TempDir()}, strings.NewReader(""), &stdout, &stderr); code != exitUsage || stderr.Len() == 0 {
			t.Errorf("exit %d, stderr %q; want exit 2 with a message", code, stderr.String())
		}
	})
}
