package storetest

import (
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/users"
)

// runUsers checks the sketches of the users of failed requests: a write
// replaces the instance's sketch of the same service and ten minutes, a
// read returns the sketches overlapping the range, a prune drops the old
// ones, and they survive a restart.
func runUsers(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	us, ok := s.SLO.(users.Store)
	if !ok {
		t.Skip("store keeps no user sketches")
	}
	ctx := t.Context()
	t0 := base.Truncate(users.BucketLength).UTC()
	sketch := func(regs ...uint8) users.Sketch {
		var sk users.Sketch
		copy(sk[:], regs)
		return sk
	}
	must(t, us.PutUserSketches(ctx, []users.Row{
		{Service: "checkout", Start: t0, Sketch: sketch(1, 2, 3)},
		{Service: "checkout", Start: t0.Add(users.BucketLength), Sketch: sketch(4)},
		{Service: "payments", Start: t0, Sketch: sketch(9)},
	}))
	// The next write of the same ten minutes replaces the sketch.
	must(t, us.PutUserSketches(ctx, []users.Row{{Service: "checkout", Start: t0, Sketch: sketch(1, 5, 3)}}))
	must(t, us.PutUserSketches(ctx, nil))

	read := func(us users.Store, from, to time.Time) map[time.Time]users.Sketch {
		t.Helper()
		rows, err := us.UserSketches(ctx, "checkout", from, to)
		if err != nil {
			t.Fatal(err)
		}
		out := map[time.Time]users.Sketch{}
		for _, r := range rows {
			if r.Service != "checkout" {
				t.Errorf("a sketch of %s", r.Service)
			}
			out[r.Start.UTC()] = r.Sketch
		}
		return out
	}
	got := read(us, t0, t0.Add(time.Hour))
	if len(got) != 2 || got[t0] != sketch(1, 5, 3) || got[t0.Add(users.BucketLength)] != sketch(4) {
		t.Errorf("checkout's sketches %v, want the replaced one and the next", len(got))
	}
	// A range within the first ten minutes overlaps only its sketch.
	if got := read(us, t0.Add(3*time.Minute), t0.Add(7*time.Minute)); len(got) != 1 || got[t0] != sketch(1, 5, 3) {
		t.Errorf("sketches overlapping %s..+7m: %d, want the one of %s", t0.Add(3*time.Minute), len(got), t0)
	}
	if got := read(us, t0.Add(-time.Hour), t0.Add(-time.Minute)); len(got) != 0 {
		t.Errorf("sketches before %s: %d, want none", t0, len(got))
	}
	must(t, us.PruneUserSketches(ctx, t0.Add(users.BucketLength)))
	if got := read(us, t0, t0.Add(time.Hour)); len(got) != 1 {
		t.Errorf("after pruning: %d sketches, want the second only", len(got))
	}
	if s.Reopen == nil {
		return
	}
	s2 := s.Reopen(t)
	if got := read(s2.SLO.(users.Store), t0, t0.Add(time.Hour)); len(got) != 1 || got[t0.Add(users.BucketLength)] != sketch(4) {
		t.Errorf("after a restart: %d sketches", len(got))
	}
}
