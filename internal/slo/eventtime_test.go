package slo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// t10 is 10:00 on 2024-03-01; minutes below are counted from it by hand.
var t10 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

func endingAt(end time.Time, bad bool) testSpan {
	return srv("svc", "op").with(func(s *testSpan) {
		s.end, s.err = end, bad
		s.attrs = map[string]any{"http.route": "/r"}
	})
}

// Spans count in the minute of their end time: a span that ended two
// minutes before it arrives lands in that minute's bucket, also in its
// group's, and a span from the future counts in the arrival minute.
func TestObserveCountsInTheEndMinute(t *testing.T) {
	spec := Spec{Name: "s", Service: "svc", Objective: 99, Window: units.Duration(time.Hour),
		SLI: SLISpec{Kind: Availability, GroupBy: "http.route"}}
	e, err := NewEngine([]Spec{spec}, Settings{Config: EngineConfig{MaxLateness: units.Duration(5 * time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	now := t10.Add(3*time.Minute + 20*time.Second) // 10:03:20
	e.Observe(request(t, endingAt(t10.Add(3*time.Minute+10*time.Second), false)), now)
	e.Observe(request(t,
		endingAt(t10.Add(time.Minute+30*time.Second), true),   // 10:01:30, m-2
		endingAt(t10.Add(time.Minute+50*time.Second), false),  // 10:01:50, m-2
		endingAt(t10.Add(2*time.Minute+5*time.Second), false), // 10:02:05, m-1
		endingAt(now.Add(time.Hour), false),                   // an hour ahead: counted at 10:03
	), now.Add(time.Second))

	m := func(min int) units.Minute { return units.Minute(t10.Unix()/60) + units.Minute(min) }
	want := map[units.Minute]cnt{m(1): {1, 2}, m(2): {1, 1}}
	e.mu.RLock()
	st := e.slos[0]
	group := st.groups.Load().byValue["/r"]
	for _, s := range []*series{st.agg, group} {
		if s == nil {
			t.Fatal("no series for group /r")
		}
		for k, c := range want {
			if g, tot := s.ev.at(k); g != c.good || tot != c.total {
				t.Errorf("series %q minute 10:%02d: %d/%d, want %d/%d", s.group, k-m(0), g, tot, c.good, c.total)
			}
		}
		if live := unpack(s.live.Load()); live != (cnt{2, 2}) {
			t.Errorf("series %q open minute 10:03: %d/%d, want 2/2", s.group, live.good, live.total)
		}
	}
	e.mu.RUnlock()
	if got := e.lateSpans.Load(); got != 1 {
		t.Errorf("late spans = %d, want 1 (the one from the future)", got)
	}
	status, ok := e.Status("s", now.Add(time.Second))
	if !ok {
		t.Fatal("no status for s")
	}
	if status.Good != 4 || status.Total != 5 {
		t.Errorf("good/total = %v/%v, want 4/5", status.Good, status.Total)
	}
}

// A span older than MaxLateness counts in its arrival minute and is counted
// as late; none is lost.
func TestObserveBeyondLatenessCountsAtArrival(t *testing.T) {
	spec := Spec{Name: "s", Service: "svc", Objective: 99, Window: units.Duration(time.Hour), SLI: SLISpec{Kind: Availability}}
	e, err := NewEngine([]Spec{spec}, Settings{}) // MaxLateness 1m
	if err != nil {
		t.Fatal(err)
	}
	now := t10.Add(3*time.Minute + 20*time.Second)
	e.Observe(request(t, endingAt(t10.Add(2*time.Minute+30*time.Second), false)), now) // 50 s: 10:02
	e.Observe(request(t, endingAt(t10.Add(2*time.Minute+10*time.Second), false)), now) // 70 s: 10:03
	m2 := units.Minute(t10.Unix()/60) + 2
	e.mu.RLock()
	g, tot := e.slos[0].agg.ev.at(m2)
	live := unpack(e.slos[0].agg.live.Load())
	e.mu.RUnlock()
	if g != 1 || tot != 1 || live != (cnt{1, 1}) {
		t.Errorf("10:02 = %d/%d, 10:03 = %d/%d; want 1/1 each", g, tot, live.good, live.total)
	}
	if got := e.lateSpans.Load(); got != 1 {
		t.Errorf("late spans = %d, want 1", got)
	}
}

// A late span whose time slice is closed already changes that slice.
func TestLateSpanRecomputesItsClosedSlice(t *testing.T) {
	spec := Spec{Name: "s", Service: "svc", Objective: 99, Window: units.Duration(time.Hour),
		SLI: SLISpec{Kind: Availability}, Budgeting: RatioTimeslices, TimeSlice: TimeSliceSpec{Window: units.Duration(time.Minute)}}
	e, err := NewEngine([]Spec{spec}, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(request(t, endingAt(t10.Add(10*time.Second), false)), t10.Add(11*time.Second))
	// 10:01:40 closes minute 10:00 (one good request: ratio 1), then a bad
	// request that ended at 10:00:50 arrives: 10:00's ratio is 1/2.
	e.Observe(request(t, endingAt(t10.Add(time.Minute+30*time.Second), false)), t10.Add(time.Minute+40*time.Second))
	st := e.slos[0]
	k := int64(t10.Unix() / 60)
	e.mu.RLock()
	if g, tot := st.agg.sl.at(k); g != 1 || tot != 1 {
		t.Errorf("slice 10:00 before the late span = %v/%v, want 1/1", g, tot)
	}
	e.mu.RUnlock()
	e.Observe(request(t, endingAt(t10.Add(50*time.Second), true)), t10.Add(time.Minute+40*time.Second))
	e.mu.RLock()
	defer e.mu.RUnlock()
	if g, tot := st.agg.sl.at(k); g != 0.5 || tot != 1 {
		t.Errorf("slice 10:00 after the late span = %v/%v, want 0.5/1", g, tot)
	}
}

// bucketRecorder is a Store that sums the SLI buckets written to it.
type bucketRecorder struct {
	Store // other methods are not called
	fail  bool
	got   map[units.Minute]cnt
}

func (r *bucketRecorder) AddSLIBuckets(_ context.Context, bs []Bucket) error {
	if r.fail {
		return errors.New("store down")
	}
	for _, b := range bs {
		m := units.MinuteOf(b.Minute)
		r.got[m] = cnt{r.got[m].good + b.Good, r.got[m].total + b.Total}
	}
	return nil
}

// A late count of a minute that was flushed already reaches the store at
// the next flush, and a failed write is retried without counting twice.
func TestLateCountsReachTheStore(t *testing.T) {
	spec := Spec{Name: "s", Service: "svc", Objective: 99, Window: units.Duration(time.Hour), SLI: SLISpec{Kind: Availability}}
	store := &bucketRecorder{got: map[units.Minute]cnt{}}
	e, err := NewEngine([]Spec{spec}, Settings{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	m0 := units.Minute(t10.Unix() / 60)
	e.Observe(request(t, endingAt(t10.Add(50*time.Second), false)), t10.Add(51*time.Second))
	if err := e.flush(ctx, t10.Add(time.Minute+5*time.Second)); err != nil { // 10:00 is written
		t.Fatal(err)
	}
	e.Observe(request(t, endingAt(t10.Add(55*time.Second), true)), t10.Add(time.Minute+10*time.Second))
	e.Observe(request(t, endingAt(t10.Add(time.Minute+10*time.Second), false)), t10.Add(time.Minute+11*time.Second))
	store.fail = true
	if err := e.flush(ctx, t10.Add(time.Minute+20*time.Second)); err == nil {
		t.Fatal("flush to a failing store succeeded")
	}
	store.fail = false
	if err := e.flush(ctx, t10.Add(time.Minute+30*time.Second)); err != nil {
		t.Fatal(err)
	}
	want := map[units.Minute]cnt{m0: {1, 2}, m0 + 1: {1, 1}}
	for k, c := range want {
		if store.got[k] != c {
			t.Errorf("stored 10:%02d = %+v, want %+v", k-m0, store.got[k], c)
		}
	}
	if len(store.got) != len(want) {
		t.Errorf("stored minutes %v, want only 10:00 and 10:01", store.got)
	}
}

// A write-ahead log's replay counts requests before Start loads what the
// store holds; the replayed counts are not stored, and the first flush
// must write them, also when Start comes in a later minute than theirs
// (the restart after a kill crossed a minute). Treating them as flushed
// lost them at the next crash, as the mark moved past their records.
func TestReplayedCountsAreFlushedAfterLoad(t *testing.T) {
	spec := Spec{Name: "s", Service: "svc", Objective: 99, Window: units.Duration(time.Hour),
		SLI: SLISpec{Kind: Availability, GroupBy: "http.route"}}
	m0 := units.Minute(t10.Unix() / 60)
	for _, tc := range []struct {
		name  string
		start time.Time
	}{
		{"start in the same minute", t10.Add(59*time.Second + 500*time.Millisecond)},
		{"start in the next minute", t10.Add(time.Minute + 200*time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemStore()
			// What the run before the crash stored of 10:00: 4 good of 5.
			if err := store.AddSLIBuckets(t.Context(), []Bucket{
				{SLO: "s", Minute: t10, Good: 4, Total: 5},
				{SLO: "s", Group: "/r", Minute: t10, Good: 4, Total: 5},
			}); err != nil {
				t.Fatal(err)
			}
			e, err := NewEngine([]Spec{spec}, Settings{Store: store})
			if err != nil {
				t.Fatal(err)
			}
			// The replay: three requests of 10:00 the store does not have.
			e.Observe(request(t,
				endingAt(t10.Add(58*time.Second), false),
				endingAt(t10.Add(58*time.Second), false),
				endingAt(t10.Add(58*time.Second), true),
			), t10.Add(59*time.Second))
			if err := e.load(t.Context(), tc.start); err != nil {
				t.Fatal(err)
			}
			st, _ := e.Status("s", tc.start)
			if st.Good != 6 || st.Total != 8 {
				t.Errorf("status after load: %v/%v, want 6/8 (4/5 stored + 2/3 replayed)", st.Good, st.Total)
			}
			if err := e.flush(t.Context(), tc.start.Add(100*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			for _, group := range []string{"", "/r"} {
				if got := store.buckets[[2]string{"s", group}][t10.Unix()]; got != (cnt{6, 8}) {
					t.Errorf("group %q: stored 10:00 = %+v, want 6/8", group, got)
				}
				if got := store.buckets[[2]string{"s", group}][(m0 + 1).Time().Unix()]; got != (cnt{}) {
					t.Errorf("group %q: stored 10:01 = %+v, want nothing", group, got)
				}
			}
		})
	}
}
