package sqlite

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func openTest(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSLIBucketsAddUp(t *testing.T) {
	db := openTest(t, t.TempDir())
	ctx := t.Context()
	m := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	if err := db.AddSLIBuckets(ctx, []slo.Bucket{
		{SLO: "a", Minute: m, Good: 5, Total: 6},
		{SLO: "a", Group: "/x", Minute: m, Good: 1, Total: 1},
		{SLO: "a", Minute: m.Add(time.Minute), Good: 2, Total: 2},
		{SLO: "b", Minute: m.Add(-time.Hour), Good: 9, Total: 9},
	}); err != nil {
		t.Fatal(err)
	}
	// A second instance (or a flush after a restart) adds to the minute.
	if err := db.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Minute: m, Good: 10, Total: 14}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.LoadSLIBuckets(ctx, m.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := []slo.Bucket{
		{SLO: "a", Minute: m, Good: 15, Total: 20},
		{SLO: "a", Group: "/x", Minute: m, Good: 1, Total: 1},
		{SLO: "a", Minute: m.Add(time.Minute), Good: 2, Total: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("buckets (-want +got):\n%s", diff)
	}
	if err := db.DeleteSLIBucketsBefore(ctx, m.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err = db.LoadSLIBuckets(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[2:], got); diff != "" {
		t.Errorf("after prune (-want +got):\n%s", diff)
	}
}

func TestTrackSLOKeepsFirstTime(t *testing.T) {
	db := openTest(t, t.TempDir())
	t1 := time.Date(2024, 1, 1, 10, 0, 0, 123, time.UTC)
	for _, now := range []time.Time{t1, t1.Add(time.Hour)} {
		got, err := db.TrackSLO(t.Context(), "a", now)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(t1) {
			t.Errorf("TrackSLO(%s) = %s, want %s", now, got, t1)
		}
	}
}

func TestCorrections(t *testing.T) {
	db := openTest(t, t.TempDir())
	ctx := t.Context()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	one := slo.Correction{SLO: "a", Start: time.Date(2024, 1, 1, 2, 0, 0, 0, berlin), End: time.Date(2024, 1, 1, 3, 0, 0, 0, berlin),
		Reason: "db migration", CreatedBy: "alice", CreatedAt: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)}
	rec := slo.Correction{SLO: "a", Start: time.Date(2024, 1, 7, 1, 0, 0, 0, time.UTC), RRule: "FREQ=WEEKLY;BYDAY=SU",
		Duration: units.Duration(time.Hour), TimeZone: "Europe/Berlin", Reason: "maintenance", CreatedBy: "bob", CreatedAt: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)}
	a, err := db.AddCorrection(ctx, one)
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.AddCorrection(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || b.ID == a.ID {
		t.Fatalf("IDs %d and %d", a.ID, b.ID)
	}
	got, err := db.ListCorrections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	one.ID, one.Source, rec.ID, rec.Source = a.ID, slo.SourceAPI, b.ID, slo.SourceAPI
	// Times come back with their offsets (a fixed zone of the same offset).
	if diff := cmp.Diff([]slo.Correction{one, rec}, got, cmp.Comparer(func(x, y time.Time) bool {
		_, ox := x.Zone()
		_, oy := y.Zone()
		return x.Equal(y) && ox == oy
	})); diff != "" {
		t.Errorf("corrections (-want +got):\n%s", diff)
	}
	deletedAt := time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC)
	if ok, err := db.DeleteCorrection(ctx, "b", a.ID, "carol", deletedAt); err != nil || ok {
		t.Errorf("delete with the wrong SLO = %v, %v; want false", ok, err)
	}
	if ok, err := db.DeleteCorrection(ctx, "a", a.ID, "carol", deletedAt); err != nil || !ok {
		t.Errorf("delete = %v, %v; want true", ok, err)
	}
	if ok, err := db.DeleteCorrection(ctx, "a", a.ID, "dave", deletedAt.Add(time.Hour)); err != nil || ok {
		t.Errorf("second delete = %v, %v; want false", ok, err)
	}
	// Soft delete: the row stays, with who deleted it and when.
	got, _ = db.ListCorrections(ctx)
	if len(got) != 2 || got[0].ID != a.ID || got[0].DeletedBy != "carol" || !got[0].DeletedAt.Equal(deletedAt) || got[1].Deleted() {
		t.Errorf("after delete: %+v", got)
	}
}

func TestAlertTransitions(t *testing.T) {
	db := openTest(t, t.TempDir())
	ctx := t.Context()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	b := 2.5
	ts := []slo.Transition{
		{SLO: "a", Service: "s", Alert: "page-1h", Kind: slo.BurnRateAlert, Severity: slo.Page, From: slo.Inactive, To: slo.Firing, At: t0,
			Values: slo.AlertValues{Threshold: 14.4, LongWindow: "1h", ShortWindow: "5m", BurnRateLong: &b, Coverage: 1}},
		{SLO: "a", Service: "s", Alert: "page-1h", Kind: slo.BurnRateAlert, Severity: slo.Page, From: slo.Firing, To: slo.Resolved, At: t0.Add(time.Hour)},
		{SLO: "a", Service: "s", Group: "/x", Alert: "page-1h", Kind: slo.BurnRateAlert, Severity: slo.Page, From: slo.Inactive, To: slo.Pending, At: t0.Add(2 * time.Hour)},
		{SLO: "b", Service: "s", Alert: "budget-exhausted", Kind: slo.BudgetExhaustedAlert, Severity: slo.Ticket, From: slo.Inactive, To: slo.Firing, At: t0.Add(3 * time.Hour)},
	}
	if err := db.AddAlertTransitions(ctx, ts); err != nil {
		t.Fatal(err)
	}
	latest, err := db.LatestAlertTransitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]slo.Transition{ts[1], ts[2], ts[3]}, latest); diff != "" {
		t.Errorf("latest (-want +got):\n%s", diff)
	}
	list, err := db.ListAlertTransitions(ctx, "a", t0.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]slo.Transition{ts[2], ts[1]}, list); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	all, _ := db.ListAlertTransitions(ctx, "", time.Time{}, 2)
	if len(all) != 2 || all[0].SLO != "b" {
		t.Errorf("list all, limit 2: %+v", all)
	}
}

