package storetest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/signals"
)

func runSignals(t *testing.T, open func(t *testing.T) Stores) {
	st := func(t *testing.T) Stores {
		t.Helper()
		s := open(t)
		if s.Signals == nil {
			t.Skip("store has no golden-signals part")
		}
		return s
	}
	t.Run("BucketsFilter", func(t *testing.T) { testSignalBuckets(t, st(t).Signals) })
	t.Run("BucketsLargeValues", func(t *testing.T) { testSignalLarge(t, st(t).Signals) })
	t.Run("OldestBucket", func(t *testing.T) { testOldest(t, st(t).Signals) })
	t.Run("Rollup", func(t *testing.T) { testRollup(t, st(t).Signals) })
	t.Run("ErrorOrigins", func(t *testing.T) { testOrigins(t, st(t).Signals) })
	t.Run("Prune", func(t *testing.T) { testSignalsPrune(t, st(t).Signals) })
	t.Run("Concurrent", func(t *testing.T) { testSignalsConcurrent(t, st(t).Signals) })
	t.Run("Cancelled", func(t *testing.T) { testSignalsCancelled(t, st(t)) })
	t.Run("Reopen", func(t *testing.T) {
		s := st(t)
		if s.Reopen == nil {
			t.Skip("store keeps nothing across a restart (Reopen is nil)")
		}
		testSignalsReopen(t, s)
	})
}

// Times of the golden-signal tests, all UTC: h4 is 04:00Z, base is
// 04:37Z (10:07 at UTC+05:30), h5 is 05:00Z.
var (
	h4 = time.Date(2026, 3, 4, 4, 0, 0, 0, time.UTC)
	h5 = h4.Add(time.Hour)
)

// signalBuckets reads buckets and sorts them (the contract has no order);
// rows that tie on every key are kept apart by their counts.
func signalBuckets(t *testing.T, s signals.Store, f signals.BucketFilter) []signals.Bucket {
	t.Helper()
	got, err := s.SignalBuckets(t.Context(), f)
	must(t, err)
	sortBuckets(got)
	return got
}

func sortBuckets(bs []signals.Bucket) {
	slices.SortFunc(bs, func(a, b signals.Bucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Step, b.Step), cmp.Compare(a.Service, b.Service),
			cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Requests, b.Requests), bytes.Compare(a.Latency, b.Latency))
	})
}

func sorted(bs ...signals.Bucket) []signals.Bucket {
	out := slices.Clone(bs)
	sortBuckets(out)
	return out
}

func testSignalBuckets(t *testing.T, s signals.Store) {
	ctx := t.Context()
	m0, m1, m2 := base, base.Add(time.Minute), base.Add(2*time.Minute)
	all := signals.BucketFilter{From: h4, To: h5}
	if got := signalBuckets(t, s, all); len(got) != 0 {
		t.Fatalf("empty store returned %v", got)
	}
	b1 := signals.Bucket{Service: "checkout", Operation: "GET /", Start: m0, Step: time.Minute, Requests: 10, Errors: 1, Latency: []byte("a")}
	b2 := signals.Bucket{Service: "checkout", Operation: "GET /", Start: m1, Step: time.Minute, Requests: 5, Latency: []byte("b")}
	b3 := signals.Bucket{Service: "search", Operation: "query", Start: m0, Step: time.Minute, Requests: 7, Errors: 7, Latency: []byte("c")}
	b4 := signals.Bucket{Service: "checkout", Operation: "GET /", Start: h4, Step: time.Hour, Requests: 100, Errors: 2, Latency: []byte("d")}
	// b5 is a second row of b1's operation and minute (a late span, another
	// instance): rows are additive and both come back, for the reader to
	// merge.
	b5 := signals.Bucket{Service: "checkout", Operation: "GET /", Start: m0, Step: time.Minute, Requests: 1, Errors: 1, Latency: []byte("e")}
	must(t, s.AppendSignalBuckets(ctx, nil))
	must(t, s.AppendSignalBuckets(ctx, []signals.Bucket{b1, b2, b3}))
	in := []signals.Bucket{b4, b5}
	in[1].Latency = slices.Clone(b5.Latency)
	must(t, s.AppendSignalBuckets(ctx, in))
	in[1].Latency[0] = 'X' // the store must not keep the caller's buffer
	for _, tc := range []struct {
		name string
		f    signals.BucketFilter
		want []signals.Bucket
	}{
		{"all", all, sorted(b1, b2, b3, b4, b5)},
		{"one service", signals.BucketFilter{Service: "checkout", From: h4, To: h5}, sorted(b1, b2, b4, b5)},
		{"unknown service", signals.BucketFilter{Service: "nobody", From: h4, To: h5}, nil},
		{"minute step", signals.BucketFilter{From: h4, To: h5, Step: time.Minute}, sorted(b1, b2, b3, b5)},
		{"hour step", signals.BucketFilter{From: h4, To: h5, Step: time.Hour}, sorted(b4)},
		{"from is inclusive", signals.BucketFilter{From: m1, To: m2}, sorted(b2)},
		{"to is exclusive", signals.BucketFilter{From: m0, To: m1}, sorted(b1, b3, b5)},
		{"from in another zone", signals.BucketFilter{From: m1.In(time.FixedZone("", -7*3600)), To: h5}, sorted(b2)},
		{"empty range", signals.BucketFilter{From: m0, To: m0}, nil},
	} {
		got := signalBuckets(t, s, tc.f)
		if diff := gocmp.Diff(tc.want, got, emptyEqual()); diff != "" {
			t.Errorf("%s: SignalBuckets(%+v) (-want +got):\n%s", tc.name, tc.f, diff)
		}
	}
}

