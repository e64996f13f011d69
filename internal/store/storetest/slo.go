package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func runSLO(t *testing.T, open func(t *testing.T) Stores) {
	st := func(t *testing.T) Stores {
		t.Helper()
		s := open(t)
		if s.SLO == nil {
			t.Skip("store has no SLO part")
		}
		return s
	}
	t.Run("BucketsRoundTrip", func(t *testing.T) { testBucketsRoundTrip(t, st(t).SLO) })
	t.Run("BucketsAdd", func(t *testing.T) { testBucketsAdd(t, st(t).SLO) })
	t.Run("BucketsLargeCounts", func(t *testing.T) { testBucketsLarge(t, st(t).SLO) })
	t.Run("BucketsPrune", func(t *testing.T) { testBucketsPrune(t, st(t).SLO) })
	t.Run("TrackSLO", func(t *testing.T) { testTrackSLO(t, st(t).SLO) })
	t.Run("Corrections", func(t *testing.T) { testCorrections(t, st(t).SLO) })
	t.Run("AlertTransitions", func(t *testing.T) { testTransitions(t, st(t).SLO) })
	t.Run("Concurrent", func(t *testing.T) { testSLOConcurrent(t, st(t).SLO) })
	t.Run("Cancelled", func(t *testing.T) { testSLOCancelled(t, st(t)) })
	t.Run("Reopen", func(t *testing.T) {
		s := st(t)
		if s.Reopen == nil {
			t.Skip("store keeps nothing across a restart (Reopen is nil)")
		}
		testSLOReopen(t, s)
	})
}

// loadBuckets loads from since, checks the contract's minute order and
// UTC minutes, and returns the buckets sorted by minute, SLO and group
// (the order within a minute is not part of the contract).
func loadBuckets(t *testing.T, s slo.BucketStore, since time.Time) []slo.Bucket {
	t.Helper()
	got, err := s.LoadSLIBuckets(t.Context(), since)
	must(t, err)
	for i, b := range got {
		if b.Minute.Location() != time.UTC {
			t.Errorf("bucket %d: minute %v is not in UTC", i, b.Minute)
		}
		if i > 0 && b.Minute.Before(got[i-1].Minute) {
			t.Errorf("buckets not in minute order: %v after %v", b.Minute, got[i-1].Minute)
		}
	}
	slices.SortStableFunc(got, func(a, b slo.Bucket) int {
		return cmp.Or(a.Minute.Compare(b.Minute), cmp.Compare(a.SLO, b.SLO), cmp.Compare(a.Group, b.Group))
	})
	return got
}

func testBucketsRoundTrip(t *testing.T, s slo.Store) {
	ctx := t.Context()
	m0, m1, m2 := base, base.Add(time.Minute), base.Add(2*time.Minute)
	if got := loadBuckets(t, s, time.Time{}); len(got) != 0 {
		t.Fatalf("empty store loaded %v", got)
	}
	must(t, s.AddSLIBuckets(ctx, nil))
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{
		{SLO: "a", Minute: m1, Good: 1, Total: 2},
		{SLO: "a", Minute: m0, Good: 3, Total: 4},
		{SLO: "a", Group: "eu", Minute: m0, Good: 5, Total: 6},
		{SLO: "b", Minute: m2, Good: 7, Total: 8},
	}))
	// Minutes come back in UTC: 10:07+05:30 is 04:37Z.
	u0 := time.Date(2026, 3, 4, 4, 37, 0, 0, time.UTC)
	u1, u2 := u0.Add(time.Minute), u0.Add(2*time.Minute)
	all := []slo.Bucket{
		{SLO: "a", Minute: u0, Good: 3, Total: 4},
		{SLO: "a", Group: "eu", Minute: u0, Good: 5, Total: 6},
		{SLO: "a", Minute: u1, Good: 1, Total: 2},
		{SLO: "b", Minute: u2, Good: 7, Total: 8},
	}
	for _, tc := range []struct {
		name  string
		since time.Time
		want  []slo.Bucket
	}{
		{"zero since", time.Time{}, all},
		{"since first minute", u0, all},
		{"since is inclusive", m1, all[2:]},
		{"since inside a minute", u1.Add(time.Second), all[3:]},
		{"since after the last", u2.Add(time.Minute), nil},
	} {
		got := loadBuckets(t, s, tc.since)
		if diff := gocmp.Diff(tc.want, got, emptyEqual()); diff != "" {
			t.Errorf("%s: LoadSLIBuckets(%v) (-want +got):\n%s", tc.name, tc.since, diff)
		}
	}
}

