package sqlite_test

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
)

var auditBase = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// auditedDB returns a store in dir holding six audit rows written through
// its ordinary writes, and the handle to edit the file behind its back.
func auditedDB(t *testing.T) (*sqlite.DB, *sql.DB) {
	t.Helper()
	db := openStores(t, t.TempDir()).Gate.(*sqlite.DB)
	ctx := t.Context()
	for i := range 4 {
		d := gate.Decision{ID: fmt.Sprintf("d%d", i+1), Service: "checkout", ChangeClass: gate.Feature, Verdict: gate.Allow,
			PolicyRule: "within-budget", EvaluatedAt: auditBase.Add(time.Duration(i) * time.Minute)}
		if err := db.AddDecision(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	o := gate.Override{ID: "o1", Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Feature}, Reason: "launch",
		ApprovedBy: "cto", CreatedBy: "alice", CreatedAt: auditBase, ExpiresAt: auditBase.Add(time.Hour)}
	if err := db.AddOverride(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeOverride(ctx, "o1", "bob", auditBase.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+db.Path()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return db, raw
}

func verify(t *testing.T, s gate.AuditStore) gate.AuditReport {
	t.Helper()
	rep, err := gate.VerifyAudit(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestAuditTamperingIsFound(t *testing.T) {
	t.Run("intact", func(t *testing.T) {
		db, _ := auditedDB(t)
		if rep := verify(t, db); rep.Broken != nil || rep.Rows != 6 {
			t.Fatalf("verify = %+v, want 6 intact rows", rep)
		}
	})
	for _, tc := range []struct {
		name, sql string
		seq       int64
		kind      gate.AuditKind
		problem   string
	}{
		{"payload", `UPDATE audit_log SET payload = replace(payload, '"decision":"allow"', '"decision":"deny"') WHERE seq = 3`,
			3, gate.AuditDecision, "does not match its content"},
		{"actor", `UPDATE audit_log SET actor = 'mallory' WHERE seq = 5`, 5, gate.AuditOverride, "does not match its content"},
		{"time", `UPDATE audit_log SET at = at + 1 WHERE seq = 6`, 6, gate.AuditOverrideRevoke, "does not match its content"},
		{"deleted", `DELETE FROM audit_log WHERE seq = 2`, 3, gate.AuditDecision, "row 2 is missing"},
		{"renumbered", `DELETE FROM audit_log WHERE seq = 2; UPDATE audit_log SET seq = seq - 1 WHERE seq > 2`, 2, gate.AuditDecision, "is not the previous row's hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, raw := auditedDB(t)
			res, err := raw.ExecContext(t.Context(), tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				t.Fatal("the tampering changed nothing")
			}
			rep := verify(t, db)
			if rep.Broken == nil {
				t.Fatalf("verify found no break: %+v", rep)
			}
			b := rep.Broken
			if b.Seq != tc.seq || b.Kind != tc.kind || !strings.Contains(b.Problem, tc.problem) {
				t.Errorf("broken = row %d %s (%s); want row %d %s with %q", b.Seq, b.Kind, b.Problem, tc.seq, tc.kind, tc.problem)
			}
		})
	}
}

// TestAuditSharedFile appends through two handles on one file, as two
// daemons sharing a store would: BEGIN IMMEDIATE keeps one chain.
func TestAuditSharedFile(t *testing.T) {
	dir := t.TempDir()
	a := openStores(t, dir).Audit
	b := openStores(t, dir).Audit
	const each = 40
	var wg sync.WaitGroup
	for w, s := range []gate.AuditStore{a, b, a, b} {
		wg.Go(func() {
			for i := range each {
				e := gate.AuditEntry{Kind: "n", Actor: fmt.Sprint(w), Time: auditBase, Payload: []byte(fmt.Sprint(i))}
				if err := s.AppendAudit(t.Context(), []gate.AuditEntry{e}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if rep := verify(t, a); rep.Broken != nil || rep.Rows != 4*each {
		t.Fatalf("verify = %+v, want %d intact rows", rep, 4*each)
	}
}

func TestOpenReadOnly(t *testing.T) {
	if _, err := sqlite.OpenReadOnly(t.Context(), t.TempDir()); err == nil {
		t.Fatal("OpenReadOnly of an empty directory succeeded")
	}
	db, _ := auditedDB(t)
	dir := strings.TrimSuffix(db.Path(), "/"+sqlite.FileName)
	ro, err := sqlite.OpenReadOnly(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if rep := verify(t, ro); rep.Broken != nil || rep.Rows != 6 {
		t.Fatalf("verify through a read-only handle = %+v, want 6 intact rows", rep)
	}
	if err := ro.AppendAudit(t.Context(), []gate.AuditEntry{{Kind: "n", Time: auditBase, Payload: []byte("1")}}); err == nil {
		t.Error("a read-only handle appended to the audit log")
	}
}
