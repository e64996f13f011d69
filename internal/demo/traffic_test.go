package demo

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"
)

// fakeEmitter records what it is asked to send and gives each trace a
// distinct ID.
type fakeEmitter struct {
	mu   sync.Mutex
	ends []time.Time
	n    uint64
}

func (f *fakeEmitter) Emit(_ context.Context, r *Request, end time.Time) trace.TraceID {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.ends = append(f.ends, end)
	var id trace.TraceID
	for i := range 8 {
		id[15-i] = byte(f.n >> (8 * i))
	}
	return id
}

func TestTrafficFollowsTheSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := DefaultModel()
		em := &fakeEmitter{}
		l := NewLedger()
		tr := &Traffic{
			Model: &m, Schedule: Schedule{Calm: 2 * time.Second, Failure: 3 * time.Second, Recovery: 5 * time.Second},
			RPS: 50, Rand: rand.New(rand.NewPCG(1, 1)), Emitter: em, Ledger: l,
		}
		start := time.Now()
		tr.Run(t.Context(), start)
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("ran for %s, want the schedule's 10s", got)
		}
		// 50 requests per second, request i due at i/50 s and planned for
		// the phase then: 2s*50 = 100 in the calm, 3s*50 = 150 in the
		// failure and 5s*50 = 250 in the recovery.
		var got []int
		for p := Calm; p < Done; p++ {
			c := l.PhaseCounts(p)
			got = append(got, c[OK]+c[Slow]+c[Error])
		}
		want := []int{100, 150, 250}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("requests per phase (-want +got):\n%s", diff)
		}
		// The failure shows: of its 150 requests 40% check out and about
		// half of those fail (~29); the calm has about 1% error traces.
		calm, fail := l.PhaseCounts(Calm), l.PhaseCounts(Failure)
		if fail[Error] < 15 || calm[Error] > 6 {
			t.Errorf("error traces: calm %d, failure %d", calm[Error], fail[Error])
		}
		sent, _ := l.Sent()
		if n := sent[OK] + sent[Slow] + sent[Error]; n != len(em.ends) {
			t.Errorf("ledger holds %d traces, emitter sent %d", n, len(em.ends))
		}
	})
}

func TestTrafficStopsWithTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := DefaultModel()
		em := &fakeEmitter{}
		tr := &Traffic{
			Model: &m, Schedule: DefaultSchedule(), RPS: 10,
			Rand: rand.New(rand.NewPCG(1, 1)), Emitter: em, Ledger: NewLedger(),
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		start := time.Now()
		tr.Run(ctx, start)
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("stopped after %s, want 3s", got)
		}
		if n := len(em.ends); n < 29 || n > 30 {
			t.Errorf("sent %d requests in 3s at 10/s", n)
		}
	})
}

func TestTrafficDoesNotBurstAfterAStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := DefaultModel()
		em := &fakeEmitter{}
		tr := &Traffic{
			Model: &m, Schedule: Schedule{Calm: time.Minute}, RPS: 10,
			Rand: rand.New(rand.NewPCG(1, 1)), Emitter: em, Ledger: NewLedger(),
		}
		// Started "30s ago": only about a second's worth is caught up.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		tr.Run(ctx, time.Now().Add(-30*time.Second))
		if n := len(em.ends); n > 12 {
			t.Errorf("sent %d requests at once after a 30s stall, want at most a second's worth", n)
		}
	})
}