func testBucketsAdd(t *testing.T, s slo.Store) {
	ctx := t.Context()
	// Adding to a stored minute raises its counts (several instances, or
	// a restart inside a minute, sum); so does a repeat inside one batch.
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Minute: base, Good: 1, Total: 2}}))
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Minute: base, Good: 10, Total: 20}}))
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{
		{SLO: "a", Minute: base, Good: 100, Total: 200},
		{SLO: "a", Minute: base, Good: 1000, Total: 2000},
		{SLO: "a", Group: "eu", Minute: base, Good: 0, Total: 9},
	}))
	want := []slo.Bucket{
		{SLO: "a", Minute: base.UTC(), Good: 1111, Total: 2222},
		{SLO: "a", Group: "eu", Minute: base.UTC(), Good: 0, Total: 9},
	}
	if diff := gocmp.Diff(want, loadBuckets(t, s, time.Time{})); diff != "" {
		t.Errorf("after adds (-want +got):\n%s", diff)
	}
}

func testBucketsLarge(t *testing.T, s slo.Store) {
	ctx := t.Context()
	// 2^53+1 is the first integer a float64 cannot hold: a store that
	// passes counts through a float loses the +1.
	const odd = 1<<53 + 1
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{
		{SLO: "a", Minute: base, Good: odd, Total: 1<<62 + 1},
		{SLO: "b", Minute: base, Good: math.MaxInt64, Total: math.MaxInt64},
	}))
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Minute: base, Good: odd, Total: 0}}))
	want := []slo.Bucket{
		{SLO: "a", Minute: base.UTC(), Good: 1<<54 + 2, Total: 1<<62 + 1},
		{SLO: "b", Minute: base.UTC(), Good: 9223372036854775807, Total: 9223372036854775807},
	}
	if diff := gocmp.Diff(want, loadBuckets(t, s, time.Time{})); diff != "" {
		t.Errorf("large counts (-want +got):\n%s", diff)
	}
}

func testBucketsPrune(t *testing.T, s slo.Store) {
	ctx := t.Context()
	must(t, s.DeleteSLIBucketsBefore(ctx, base)) // empty store: no error
	m1, m2 := base.Add(time.Minute), base.Add(2*time.Minute)
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{
		{SLO: "a", Minute: base, Good: 1, Total: 1},
		{SLO: "a", Minute: m1, Good: 2, Total: 2},
		{SLO: "b", Group: "g", Minute: m2, Good: 3, Total: 3},
	}))
	// before is exclusive: the minute that starts at before stays.
	must(t, s.DeleteSLIBucketsBefore(ctx, m1))
	want := []slo.Bucket{
		{SLO: "a", Minute: m1.UTC(), Good: 2, Total: 2},
		{SLO: "b", Group: "g", Minute: m2.UTC(), Good: 3, Total: 3},
	}
	if diff := gocmp.Diff(want, loadBuckets(t, s, time.Time{})); diff != "" {
		t.Errorf("after DeleteSLIBucketsBefore(m1) (-want +got):\n%s", diff)
	}
	must(t, s.DeleteSLIBucketsBefore(ctx, m1)) // again: nothing changes
	if diff := gocmp.Diff(want, loadBuckets(t, s, time.Time{})); diff != "" {
		t.Errorf("after a second DeleteSLIBucketsBefore(m1) (-want +got):\n%s", diff)
	}
	// A pruned minute written again starts from zero.
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Minute: base, Good: 5, Total: 5}}))
	must(t, s.DeleteSLIBucketsBefore(ctx, m2.Add(time.Minute)))
	if got := loadBuckets(t, s, time.Time{}); len(got) != 0 {
		t.Errorf("after pruning everything: %v", got)
	}
}

func testTrackSLO(t *testing.T, s slo.Store) {
	ctx := t.Context()
	first := base.Add(123456789 * time.Nanosecond)
	later := first.Add(time.Hour)
	for _, tc := range []struct {
		slo  string
		now  time.Time
		want time.Time
	}{
		{"a", first, first},
		{"a", later, first}, // counting began at the first call
		{"b", later, later},
		{"a", first.Add(-time.Hour), first}, // an earlier now does not move it
	} {
		got, err := s.TrackSLO(ctx, tc.slo, tc.now)
		must(t, err)
		if !got.Equal(tc.want) {
			t.Errorf("TrackSLO(%q, %v) = %v, want %v", tc.slo, tc.now, got, tc.want)
		}
	}
}