func testSignalLarge(t *testing.T, s signals.Store) {
	lat := make([]byte, 64<<10)
	for i := range lat {
		lat[i] = byte(i * 7)
	}
	b := signals.Bucket{Service: "s", Operation: "o", Start: base, Step: time.Minute,
		Requests: 1<<53 + 1, Errors: 1<<62 + 3, Latency: lat}
	must(t, s.AppendSignalBuckets(t.Context(), []signals.Bucket{b}))
	got := signalBuckets(t, s, signals.BucketFilter{From: h4, To: h5})
	if diff := gocmp.Diff([]signals.Bucket{b}, got); diff != "" {
		t.Errorf("large values (-want +got):\n%s", diff)
	}
}

func testOldest(t *testing.T, s signals.Store) {
	ctx := t.Context()
	check := func(step time.Duration, want time.Time, wantOK bool) {
		t.Helper()
		got, ok, err := s.OldestSignalBucket(ctx, step)
		must(t, err)
		if ok != wantOK || (ok && !got.Equal(want)) {
			t.Errorf("OldestSignalBucket(%v) = %v, %v; want %v, %v", step, got, ok, want, wantOK)
		}
	}
	check(time.Minute, time.Time{}, false)
	must(t, s.AppendSignalBuckets(ctx, []signals.Bucket{
		{Service: "a", Operation: "x", Start: base.Add(time.Minute), Step: time.Minute, Latency: []byte{1}},
		{Service: "b", Operation: "y", Start: base, Step: time.Minute, Latency: []byte{1}},
		{Service: "a", Operation: "x", Start: h5, Step: time.Hour, Latency: []byte{1}},
	}))
	check(time.Minute, base, true)
	check(time.Hour, h5, true)
	check(24*time.Hour, time.Time{}, false)
}

func testRollup(t *testing.T, s signals.Store) {
	ctx := t.Context()
	before := signals.Bucket{Service: "a", Operation: "x", Start: h4.Add(-time.Minute), Step: time.Minute, Requests: 1, Latency: []byte{1}}
	first := signals.Bucket{Service: "a", Operation: "x", Start: h4, Step: time.Minute, Requests: 2, Latency: []byte{2}}
	inside := signals.Bucket{Service: "b", Operation: "y", Start: base, Step: time.Minute, Requests: 3, Latency: []byte{3}}
	at := signals.Bucket{Service: "a", Operation: "x", Start: h5, Step: time.Minute, Requests: 4, Latency: []byte{4}}
	oldHour := signals.Bucket{Service: "a", Operation: "x", Start: h4, Step: time.Hour, Requests: 50, Latency: []byte{5}}
	must(t, s.AppendSignalBuckets(ctx, []signals.Bucket{before, first, inside, at, oldHour}))
	rolled := []signals.Bucket{
		{Service: "a", Operation: "x", Start: h4, Step: time.Hour, Requests: 2, Latency: []byte{6}},
		{Service: "b", Operation: "y", Start: h4, Step: time.Hour, Requests: 3, Latency: []byte{7}},
	}
	// [h4, h5): the minute buckets from h4 up to, not including, h5 go;
	// hour buckets in the range stay.
	must(t, s.ReplaceSignalBuckets(ctx, h4, h5, rolled))
	got := signalBuckets(t, s, signals.BucketFilter{From: h4.Add(-time.Hour), To: h5.Add(time.Hour)})
	want := sorted(before, at, oldHour, rolled[0], rolled[1])
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("after ReplaceSignalBuckets (-want +got):\n%s", diff)
	}
	// Replacing an empty range with nothing changes nothing.
	must(t, s.ReplaceSignalBuckets(ctx, h4, h5, nil))
	if diff := gocmp.Diff(want, signalBuckets(t, s, signals.BucketFilter{From: h4.Add(-time.Hour), To: h5.Add(time.Hour)})); diff != "" {
		t.Errorf("after an empty ReplaceSignalBuckets (-want +got):\n%s", diff)
	}
}

