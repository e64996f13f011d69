package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/store/postgres"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
	"github.com/tailgate-sre/tailgate/internal/units"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// TestImportFromSQLite moves an embedded store with state in every domain
// to the fleet store: the budgets' counts, corrections, alert history,
// gate decisions and the audit chain, flags and log marks read back the
// same, the chain still verifies, and numbering continues after the
// copied IDs.
func TestImportFromSQLite(t *testing.T) {
	ctx := t.Context()
	src, err := sqlite.Open(ctx, t.TempDir())
	must(t, err)
	defer src.Close()
	m0 := time.Date(2026, 3, 4, 10, 7, 0, 0, time.UTC)
	must(t, src.AddSLIBucketsMarked(ctx, []slo.Bucket{{SLO: "a", Minute: m0, Good: 90, Total: 100}, {SLO: "a", Group: "eu", Minute: m0.Add(time.Minute), Good: 5, Total: 5}},
		wal.Mark{Instance: "old-host", Consumer: slo.WALConsumer, Pos: 4242, ClosedBefore: 7}))
	since, err := src.TrackSLO(ctx, "a", m0.Add(-time.Hour))
	must(t, err)
	c, err := src.AddCorrection(ctx, slo.Correction{SLO: "a", Start: m0, Duration: units.Duration(time.Hour), Reason: "maintenance", CreatedBy: "ops", CreatedAt: m0})
	must(t, err)
	must(t, src.AddAlertTransitions(ctx, []slo.Transition{{SLO: "a", Service: "checkout", Alert: "budget-exhausted", Kind: slo.BudgetExhaustedAlert,
		Severity: slo.Ticket, From: slo.Inactive, To: slo.Firing, At: m0}}))
	must(t, src.AddDecision(ctx, gate.Decision{ID: "d1", Service: "checkout", ChangeClass: gate.Feature, Verdict: gate.Deny, EvaluatedAt: m0}))
	must(t, src.SetFlagState(ctx, flags.State{Key: "recs", Forced: &flags.Forced{Variant: "off", By: "ops"}, Version: 1, Since: m0},
		flags.Change{Key: "recs", Action: flags.ActionFlip, Actor: "ops", At: m0}))

	dst := openDB(t, pg.Database(t), "new-host")
	defer dst.Close()
	stats, err := dst.Import(ctx, src.ScanTable, nil)
	must(t, err)
	if stats["slo_buckets"] != 2 || stats["audit_log"] != 3 || stats["wal_marks"] != 1 {
		t.Errorf("copied %v", stats)
	}

	own, err := dst.LoadSLIBuckets(ctx, m0)
	must(t, err)
	want, err := src.LoadSLIBuckets(ctx, m0)
	must(t, err)
	if diff := cmp.Diff(want, own); diff != "" {
		t.Errorf("buckets differ (-sqlite +postgres):\n%s", diff)
	}
	marks, err := dst.WALMarks(ctx, "new-host")
	must(t, err)
	if m := marks[slo.WALConsumer]; m.Pos != 4242 || m.ClosedBefore != 7 {
		t.Errorf("the log mark moved to the new instance name as %+v, want pos 4242", m)
	}
	got, err := dst.TrackSLO(ctx, "a", m0)
	must(t, err)
	if !got.Equal(since) {
		t.Errorf("tracking since %v, want %v", got, since)
	}
	cs, err := dst.ListCorrections(ctx)
	must(t, err)
	if len(cs) != 1 || cs[0].ID != c.ID || cs[0].Reason != "maintenance" || cs[0].Duration.Std() != time.Hour {
		t.Errorf("corrections %+v", cs)
	}
	next, err := dst.AddCorrection(ctx, slo.Correction{SLO: "a", Start: m0, Duration: units.Duration(time.Minute), Reason: "x", CreatedAt: m0})
	must(t, err)
	if next.ID != c.ID+1 {
		t.Errorf("next correction ID %d, want %d", next.ID, c.ID+1)
	}
	rep, err := gate.VerifyAudit(ctx, dst)
	must(t, err)
	if rep.Broken != nil || rep.Rows != 4 {
		t.Errorf("audit chain after the copy and one more write: %+v, want 4 intact rows", rep)
	}
	ds, err := dst.Decisions(ctx, gate.DecisionQuery{Service: "checkout"})
	must(t, err)
	if len(ds) != 1 || ds[0].ID != "d1" || ds[0].Verdict != gate.Deny {
		t.Errorf("decisions %+v", ds)
	}
	st, err := dst.FlagStates(ctx)
	must(t, err)
	if len(st) != 1 || st[0].Forced == nil || st[0].Forced.Variant != "off" || st[0].Paused {
		t.Errorf("flag states %+v", st)
	}

	// A second copy into the same database is refused.
	if _, err := dst.Import(ctx, src.ScanTable, nil); !errors.Is(err, postgres.ErrNotEmpty) {
		t.Errorf("second import: %v, want ErrNotEmpty", err)
	}
}