func corrections() []slo.Correction {
	return []slo.Correction{
		{SLO: "a", Start: base, End: base.Add(time.Hour), Reason: "bad deploy", CreatedBy: "alice",
			CreatedAt: base.Add(-time.Minute + 5*time.Nanosecond), Source: slo.SourceAPI},
		{SLO: "a", Start: base.UTC(), Duration: units.Duration(30 * time.Minute), RRule: "FREQ=WEEKLY;BYDAY=MO",
			TimeZone: "Europe/Berlin", Reason: "maintenance", CreatedAt: base, Source: slo.SourceAPI},
		{SLO: "b", Start: base, End: base.Add(time.Minute), Reason: "load test", CreatedAt: base, Source: slo.SourceAPI},
	}
}

func listCorrections(t *testing.T, s slo.CorrectionStore) []slo.Correction {
	t.Helper()
	got, err := s.ListCorrections(t.Context())
	must(t, err)
	slices.SortFunc(got, func(a, b slo.Correction) int { return cmp.Compare(a.ID, b.ID) })
	return got
}

func testCorrections(t *testing.T, s slo.Store) {
	ctx := t.Context()
	if got := listCorrections(t, s); len(got) != 0 {
		t.Fatalf("empty store lists %v", got)
	}
	if ok, err := s.DeleteCorrection(ctx, "a", 1, "bob", base); err != nil || ok {
		t.Fatalf("DeleteCorrection on an empty store = %v, %v; want false, nil", ok, err)
	}
	var want []slo.Correction
	ids := map[int64]bool{}
	for _, c := range corrections() {
		got, err := s.AddCorrection(ctx, c)
		must(t, err)
		if got.ID == 0 || ids[got.ID] {
			t.Fatalf("AddCorrection gave ID %d; want a new non-zero one (have %v)", got.ID, ids)
		}
		ids[got.ID] = true
		c.ID = got.ID
		if diff := gocmp.Diff(c, got); diff != "" {
			t.Errorf("AddCorrection returned (-want +got):\n%s", diff)
		}
		want = append(want, c)
	}
	slices.SortFunc(want, func(a, b slo.Correction) int { return cmp.Compare(a.ID, b.ID) })
	if diff := gocmp.Diff(want, listCorrections(t, s)); diff != "" {
		t.Fatalf("ListCorrections (-want +got):\n%s", diff)
	}
	first := want[0] // SLO "a"
	// A delete keeps the row, marked with who and when (in UTC like every
	// instant here), so that the budget's history can be explained.
	deletedAt := base.Add(2 * time.Hour).In(time.FixedZone("+05:30", 5*3600+1800))
	for _, tc := range []struct {
		slo  string
		id   int64
		by   string
		want bool
	}{
		{"b", first.ID, "mallory", false}, // the ID belongs to another SLO
		{"a", first.ID, "bob", true},
		{"a", first.ID, "carol", false}, // already deleted: the first deleter stays
	} {
		ok, err := s.DeleteCorrection(ctx, tc.slo, tc.id, tc.by, deletedAt)
		must(t, err)
		if ok != tc.want {
			t.Errorf("DeleteCorrection(%q, %d, %q) = %v, want %v", tc.slo, tc.id, tc.by, ok, tc.want)
		}
	}
	want[0].DeletedBy, want[0].DeletedAt = "bob", deletedAt
	if diff := gocmp.Diff(want, listCorrections(t, s), gocmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("after delete (-want +got):\n%s", diff)
	}
	if got := listCorrections(t, s); len(got) > 0 && !got[0].Deleted() {
		t.Errorf("deleted correction %d is not Deleted()", got[0].ID)
	}
	// IDs are never reused, so a client's stale ID cannot delete a new one.
	again, err := s.AddCorrection(ctx, corrections()[0])
	must(t, err)
	if ids[again.ID] {
		t.Errorf("AddCorrection after a delete reused ID %d", again.ID)
	}
}

func ptr(f float64) *float64 { return &f }