func origins() []signals.OriginRow {
	return []signals.OriginRow{
		{Start: base, Service: "checkout", OriginService: "payments", OriginOperation: "charge", Reason: "timeout", Requests: 1.0 / 3},
		{Start: base.Add(time.Minute), Service: "frontend", OriginService: "checkout", OriginOperation: "GET /", Reason: "5xx", Requests: 2.5, Requests5xx: 2.5},
		{Start: base, Service: "search", OriginService: "db", Reason: "error", Dependency: true, Requests: 1, Requests5xx: 0.5},
	}
}

func errorOrigins(t *testing.T, s signals.Store, service string, from, to time.Time) []signals.OriginRow {
	t.Helper()
	got, err := s.ErrorOrigins(t.Context(), service, from, to)
	must(t, err)
	slices.SortFunc(got, func(a, b signals.OriginRow) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Service, b.Service), cmp.Compare(a.OriginService, b.OriginService))
	})
	return got
}

func testOrigins(t *testing.T, s signals.Store) {
	ctx := t.Context()
	m1, m2 := base.Add(time.Minute), base.Add(2*time.Minute)
	if got := errorOrigins(t, s, "checkout", h4, h5); len(got) != 0 {
		t.Fatalf("empty store returned %v", got)
	}
	o := origins()
	must(t, s.AppendErrorOrigins(ctx, nil))
	must(t, s.AppendErrorOrigins(ctx, o))
	for _, tc := range []struct {
		service  string
		from, to time.Time
		want     []signals.OriginRow
	}{
		{"checkout", base, m2, []signals.OriginRow{o[0], o[1]}}, // as service, then as origin
		{"payments", base, m2, []signals.OriginRow{o[0]}},
		{"checkout", m1, m2, []signals.OriginRow{o[1]}},   // from inclusive
		{"checkout", base, m1, []signals.OriginRow{o[0]}}, // to exclusive
		{"db", h4, h5, []signals.OriginRow{o[2]}},
		{"", h4, h5, nil},
		{"nobody", h4, h5, nil},
	} {
		got := errorOrigins(t, s, tc.service, tc.from, tc.to)
		if diff := gocmp.Diff(tc.want, got, emptyEqual()); diff != "" {
			t.Errorf("ErrorOrigins(%q, %v, %v) (-want +got):\n%s", tc.service, tc.from, tc.to, diff)
		}
	}
}

func testSignalsPrune(t *testing.T, s signals.Store) {
	ctx := t.Context()
	must(t, s.DeleteSignalsBefore(ctx, base)) // empty store: no error
	m1 := base.Add(time.Minute)
	old := signals.Bucket{Service: "a", Operation: "x", Start: base, Step: time.Minute, Requests: 1, Latency: []byte{1}}
	oldHour := signals.Bucket{Service: "a", Operation: "x", Start: h4, Step: time.Hour, Requests: 9, Latency: []byte{2}}
	kept := signals.Bucket{Service: "a", Operation: "x", Start: m1, Step: time.Minute, Requests: 2, Latency: []byte{3}}
	must(t, s.AppendSignalBuckets(ctx, []signals.Bucket{old, oldHour, kept}))
	o := origins()
	must(t, s.AppendErrorOrigins(ctx, o))
	// Rows that start before m1 go, of every step; m1 itself stays.
	must(t, s.DeleteSignalsBefore(ctx, m1))
	if diff := gocmp.Diff([]signals.Bucket{kept}, signalBuckets(t, s, signals.BucketFilter{From: h4, To: h5})); diff != "" {
		t.Errorf("buckets after DeleteSignalsBefore (-want +got):\n%s", diff)
	}
	var left []signals.OriginRow
	for _, svc := range []string{"checkout", "search", "db"} {
		left = append(left, errorOrigins(t, s, svc, h4, h5)...)
	}
	if diff := gocmp.Diff([]signals.OriginRow{o[1]}, left); diff != "" {
		t.Errorf("origins after DeleteSignalsBefore (-want +got):\n%s", diff)
	}
}