// TestEngineRestartContinuesWindows runs the SLO engine on this store,
// stops it, and starts a new one on the same file: the windows, the
// tracking start, the corrections and the firing alerts carry over.
func TestEngineRestartContinuesWindows(t *testing.T) {
	dir := t.TempDir()
	spec := slo.Spec{Name: "checkout", Service: "checkout", Objective: 99, Window: units.Duration(30 * 24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}}
	start := func(db *DB) *slo.Engine {
		e, err := slo.NewEngine([]slo.Spec{spec}, slo.Settings{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return e
	}
	db1 := openTest(t, dir)
	e1 := start(db1)
	now := time.Now()
	e1.Observe(otlptest.EntryRequest(t, "checkout", 10, 10), now)
	e1.Observe(otlptest.EntryRequest(t, "checkout", 10, 0), now)
	if _, err := e1.AddCorrection(t.Context(), slo.Correction{SLO: "checkout", Start: now.Add(-48 * time.Hour), End: now.Add(-47 * time.Hour), Reason: "old maintenance", CreatedBy: "t"}, now); err != nil {
		t.Fatal(err)
	}
	before, _ := e1.Status("checkout", now)
	if err := e1.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	db1.Close()

	db2 := openTest(t, dir)
	e2 := start(db2)
	defer e2.Shutdown(t.Context())
	after, _ := e2.Status("checkout", now)
	if after.Good != 10 || after.Total != 20 {
		t.Errorf("after restart good/total = %v/%v, want 10/20", after.Good, after.Total)
	}
	if !after.TrackedSince.Equal(before.TrackedSince) {
		t.Errorf("tracked since %s, want %s", after.TrackedSince, before.TrackedSince)
	}
	cs, _ := e2.Corrections("checkout")
	if len(cs) != 1 || cs[0].Reason != "old maintenance" || cs[0].CreatedBy != "t" {
		t.Errorf("corrections after restart: %+v", cs)
	}
	// Half of the requests failed: the first evaluation after the restart
	// sees the spent budget.
	var firing []string
	for _, a := range after.Alerts {
		firing = append(firing, a.Name+":"+a.State.String())
	}
	if diff := cmp.Diff([]string{"budget-exhausted:firing"}, firing); diff != "" {
		t.Errorf("alerts after restart (-want +got):\n%s", diff)
	}
	// More traffic in the same minute adds to the stored minute.
	e2.Observe(otlptest.EntryRequest(t, "checkout", 5, 0), now)
	if err := e2.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	bs, err := db2.LoadSLIBuckets(t.Context(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var good, total uint64
	for _, b := range bs {
		good += b.Good
		total += b.Total
	}
	if good != 15 || total != 25 {
		t.Errorf("stored good/total = %d/%d, want 15/25 (no double counting)", good, total)
	}
}