func transitions() []slo.Transition {
	return []slo.Transition{
		{SLO: "a", Service: "checkout", Alert: "fast", Kind: slo.BurnRateAlert, Severity: slo.Page,
			From: slo.Inactive, To: slo.Pending, At: base.Add(7 * time.Nanosecond),
			Values: slo.AlertValues{Threshold: 14.4, LongWindow: "1h", ShortWindow: "5m",
				BurnRateLong: ptr(15.5), BurnRateShort: ptr(20.25), Coverage: 1, BudgetRemaining: ptr(0.5)}},
		{SLO: "a", Service: "checkout", Alert: "fast", Kind: slo.BurnRateAlert, Severity: slo.Page,
			From: slo.Pending, To: slo.Firing, At: base.Add(time.Minute),
			Values: slo.AlertValues{Threshold: 14.4, Coverage: 1, BudgetRemaining: ptr(0.25)}},
		{SLO: "a", Service: "checkout", Group: "eu", Alert: "fast", Kind: slo.BurnRateAlert, Severity: slo.Page,
			From: slo.Inactive, To: slo.Pending, At: base.Add(2 * time.Minute)},
		{SLO: "b", Service: "search", Alert: "exhausted", Kind: slo.BudgetExhaustedAlert, Severity: slo.Ticket,
			From: slo.Inactive, To: slo.Firing, At: base.Add(3 * time.Minute),
			Values: slo.AlertValues{Coverage: 0.25, BudgetRemaining: ptr(-0.125)}},
	}
}

func testTransitions(t *testing.T, s slo.Store) {
	ctx := t.Context()
	if got, err := s.LatestAlertTransitions(ctx); err != nil || len(got) != 0 {
		t.Fatalf("LatestAlertTransitions on an empty store = %v, %v", got, err)
	}
	if got, err := s.ListAlertTransitions(ctx, "", time.Time{}, 0); err != nil || len(got) != 0 {
		t.Fatalf("ListAlertTransitions on an empty store = %v, %v", got, err)
	}
	ts := transitions()
	must(t, s.AddAlertTransitions(ctx, nil))
	must(t, s.AddAlertTransitions(ctx, ts[:2]))
	must(t, s.AddAlertTransitions(ctx, ts[2:]))

	// The newest of each (SLO, group, alert); their order is not part of
	// the contract.
	latest, err := s.LatestAlertTransitions(ctx)
	must(t, err)
	byAt := func(a, b slo.Transition) int { return a.At.Compare(b.At) }
	slices.SortFunc(latest, byAt)
	if diff := gocmp.Diff([]slo.Transition{ts[1], ts[2], ts[3]}, latest); diff != "" {
		t.Errorf("LatestAlertTransitions (-want +got):\n%s", diff)
	}

	rev := func(idx ...int) []slo.Transition {
		out := []slo.Transition{}
		for _, i := range idx {
			out = append(out, ts[i])
		}
		return out
	}
	for _, tc := range []struct {
		slo   string
		since time.Time
		limit int
		want  []slo.Transition
	}{
		{"", time.Time{}, 0, rev(3, 2, 1, 0)},
		{"a", time.Time{}, 0, rev(2, 1, 0)},
		{"b", time.Time{}, 0, rev(3)},
		{"c", time.Time{}, 0, rev()},
		{"", ts[1].At, 0, rev(3, 2, 1)},                   // since is inclusive
		{"", ts[1].At.Add(time.Nanosecond), 0, rev(3, 2)}, // to the nanosecond
		{"", base.Add(7 * time.Nanosecond), 0, rev(3, 2, 1, 0)},
		{"", time.Time{}, 2, rev(3, 2)},
		{"a", ts[1].At, 1, rev(2)},
		{"", base.Add(time.Hour), 0, rev()},
	} {
		got, err := s.ListAlertTransitions(ctx, tc.slo, tc.since, tc.limit)
		must(t, err)
		if diff := gocmp.Diff(tc.want, got, emptyEqual()); diff != "" {
			t.Errorf("ListAlertTransitions(%q, %v, %d) (-want +got):\n%s", tc.slo, tc.since, tc.limit, diff)
		}
	}
}

