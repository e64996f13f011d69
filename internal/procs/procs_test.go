package procs

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestObserve walks the policy through loads whose expected Ps follow
// from the thresholds by hand: up when a P would be over half busy, down
// only after five intervals in a row in which fewer Ps would each stay
// under 40% busy, to the most any of those intervals needed.
func TestObserve(t *testing.T) {
	type step struct {
		busy float64 // CPUs used over a one-second interval
		want int
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{"a light load goes down to one P after five intervals", 2, []step{
			{0.05, 2}, {0.05, 2}, {0.05, 2}, {0.05, 2}, {0.05, 1}, {0.05, 1},
		}},
		{"a busy interval restarts the count", 2, []step{
			{0.05, 2}, {0.05, 2}, {0.05, 2}, {0.05, 2}, {0.45, 2}, // 0.45/0.4 needs 2
			{0.05, 2}, {0.05, 2}, {0.05, 2}, {0.05, 2}, {0.05, 1},
		}},
		{"over half a P busy adds one at once", 2, []step{
			{0.05, 2}, {0.05, 2}, {0.05, 2}, {0.05, 2}, {0.05, 1},
			{0.45, 1}, // under half busy: one P still does
			{0.55, 2},
		}},
		{"between the thresholds nothing moves", 2, []step{
			{0.45, 2}, {0.45, 2}, {0.45, 2}, {0.45, 2}, {0.45, 2}, {0.45, 2},
		}},
		{"down to the most the quiet intervals needed", 8, []step{
			// 1.0/0.4 needs 3; 1.5/0.4 needs 4
			{1.0, 8}, {1.5, 8}, {1.0, 8}, {1.0, 8}, {1.0, 4},
		}},
		{"up to what the load needs, at most the maximum", 8, []step{
			{0.1, 8}, {0.1, 8}, {0.1, 8}, {0.1, 8}, {0.1, 1},
			{1.2, 3},  // 1.2/0.5 needs 3
			{30, 8},   // capped
			{0.01, 8}, // the quiet count starts again
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Controller{max: tt.max, cur: tt.max}
			for i, s := range tt.steps {
				if got := c.observe(s.busy); got != s.want {
					t.Fatalf("interval %d (%.2f CPUs busy): %d Ps, want %d", i+1, s.busy, got, s.want)
				}
			}
		})
	}
}

// fakeSystem records what is set and serves a CPU time the test moves.
type fakeSystem struct {
	mu    sync.Mutex
	env   string
	procs int
	sets  []int
	cpu   time.Duration
}

func (f *fakeSystem) sys() System {
	return System{
		LookupEnv: func(k string) (string, bool) {
			if k == "GOMAXPROCS" && f.env != "" {
				return f.env, true
			}
			return "", false
		},
		GOMAXPROCS: func(n int) int {
			f.mu.Lock()
			defer f.mu.Unlock()
			was := f.procs
			if n > 0 {
				f.procs = n
				f.sets = append(f.sets, n)
			}
			return was
		},
		CPUTime: func() (time.Duration, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.cpu, nil
		},
	}
}

func (f *fakeSystem) use(d time.Duration) {
	f.mu.Lock()
	f.cpu += d
	f.mu.Unlock()
}

func (f *fakeSystem) setCalls() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sets)
}

func TestApply(t *testing.T) {
	t.Run("GOMAXPROCS in the environment wins", func(t *testing.T) {
		f := &fakeSystem{env: "3", procs: 3}
		if c := Apply(Auto(), f.sys(), discard()); c != nil {
			t.Error("auto adapts although GOMAXPROCS is set")
		}
		if c := Apply(Fixed(1), f.sys(), discard()); c != nil || len(f.sets) != 0 {
			t.Errorf("a fixed setting changed GOMAXPROCS from the environment: %v", f.sets)
		}
	})
	t.Run("fixed", func(t *testing.T) {
		f := &fakeSystem{procs: 2}
		if c := Apply(Fixed(3), f.sys(), discard()); c != nil {
			t.Error("a fixed setting returned a controller")
		}
		if f.procs != 3 {
			t.Errorf("GOMAXPROCS %d, want 3", f.procs)
		}
	})
	t.Run("auto on one CPU", func(t *testing.T) {
		f := &fakeSystem{procs: 1}
		if c := Apply(Auto(), f.sys(), discard()); c != nil {
			t.Error("auto adapts with nothing to adapt")
		}
	})
	t.Run("auto", func(t *testing.T) {
		f := &fakeSystem{procs: 4}
		c := Apply(Auto(), f.sys(), discard())
		if c == nil || c.max != 4 || c.cur != 4 {
			t.Fatalf("controller %+v, want one starting at the runtime's 4 Ps", c)
		}
		if len(f.sets) != 0 {
			t.Errorf("auto changed GOMAXPROCS before measuring: %v", f.sets)
		}
	})
}

// TestRun runs the controller on synctest's clock: a quiet process goes
// to one P after its first interval (there was no busy spell to guard
// against), a busy one back to two at the next, to one again only after
// five quiet intervals, and the maximum is restored when it stops.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSystem{procs: 2}
		c := Apply(Auto(), f.sys(), discard())
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Run(ctx)
		}()
		synctest.Wait()
		interval := func(busy time.Duration) {
			f.use(busy)
			time.Sleep(Interval)
			synctest.Wait()
		}
		want := func(sets ...int) {
			t.Helper()
			if s := f.setCalls(); !slices.Equal(s, sets) {
				t.Fatalf("GOMAXPROCS set to %v, want %v", s, sets)
			}
		}
		interval(50 * time.Millisecond)
		want(1)
		interval(900 * time.Millisecond)
		want(1, 2)
		for range 4 {
			interval(50 * time.Millisecond)
		}
		want(1, 2)
		interval(50 * time.Millisecond)
		want(1, 2, 1)
		cancel()
		<-done
		want(1, 2, 1, 2) // the maximum, restored
	})
}