func testSignalsConcurrent(t *testing.T, s signals.Store) {
	ctx := t.Context()
	var wg sync.WaitGroup
	errCh := make(chan error, 2*concurrentWrites)
	for range workers {
		wg.Go(func() {
			for range writesPerWorker {
				errCh <- s.AppendSignalBuckets(ctx, []signals.Bucket{{Service: "a", Operation: "x", Start: base, Step: time.Minute, Requests: 3, Errors: 1, Latency: []byte{1}}})
				errCh <- s.AppendErrorOrigins(ctx, []signals.OriginRow{{Start: base, Service: "a", OriginService: "b", Reason: "error", Requests: 0.5}})
			}
		})
	}
	wg.Wait()
	close(errCh)
	for err := range errCh {
		must(t, err)
	}
	got := signalBuckets(t, s, signals.BucketFilter{From: h4, To: h5})
	var req, errs uint64
	for _, b := range got {
		req, errs = req+b.Requests, errs+b.Errors
	}
	// 200 rows of 3 requests and 1 error each.
	if len(got) != 200 || req != 600 || errs != 200 {
		t.Errorf("after %d concurrent appends: %d rows, %d requests, %d errors; want 200, 600, 200", concurrentWrites, len(got), req, errs)
	}
	var sum float64
	rows := errorOrigins(t, s, "a", h4, h5)
	for _, r := range rows {
		sum += r.Requests
	}
	if len(rows) != 200 || sum != 100 {
		t.Errorf("after %d concurrent origin appends: %d rows summing to %v; want 200 summing to 100", concurrentWrites, len(rows), sum)
	}
}

func testSignalsCancelled(t *testing.T, st Stores) {
	s := st.Signals
	ctx := cancelled(t)
	bs := []signals.Bucket{
		{Service: "a", Operation: "x", Start: base, Step: time.Minute, Requests: 1, Latency: []byte{1}},
		{Service: "b", Operation: "y", Start: base, Step: time.Minute, Requests: 1, Latency: []byte{1}},
	}
	err := s.AppendSignalBuckets(ctx, bs)
	checkCancelled(t, st, err, func() bool { return len(signalBuckets(t, s, signals.BucketFilter{From: h4, To: h5})) == 2 })
	err = s.AppendErrorOrigins(ctx, origins())
	checkCancelled(t, st, err, func() bool { return len(errorOrigins(t, s, "checkout", h4, h5)) == 2 })
	if _, err := s.SignalBuckets(ctx, signals.BucketFilter{From: h4, To: h5}); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("SignalBuckets with a cancelled context: %v does not wrap context.Canceled", err)
	}
}

func testSignalsReopen(t *testing.T, st Stores) {
	ctx := t.Context()
	b := signals.Bucket{Service: "a", Operation: "x", Start: base, Step: time.Minute, Requests: 4, Errors: 1, Latency: []byte("sketch")}
	must(t, st.Signals.AppendSignalBuckets(ctx, []signals.Bucket{b}))
	o := origins()
	must(t, st.Signals.AppendErrorOrigins(ctx, o[:1]))
	s := st.Reopen(t).Signals
	if diff := gocmp.Diff([]signals.Bucket{b}, signalBuckets(t, s, signals.BucketFilter{From: h4, To: h5})); diff != "" {
		t.Errorf("buckets after reopen (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(o[:1], errorOrigins(t, s, "checkout", h4, h5)); diff != "" {
		t.Errorf("origins after reopen (-want +got):\n%s", diff)
	}
}