func testSLOConcurrent(t *testing.T, s slo.Store) {
	ctx := t.Context()
	var wg sync.WaitGroup
	idCh := make(chan int64, concurrentWrites)
	errCh := make(chan error, 2*concurrentWrites)
	for w := range workers {
		wg.Go(func() {
			for i := range writesPerWorker {
				errCh <- s.AddSLIBuckets(ctx, []slo.Bucket{
					{SLO: "a", Minute: base, Good: 1, Total: 2},
					{SLO: "a", Group: fmt.Sprintf("w%d", w), Minute: base, Good: 1, Total: 1},
				})
				c, err := s.AddCorrection(ctx, slo.Correction{SLO: "a", Start: base, End: base.Add(time.Minute),
					Reason: fmt.Sprintf("w%d/%d", w, i), CreatedAt: base, Source: slo.SourceAPI})
				errCh <- err
				idCh <- c.ID
			}
		})
	}
	wg.Wait()
	close(errCh)
	close(idCh)
	for err := range errCh {
		must(t, err)
	}
	ids := map[int64]bool{}
	for id := range idCh {
		if ids[id] {
			t.Errorf("concurrent AddCorrection gave ID %d twice", id)
		}
		ids[id] = true
	}
	got := loadBuckets(t, s, time.Time{})
	// One whole-SLO bucket with every worker's adds, one per worker group.
	want := []slo.Bucket{{SLO: "a", Minute: base.UTC(), Good: 200, Total: 400}}
	for w := range workers {
		want = append(want, slo.Bucket{SLO: "a", Group: fmt.Sprintf("w%d", w), Minute: base.UTC(), Good: 25, Total: 25})
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("after %d concurrent adds (-want +got):\n%s", concurrentWrites, diff)
	}
	if n := len(listCorrections(t, s)); n != concurrentWrites {
		t.Errorf("%d corrections listed, want %d", n, concurrentWrites)
	}
}

func testSLOCancelled(t *testing.T, st Stores) {
	s := st.SLO
	ctx := cancelled(t)
	err := s.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Minute: base, Good: 1, Total: 1}, {SLO: "b", Minute: base, Good: 1, Total: 1}})
	checkCancelled(t, st, err, func() bool { return len(loadBuckets(t, s, time.Time{})) == 2 })
	err = s.AddAlertTransitions(ctx, transitions())
	checkCancelled(t, st, err, func() bool {
		got, err := s.ListAlertTransitions(t.Context(), "", time.Time{}, 0)
		must(t, err)
		return len(got) == len(transitions())
	})
	_, err = s.AddCorrection(ctx, corrections()[0])
	checkCancelled(t, st, err, func() bool { return len(listCorrections(t, s)) == 1 })
	if _, err := s.LoadSLIBuckets(ctx, time.Time{}); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("LoadSLIBuckets with a cancelled context: %v does not wrap context.Canceled", err)
	}
}

func testSLOReopen(t *testing.T, st Stores) {
	ctx := t.Context()
	s := st.SLO
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Group: "eu", Minute: base, Good: 3, Total: 4}}))
	since, err := s.TrackSLO(ctx, "a", base)
	must(t, err)
	c, err := s.AddCorrection(ctx, corrections()[1])
	must(t, err)
	must(t, s.AddAlertTransitions(ctx, transitions()[:2]))

	st = st.Reopen(t)
	s = st.SLO
	if diff := gocmp.Diff([]slo.Bucket{{SLO: "a", Group: "eu", Minute: base.UTC(), Good: 3, Total: 4}}, loadBuckets(t, s, time.Time{})); diff != "" {
		t.Errorf("buckets after reopen (-want +got):\n%s", diff)
	}
	// A restarted instance keeps adding to the minute it was in.
	must(t, s.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Group: "eu", Minute: base, Good: 1, Total: 1}}))
	if diff := gocmp.Diff([]slo.Bucket{{SLO: "a", Group: "eu", Minute: base.UTC(), Good: 4, Total: 5}}, loadBuckets(t, s, time.Time{})); diff != "" {
		t.Errorf("buckets added after reopen (-want +got):\n%s", diff)
	}
	again, err := s.TrackSLO(ctx, "a", base.Add(time.Hour))
	must(t, err)
	if !again.Equal(since) {
		t.Errorf("TrackSLO after reopen = %v, want %v", again, since)
	}
	if diff := gocmp.Diff([]slo.Correction{c}, listCorrections(t, s)); diff != "" {
		t.Errorf("corrections after reopen (-want +got):\n%s", diff)
	}
	next, err := s.AddCorrection(ctx, corrections()[0])
	must(t, err)
	if next.ID == c.ID {
		t.Errorf("AddCorrection after reopen reused ID %d", c.ID)
	}
	latest, err := s.LatestAlertTransitions(ctx)
	must(t, err)
	if diff := gocmp.Diff([]slo.Transition{transitions()[1]}, latest); diff != "" {
		t.Errorf("alert states after reopen (-want +got):\n%s", diff)
	}
}

// emptyEqual treats a nil slice as equal to an empty one: callers range
// over results, and the contracts do not distinguish the two.
func emptyEqual() gocmp.Option {
	return gocmp.FilterValues(func(x, y any) bool {
		return isEmptySlice(x) && isEmptySlice(y)
	}, gocmp.Comparer(func(_, _ any) bool { return true }))
}
